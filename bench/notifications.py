"""Notifications, measured from outside: burst throughput, sustained latency, isolation from bad targets.

Every figure comes from the Procfile's web + worker against a sink in its own process (`bench.notify_sink`),
all on 127.0.0.1. Commands are registered with `POST /commands` (`via: external`, one fresh device each) and
confirmed by signed Seam `lock.locked` webhooks; each confirmation yields one `command.succeeded` and one
`lock.state_changed` (the device goes from unknown to locked), sent to every configured target.

- Burst: N commands confirmed at once, one webhook target: first confirmation POST -> last notification at the
  sink; beside it, in the same run and to the same sink, (a) one RQ job per notification on a SimpleWorker with
  one kept httpx client and (b) a bare aiohttp sender with 64 in flight (`bench.baselines.notify_senders`).
- Sustained: an open-loop rate of confirmations with a webhook and a Slack target: confirmation POST ->
  notification received p50/p99, and what is still missing at the sink 1 s after the last POST.
- Isolation: the same open-loop load with the healthy target alone, then beside a target that hangs and one
  that answers 503 (three NOTIFY_WEBHOOK_URL entries): the healthy target's p99 in both runs.

    python bench/notifications.py [--quick] [--parts burst,sustained,isolation]
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import math
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import profile  # noqa: E402
from bench.common import (  # noqa: E402
    PY,
    BenchRedis,
    Proc,
    Section,
    free_port,
    lockhook_env,
    log,
    percentile,
    release_port,
    signed_deliveries,
    start_procfile,
    wait_port,
    work_dir,
)
from bench.e2e import NOTIFY_SECRET  # noqa: E402
from bench.loadgen import open_loop_async, run_async  # noqa: E402

API_TOKEN = "bench-api-token-not-a-secret"  # bench-only
TYPES_PER_COMMAND = ("command.succeeded", "lock.state_changed")
BURST_AT_ONCE = 100_000  # requests/s given to the open-loop generator: every confirmation is sent at once
CONNECTIONS = 16
INFLIGHT_B = 64
B_RUNS = 3  # (b) takes a fraction of a second: the median of a few runs is steadier


@dataclass(frozen=True)
class Sizes:
    """Counts and durations of the three parts; the isolation rate is low on purpose (isolation, not throughput)."""

    burst: int = 600
    burst_timeout_s: float = 120
    rate: float = 200
    seconds: float = 30
    drain_s: float = 15
    iso_rate: float = 20
    iso_seconds: float = 20
    profile_s: float = 0  # py-spy the worker tree for this long during the sustained run (0: off)

    @classmethod
    def quick(cls) -> Sizes:
        return cls(burst=150, burst_timeout_s=45, rate=100, seconds=5, drain_s=8, iso_rate=20, iso_seconds=5)


# -- arithmetic (tested in tests/bench) ---------------------------------------------------------------------

def per_second(count: int, start: float, end: float) -> float:
    """Items per second over [start, end]; 0 when nothing or no time passed."""
    return count / (end - start) if count and end > start else 0.0


def tail(values: list[float], expected: int, q: float) -> float:
    """Nearest-rank percentile where each of the `expected` items that never arrived counts as infinitely late."""
    padded = list(values) + [math.inf] * max(0, expected - len(values))
    p = percentile(padded, q)
    return math.inf if p is None else p


def first_arrivals(records: list) -> dict[tuple, float]:
    """When each distinct notification (type, command or device id) first arrived; records are (t, id, type, key).

    A notification sent again (a retry after a lost answer, a lease that expired) counts once, at its first arrival.
    """
    first: dict[tuple, float] = {}
    for t, _wid, kind, key in records:
        if (kind, key) not in first or t < first[(kind, key)]:
            first[(kind, key)] = t
    return first


def latencies(records: list, sent: dict[int, float], index: dict[str, int]) -> list[float]:
    """Seconds from each notification's confirmation POST to its first arrival."""
    out = []
    for (_kind, key), t in first_arrivals(records).items():
        i = index.get(key)
        if i is not None and i in sent:
            out.append(t - sent[i])
    return out


def expected_notifications(commands: int, targets: int) -> int:
    """Each confirmation: one command.succeeded and one lock.state_changed (a fresh device), per target."""
    return commands * len(TYPES_PER_COMMAND) * targets


def fmt_ms(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if math.isinf(seconds):
        return "> run end"
    return f"{seconds * 1000:.1f} ms"


@dataclass
class Goal:
    """One 'Done when' figure: measured value, its baseline, and the bound it must meet."""

    name: str
    value: float
    goal: float
    at_least: bool  # True: value (or value/baseline) >= goal; False: <= goal
    baseline: float | None = None
    unit: str = ""

    @property
    def compared(self) -> float:
        """The ratio to the baseline when there is one, else the value itself."""
        if self.baseline is None:
            return self.value
        if self.baseline == 0 or math.isinf(self.baseline):
            return math.nan
        return self.value / self.baseline

    @property
    def passed(self) -> bool:
        c = self.compared
        if math.isnan(c):
            return False
        return c >= self.goal if self.at_least else c <= self.goal


def fmt_value(value: float | None, unit: str) -> str:
    if value is None:
        return "-"
    if unit == "ms":
        return fmt_ms(value)
    if math.isinf(value):
        return "inf"
    return f"{value:,.0f}{(' ' + unit) if unit else ''}"


def fmt_ratio(value: float) -> str:
    if math.isnan(value):
        return "n/a"
    return "inf" if math.isinf(value) else f"{value:.2f}x"


def summary(goals: list[Goal]) -> Section:
    s = Section("Notifications: the figures against their goals", ["figure", "measured", "baseline", "ratio",
                                                                    "goal", "result"])
    for g in goals:
        ratio = "-" if g.baseline is None else fmt_ratio(g.compared)
        bound = f"{'>=' if g.at_least else '<='} {g.goal:g}{'x' if g.baseline is not None else ''}"
        if g.baseline is None and g.unit == "ms":
            bound = f"<= {g.goal * 1000:g} ms"
        s.add(g.name, fmt_value(g.value, g.unit), fmt_value(g.baseline, g.unit), ratio, bound,
              "PASS" if g.passed else "FAIL")
    return s


# -- the sink -----------------------------------------------------------------------------------------------

class Sink:
    """`bench.notify_sink` in its own process (its own GIL); ok / fail / hang ports and a control port."""

    def __init__(self):
        self.proc = Proc("notify-sink", [PY, "-m", "bench.notify_sink"], stdout=subprocess.PIPE)
        line = self.proc.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the notification sink did not start:\n{self.proc.output()[-2000:]}")
        self.ports: dict[str, int] = json.loads(line)

    def url(self, which: str, path: str) -> str:
        return f"http://127.0.0.1:{self.ports[which]}{path}"

    def _control(self, path: str, method: str = "GET") -> dict:
        req = urllib.request.Request(f"http://127.0.0.1:{self.ports['control']}{path}", method=method)
        with urllib.request.urlopen(req, timeout=30) as response:
            return json.loads(response.read())

    def counts(self) -> dict[str, int]:
        """Requests received per path."""
        return self._control("/stats")["paths"]

    def distinct(self) -> dict[str, int]:
        """Distinct notifications (type, command or device id) received per path."""
        return self._control("/stats")["distinct"]

    def hanging(self) -> int:
        return self._control("/stats")["hanging"]

    def dump(self, path: str) -> tuple[list, list[dict]]:
        got = self._control(f"/dump?path={urllib.request.quote(path)}")
        return got["records"], got["samples"]

    def reset(self) -> None:
        self._control("/reset", "POST")

    def wait(self, paths: list[str], expected: int, until: float) -> int:
        """Until the paths together received `expected` distinct notifications or the monotonic deadline."""
        while True:
            counts = self.distinct()
            got = sum(counts.get(p, 0) for p in paths)
            if got >= expected or time.monotonic() >= until:
                return got
            time.sleep(0.05)

    def stop(self) -> None:
        self.proc.stop()


def check_signatures(samples: list[dict]) -> int:
    """Verify the kept sample requests with svix (the receiver's view); returns how many were checked."""
    from svix.webhooks import Webhook

    webhook = Webhook(NOTIFY_SECRET)
    for s in samples:
        webhook.verify(s["body"], {k.lower(): v for k, v in s["headers"].items()})
    return len(samples)


# -- lockhook -----------------------------------------------------------------------------------------------

class Lockhook:
    """The Procfile's web + worker with the given notification targets."""

    def __init__(self, r: BenchRedis, label: str, webhook_urls: list[str], slack_url: str | None = None):
        self.port = free_port()
        targets = {"NOTIFY_WEBHOOK_URL": ",".join(webhook_urls), "NOTIFY_WEBHOOK_SECRET": NOTIFY_SECRET}
        if slack_url:
            targets["SLACK_WEBHOOK_URL"] = slack_url
        env = lockhook_env(r.url, PORT=self.port, LOCKHOOK_API_TOKEN=API_TOKEN, **targets)
        self.web = start_procfile("web", env, f"notify-{label}-web")
        self.worker = start_procfile("worker", env, f"notify-{label}-worker")
        try:
            wait_port(self.port, self.web)
        except Exception:
            self.stop()
            raise

    def stop(self) -> None:
        self.web.stop()
        self.worker.stop(timeout=25)
        release_port(self.port)


async def register_external(port: int, run: str, count: int, concurrency: int = 32) -> list[str]:
    """`POST /commands` (via external, device dev_<i>, action_attempt_id aa_<run>_<i>); the command ids by i."""
    import aiohttp

    ids: list[str | None] = [None] * count
    todo = iter(range(count))
    headers = {"authorization": f"Bearer {API_TOKEN}"}

    async def lane(session: aiohttp.ClientSession) -> None:
        for i in todo:
            body = {"device_id": f"dev_{i}", "action": "lock", "via": "external",
                    "action_attempt_id": f"aa_{run}_{i}", "timeout_s": 3600}
            async with session.post(f"http://127.0.0.1:{port}/commands", json=body, headers=headers) as resp:
                got = await resp.json()
                if resp.status != 201:
                    raise RuntimeError(f"POST /commands answered {resp.status}: {got}")
                ids[i] = got["command_id"]

    async with aiohttp.ClientSession() as session:
        await asyncio.gather(*(lane(session) for _ in range(concurrency)))
    return ids  # type: ignore[return-value]


def key_index(command_ids: list[str]) -> dict[str, int]:
    """Command id and device id -> the command's index (command i is the only one on device dev_<i>)."""
    index = {cid: i for i, cid in enumerate(command_ids)}
    index.update({f"dev_{i}": i for i in range(len(command_ids))})
    return index


def prepare(r: BenchRedis, sink: Sink, lh: Lockhook, run: str, n: int) -> tuple[list[str], list[bytes]]:
    started = time.monotonic()
    ids = run_async(register_external(lh.port, run, n))
    log(f"  registered {n} commands in {time.monotonic() - started:.1f} s")
    deliveries = signed_deliveries(run, n, device_count=n, event_type="lock.locked")
    payloads = [d.http(f"127.0.0.1:{lh.port}", "/webhooks/seam") for d in deliveries]
    time.sleep(1.0)  # the worker has registered its queues; nothing is left over from registering
    sink.reset()
    return ids, payloads


def confirm(port: int, payloads: list[bytes], rate: float) -> tuple[dict[int, float], int]:
    """Send the confirmations open loop; (send time by index, how many were not answered 202)."""
    sent: dict[int, float] = {}
    load = run_async(open_loop_async(port, payloads, rate, CONNECTIONS, lambda i: sent.__setitem__(i, time.time())))
    return sent, load.errors + sum(v for k, v in load.statuses.items() if k != 202)


# -- burst --------------------------------------------------------------------------------------------------

@dataclass
class Throughput:
    """A burst: distinct notifications that arrived, over the seconds from the start to the last first arrival."""

    label: str
    expected: int
    arrived: int  # distinct notifications
    seconds: float
    requests: int = 0  # every request, a notification sent again included
    webhook_ids: int = 0
    by_type: Counter = field(default_factory=Counter)
    errors: int = 0
    spread: list[float] = field(default_factory=list)  # rates of repeated runs, when repeated
    first_after: float | None = None  # seconds from the start to the first arrival
    span: float | None = None  # seconds from the first arrival to the last first arrival

    @property
    def complete(self) -> bool:
        return self.arrived >= self.expected

    @property
    def duplicates(self) -> int:
        return self.requests - self.arrived

    @property
    def rate(self) -> float:
        return per_second(self.arrived, 0.0, self.seconds)

    @classmethod
    def from_records(cls, label: str, expected: int, start: float, records: list, errors: int = 0,
                     waited_until: float | None = None) -> Throughput:
        first = first_arrivals(records)
        # incomplete: the rate over the whole wait
        end = max(first.values()) if len(first) >= expected else (waited_until or time.time())
        seconds = end - start
        return cls(label, expected, len(first), seconds, requests=len(records),
                   webhook_ids=len({rec[1] for rec in records if rec[1]}), by_type=Counter(k for k, _ in first),
                   errors=errors, first_after=min(first.values()) - start if first else None,
                   span=max(first.values()) - min(first.values()) if first else None)


def burst_lockhook(r: BenchRedis, sink: Sink, n: int, timeout_s: float) -> Throughput:
    r.flush()
    path = "/burst/webhook"
    lh = Lockhook(r, "burst", [sink.url("ok", path)])
    try:
        log(f"notifications burst: {n} commands confirmed at once, one webhook target")
        _ids, payloads = prepare(r, sink, lh, "nb", n)
        expected = expected_notifications(n, 1)
        sent, errors = confirm(lh.port, payloads, BURST_AT_ONCE)
        sink.wait([path], expected, time.monotonic() + timeout_s)
        waited = time.time()
        time.sleep(0.5)  # anything sent twice right after shows too
        records, samples = sink.dump(path)
        check_signatures(samples)
    finally:
        lh.stop()
    return Throughput.from_records("lockhook", expected, min(sent.values()), records, errors, waited)


def _baseline_proc(name: str, argv: list[str], env: dict[str, str]) -> Proc:
    proc = Proc(name, [PY, "-m", "bench.baselines.notify_senders", *argv], env=env, stdin=subprocess.PIPE,
                stdout=subprocess.PIPE)
    if proc.proc.stdout.readline().strip() != b"ready":
        proc.stop()
        raise RuntimeError(f"{name} did not start:\n{proc.output()[-2000:]}")
    return proc


def burst_baseline(r: BenchRedis, sink: Sink, which: str, count: int, timeout_s: float) -> Throughput:
    """(a) RQ jobs or (b) bare aiohttp: `count` signed bodies to the same sink, timed from 'go' to the last arrival."""
    from bench.baselines import notify_senders

    r.flush()
    sink.reset()
    path = f"/burst-{which}/webhook"
    env = lockhook_env(r.url, NOTIFY_WEBHOOK_SECRET=NOTIFY_SECRET)
    if which == "a":
        notify_senders.enqueue_rq(r.client, sink.url("ok", path), "nba", count)
        argv = ["rq", r.url]
    else:
        argv = ["aiohttp", sink.url("ok", path), str(count), str(INFLIGHT_B), "nbb"]
    proc = _baseline_proc(f"notify-baseline-{which}", argv, env)
    try:
        proc.proc.stdin.write(b"go\n")
        proc.proc.stdin.flush()
        line = proc.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"baseline ({which}) failed:\n{proc.output()[-3000:]}")
        report = json.loads(line)
        sink.wait([path], count, time.monotonic() + timeout_s)
        records, samples = sink.dump(path)
        check_signatures(samples)
    finally:
        proc.stop()
    return Throughput.from_records(which, count, report["start"], records, report["errors"])


def burst(r: BenchRedis, sink: Sink, sizes: Sizes) -> tuple[Section, list[Goal]]:
    lh = burst_lockhook(r, sink, sizes.burst, sizes.burst_timeout_s)
    log(f"  lockhook: {lh.arrived}/{lh.expected} in {lh.seconds:.1f} s; baselines (a) RQ jobs, "
        f"(b) bare aiohttp x{B_RUNS}")
    a = burst_baseline(r, sink, "a", lh.expected, sizes.burst_timeout_s)
    runs = sorted((burst_baseline(r, sink, "b", lh.expected, sizes.burst_timeout_s) for _ in range(B_RUNS)),
                  key=lambda t: t.rate)
    b = runs[len(runs) // 2]
    b.spread = [t.rate for t in runs]
    s = Section(f"Notifications burst ({sizes.burst:,} commands confirmed at once, one webhook target, a sink "
                "answering 200 at once)", ["system", "arrived / expected", "seconds", "notifications/s", "vs (a)",
                                           "vs (b)"])
    rows = (("lockhook (web + worker, from the first confirmation POST)", lh),
            ("(a) one RQ job per notification, SimpleWorker, one kept httpx client", a),
            (f"(b) bare aiohttp sender, {INFLIGHT_B} in flight (median of {B_RUNS} runs)", b))
    for label, t in rows:
        mark = "" if t.complete else " (incomplete: rate over the wait)"
        s.add(label, f"{t.arrived:,} / {t.expected:,}", f"{t.seconds:.2f}", f"{t.rate:,.0f}{mark}",
              f"{t.rate / a.rate:.2f}x" if a.rate else "-", f"{t.rate / b.rate:.2f}x" if b.rate else "-")
    types = ", ".join(f"{v:,} {k}" for k, v in sorted(lh.by_type.items(), key=lambda kv: str(kv[0])))
    s.notes.append(f"lockhook: {types}; {lh.requests:,} requests for {lh.arrived:,} distinct notifications "
                   f"({lh.duplicates:,} sent again), {lh.webhook_ids:,} distinct webhook-ids; {lh.errors} "
                   "confirmations not answered 202")
    if lh.first_after is not None and lh.span:
        s.notes.append(f"lockhook's first notification arrived {lh.first_after:.2f} s after the first confirmation "
                       f"POST; from then on they arrived over {lh.span:.2f} s ({(lh.arrived - 1) / lh.span:,.0f}/s)")
    s.notes.append(f"(b) runs: {', '.join(f'{x:,.0f}' for x in b.spread)} notifications/s; (a) and (b) send "
                   "bodies of the same shape (command.succeeded / lock.state_changed JSON), signed (svix) as they "
                   "go, each from its own process, timed from its start signal to the last arrival at the sink")
    s.notes.append("the sink is an aiohttp server in its own process; every system's first requests were verified "
                   "with svix as a receiver would")
    complete = lh.complete and a.complete and b.complete
    goals = [Goal("burst: lockhook notifications/s vs (b) bare aiohttp", lh.rate if complete else 0.0, 0.5, True,
                  baseline=b.rate, unit="/s"),
             Goal("burst: lockhook notifications/s vs (a) RQ job per notification", lh.rate if complete else 0.0,
                  10, True, baseline=a.rate, unit="/s"),
             Goal("burst: lockhook notifications sent again to a sink that answered 200 (sanity)", lh.duplicates,
                  0, False)]
    return s, goals


# -- sustained and isolation: open-loop latency runs ---------------------------------------------------------

@dataclass
class LatencyRun:
    commands: int
    expected: dict[str, int]  # distinct notifications per sink path
    lat: dict[str, list[float]]  # per sink path, to each notification's first arrival
    left_after_1s: int  # distinct notifications not yet arrived 1 s after the last confirmation POST
    errors: int
    requests: dict[str, int] = field(default_factory=dict)  # per sink path, a notification sent again included
    webhook_ids: int = 0
    other: dict[str, int] = field(default_factory=dict)  # requests at other paths (bad targets)
    profile: list | None = None

    def all_latencies(self) -> list[float]:
        return [x for v in self.lat.values() for x in v]

    def duplicates(self) -> int:
        return sum(self.requests.values()) - sum(len(v) for v in self.lat.values())

    def p(self, q: float, path: str | None = None) -> float:
        if path is None:
            return tail(self.all_latencies(), sum(self.expected.values()), q)
        return tail(self.lat[path], self.expected[path], q)


def latency_run(r: BenchRedis, sink: Sink, label: str, rate: float, seconds: float, drain_s: float,
                webhook_paths: list[str], slack_path: str | None = None,
                bad_urls: tuple[str, ...] | list[str] = (), profile_s: float = 0) -> LatencyRun:
    r.flush()
    n = int(rate * seconds)
    lh = Lockhook(r, label, [sink.url("ok", p) for p in webhook_paths] + list(bad_urls),
                  sink.url("ok", slack_path) if slack_path else None)
    paths = [*webhook_paths, *([slack_path] if slack_path else [])]
    try:
        log(f"notifications {label}: {n} confirmations at {rate:.0f}/s, targets {', '.join(paths)}"
            f"{' + a hanging and a 503 target' if bad_urls else ''}")
        ids, payloads = prepare(r, sink, lh, f"n{label[:3]}", n)
        per_path = expected_notifications(n, 1)
        spy = profile.start(lh.worker.pid, profile_s, f"notify-{label}-worker", delay_s=min(3.0, seconds / 3)) \
            if profile_s else None
        sent, errors = confirm(lh.port, payloads, rate)
        rows = profile.finish(spy) if spy is not None else None
        last = max(sent.values())
        time.sleep(max(0.0, last + 1.0 - time.time()))
        counts = sink.distinct()
        left = per_path * len(paths) - sum(counts.get(p, 0) for p in paths)
        sink.wait(paths, per_path * len(paths), time.monotonic() + max(0.0, drain_s - 1.0))
        index = key_index(ids)
        lat, requests, ids_seen = {}, {}, set()
        for p in paths:
            records, samples = sink.dump(p)
            if p != slack_path:
                check_signatures(samples)
                ids_seen |= {rec[1] for rec in records if rec[1]}
            lat[p] = latencies(records, sent, index)
            requests[p] = len(records)
        other = {p: c for p, c in sink.counts().items() if p not in paths}
        if bad_urls:
            other["hanging connections"] = sink.hanging()
    finally:
        lh.stop()
    return LatencyRun(n, dict.fromkeys(paths, per_path), lat, max(0, left), errors, requests, len(ids_seen), other,
                      rows)


def _latency_rows(s: Section, label: str, run: LatencyRun, path: str) -> None:
    s.add(label, f"{len(run.lat[path]):,} / {run.expected[path]:,}", f"{run.requests[path]:,}",
          fmt_ms(run.p(50, path)), fmt_ms(run.p(99, path)))


def sustained(r: BenchRedis, sink: Sink, sizes: Sizes) -> tuple[Section, list[Goal]]:
    run = latency_run(r, sink, "sustained", sizes.rate, sizes.seconds, sizes.drain_s, ["/sustained/webhook"],
                      "/sustained/slack", profile_s=sizes.profile_s)
    total = sum(run.expected.values())
    s = Section(f"Notifications sustained ({sizes.rate:.0f} confirmations/s for {sizes.seconds:.0f} s, a webhook "
                "and a Slack target)", ["confirmation POST -> notification received", "distinct / expected",
                                        "requests", "p50", "p99"])
    for path in run.lat:
        _latency_rows(s, f"`{path}`", run, path)
    s.add("all notifications", f"{len(run.all_latencies()):,} / {total:,}", f"{sum(run.requests.values()):,}",
          fmt_ms(run.p(50)), fmt_ms(run.p(99)))
    s.notes.append(f"1 s after the last confirmation POST {run.left_after_1s:,} of {total:,} notifications had "
                   f"not reached the sink; the run waited up to {sizes.drain_s:.0f} s after it (later ones count "
                   "as '> run end' in the percentiles)")
    s.notes.append(f"{run.errors} confirmations not answered 202; {run.duplicates():,} notifications sent again; "
                   f"{run.webhook_ids:,} distinct webhook-ids at the webhook target for "
                   f"{len(run.lat['/sustained/webhook']):,} distinct notifications; latency is to a notification's "
                   "first arrival")
    if run.profile:
        top = ", ".join(f"{share * 100:.0f}% `{frame}`" for frame, share in run.profile[:10])
        s.notes.append(f"worker process tree (`lockhook worker`), py-spy over {sizes.profile_s:.0f} s of the run, "
                       f"share of samples that include the frame: {top}")
    goals = [Goal("sustained: p99 confirmation POST -> notification received", run.p(99), 0.100, False, unit="ms"),
             Goal("sustained: notifications missing 1 s after the load stops", run.left_after_1s, 0, False),
             Goal("sustained: notifications sent again to a sink that answered 200 (sanity)", run.duplicates(), 0,
                  False)]
    return s, goals


def isolation(r: BenchRedis, sink: Sink, sizes: Sizes) -> tuple[Section, list[Goal]]:
    alone = latency_run(r, sink, "isolation-alone", sizes.iso_rate, sizes.iso_seconds, sizes.drain_s,
                        ["/isolation-alone/webhook"])
    bad = [sink.url("hang", "/hang"), sink.url("fail", "/unavailable")]
    beside = latency_run(r, sink, "isolation-beside", sizes.iso_rate, sizes.iso_seconds, sizes.drain_s,
                         ["/isolation/webhook"], bad_urls=bad)
    s = Section(f"Notifications isolation ({sizes.iso_rate:.0f} confirmations/s for {sizes.iso_seconds:.0f} s; "
                "the healthy webhook target alone, then beside a hanging and a 503 target)",
                ["healthy target", "distinct / expected", "requests", "p50", "p99"])
    _latency_rows(s, "alone", alone, "/isolation-alone/webhook")
    _latency_rows(s, "beside a hanging and a 503 target", beside, "/isolation/webhook")
    others = ", ".join(f"{k}: {v:,}" for k, v in beside.other.items())
    s.notes.append(f"requests the bad targets received: {others or 'none'}")
    s.notes.append("the rate is low on purpose (the figure is about isolation, not throughput); the hanging target "
                   "accepts connections and never answers, the other answers 503 at once; both on their own ports")
    goals = [Goal("isolation: healthy target p99 beside a hanging and a 503 target vs alone", beside.p(99),
                  2, False, baseline=alone.p(99), unit="ms")]
    return s, goals


PARTS = {"burst": burst, "sustained": sustained, "isolation": isolation}


def run(r: BenchRedis, sizes: Sizes, parts: list[str] | None = None) -> list[Section]:
    """The notification sections plus the summary of their goals, in one run with one sink."""
    sink = Sink()
    sections, goals = [], []
    try:
        for name in parts or list(PARTS):
            section, got = PARTS[name](r, sink, sizes)
            sections.append(section)
            goals += got
    finally:
        sink.stop()
    return [*sections, summary(goals)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smaller counts (a smoke test, figures are rough)")
    parser.add_argument("--parts", default=",".join(PARTS), help=f"comma-separated subset of {','.join(PARTS)}")
    parser.add_argument("--profile", type=float, default=0, metavar="SECONDS",
                        help="py-spy the worker tree for this long during the sustained run")
    args = parser.parse_args()
    parts = [p for p in args.parts.split(",") if p]
    unknown = set(parts) - set(PARTS)
    if unknown:
        parser.error(f"unknown part(s): {', '.join(sorted(unknown))}")
    started = time.time()
    r = BenchRedis()
    try:
        sizes = Sizes.quick() if args.quick else Sizes()
        sections = run(r, dataclasses.replace(sizes, profile_s=args.profile), parts)
    finally:
        r.stop()
    text = "\n".join(s.markdown() for s in sections) + f"\n_notifications bench took {time.time() - started:.0f} s_\n"
    print(text)
    (work_dir() / "notifications.md").write_text(text)


if __name__ == "__main__":
    main()
