"""Processing: events already queued, matched to pending commands, applied by worker processes.

(c) lockhook: N events in the inbox stream (written by the real `ingest` script), drained by
`workers.drain.drain` (batched XREADGROUP, one pipeline of `apply_event` calls, XACK, outbox dispatch);
(d) one RQ job per event on a SimpleWorker doing the same apply; (e) a plain BRPOP loop doing the same
Redis work per event. Each worker is its own process; rates are events / (last end - first start).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from dataclasses import dataclass

from bench import profile
from bench.common import (
    PY,
    BenchRedis,
    Proc,
    RssSampler,
    Section,
    count_status,
    ingest_directly,
    lockhook_env,
    log,
    register_pending,
    signed_deliveries,
    stored_headers,
)

RQ_QUEUE = "bench-apply"


@dataclass
class ProcessingResult:
    events: int
    seconds: float
    resolved: int
    peak_rss: int
    profile: list | None = None
    redis_bytes_per_event: float | None = None

    @property
    def rate(self) -> float:
        return self.events / self.seconds if self.seconds else 0.0


def run_workers(bench_redis: BenchRedis, mode: str, processes: int = 1, profile_s: float = 0) -> ProcessingResult:
    """Start `processes` workers of a mode, let them all go at once, wait for them to finish."""
    procs = [Proc(f"proc-{mode}-{i}", [PY, "-m", "bench.processing", mode, bench_redis.url],
                  env=lockhook_env(bench_redis.url), stdin=subprocess.PIPE, stdout=subprocess.PIPE)
             for i in range(processes)]
    try:
        for p in procs:
            if p.proc.stdout.readline().strip() != b"ready":
                raise RuntimeError(f"{p.name} did not start:\n{p.output()[-2000:]}")
        with RssSampler(procs) as rss:
            for p in procs:
                p.proc.stdin.write(b"go\n")
                p.proc.stdin.flush()
            spy = profile.start(procs[0].pid, profile_s, f"processing-{mode}") if profile_s else None
            reports = []
            for p in procs:
                line = p.proc.stdout.readline()
                if not line:
                    raise RuntimeError(f"{p.name} failed:\n{p.output()[-3000:]}")
                reports.append(json.loads(line))
    finally:
        for p in procs:
            p.stop()
    start = min(r["start"] for r in reports)
    end = max(r["end"] for r in reports)
    result = ProcessingResult(events=sum(r["count"] for r in reports), seconds=end - start, resolved=0,
                              peak_rss=max(rss.peak.values()))
    if spy is not None:
        result.profile = profile.finish(spy)
    return result


def prepare_lockhook(r: BenchRedis, run: str, events: int) -> None:
    from lockhook import keys
    from lockhook.streams import ensure_group

    register_pending(r.client, run, events)
    ingest_directly(r.client, signed_deliveries(run, events))
    r.client.delete(keys.DRAIN_FLAG)  # nobody else drains: only the measured workers
    ensure_group(r.client, keys.INBOX, keys.INBOX_GROUP)
    ensure_group(r.client, keys.OUTBOX, keys.OUTBOX_GROUP)


def bench_lockhook(r: BenchRedis, events: int, others: int = 0, processes: int = 1,
                   profile_s: float = 0, subscribers: bool = True) -> ProcessingResult:
    r.flush()
    if others:
        log(f"registering {others} other pending commands")
        register_pending(r.client, "other", others, device_count=5000)
    prepare_lockhook(r, f"c{processes}", events)
    log(f"processing (c): {events} events, {others} other pending, {processes} process(es), "
        f"subscribers {'on' if subscribers else 'off'}")
    before = r.used_memory()
    result = run_workers(r, "lockhook" if subscribers else "lockhook-nosub", processes, profile_s)
    result.redis_bytes_per_event = (r.used_memory() - before) / events
    result.resolved = count_status(r.client, "succeeded")
    return result


def _inbox_fields(run: str, events: int) -> list[dict]:
    now = str(int(time.time() * 1000))
    return [{"endpoint": "seam", "delivery_id": s.delivery_id, "headers": json.dumps(stored_headers(s)),
             "body": s.body.decode(), "received_at": now} for s in signed_deliveries(run, events)]


def bench_rq_jobs(r: BenchRedis, events: int) -> ProcessingResult:
    from rq import Queue

    r.flush()
    register_pending(r.client, "d", events)
    queue = Queue(RQ_QUEUE, connection=r.client)
    fields = _inbox_fields("d", events)
    for lo in range(0, events, 1000):
        jobs = [Queue.prepare_data("bench.baselines.rq_apply.process_delivery",
                                   args=(f["endpoint"], f["delivery_id"], json.loads(f["headers"]),
                                         f["body"].encode(), int(f["received_at"])), result_ttl=0)
                for f in fields[lo:lo + 1000]]
        with r.client.pipeline() as pipe:
            queue.enqueue_many(jobs, pipeline=pipe)
            pipe.execute()
    log(f"processing (d): {events} RQ jobs on a SimpleWorker")
    result = run_workers(r, "rq")
    result.resolved = count_status(r.client, "succeeded")
    return result


def bench_brpop(r: BenchRedis, events: int) -> ProcessingResult:
    from bench.baselines import brpop_loop

    r.flush()
    register_pending(r.client, "e", events)
    brpop_loop.push(r.client, _inbox_fields("e", events))
    log(f"processing (e): {events} events through a BRPOP loop")
    result = run_workers(r, "brpop")
    result.resolved = count_status(r.client, "succeeded")
    return result


def run(r: BenchRedis, n: int, n_rq: int, n_brpop: int, others: int) -> tuple[Section, dict]:
    """The processing table; also returns the figures other sections use."""
    c = bench_lockhook(r, n)
    c_big = bench_lockhook(r, n, others=others)
    c_bare = bench_lockhook(r, n, subscribers=False)
    d = bench_rq_jobs(r, n_rq)
    e = bench_brpop(r, n_brpop)
    section = Section("Processing (1 worker process, events already queued, each resolving a pending command)",
                      ["system", "events", "resolved", "events/s", "vs (d)", "vs (e)"])
    for label, res in (("(c) lockhook drain", c), (f"(c) lockhook drain, +{others:,} other pending", c_big),
                       ("(c) lockhook drain, no outcome subscribers (apply only)", c_bare),
                       ("(d) one RQ job per event, SimpleWorker", d), ("(e) plain BRPOP loop", e)):
        section.add(label, f"{res.events:,}", f"{res.resolved:,}", f"{res.rate:,.0f}",
                    f"{res.rate / d.rate:.2f}x", f"{res.rate / e.rate:.2f}x")
    section.notes.append(f"target: (c) >= 0.35 x (e); measured {c.rate / e.rate:.2f} x (e), "
                         f"{c_big.rate / c.rate:.2f} x itself with {others:,} other pending commands")
    section.notes.append("(d) and (e) run fewer events than (c) (they are slower; rates are per second); all three "
                         "apply the same `apply_event` script per event; (c) hands its outcomes to the notifications "
                         "worker by queueing one dispatch job (the dispatch itself runs there, not in the drain), "
                         "so the 'no outcome subscribers' row differs only by noise")
    return section, {"c": c, "c_big": c_big, "c_bare": c_bare, "d": d, "e": e}


# -- the worker process ----------------------------------------------------------------------------

def _worker(mode: str, url: str) -> None:
    import redis

    from lockhook.logs import configure_logging
    from lockhook.settings import Settings

    configure_logging(Settings(redis_url=url, log_format="json"))
    client = redis.Redis.from_url(url)
    client.ping()
    if mode.startswith("lockhook"):
        if mode == "lockhook":
            from workers import worker as _registers_subscribers  # noqa: F401  (as `lockhook worker` does)
        from workers.drain import drain

        def work():
            return drain(client, max_seconds=600), time.time()
    elif mode == "rq":
        from rq import Queue, SimpleWorker

        worker = SimpleWorker([Queue(RQ_QUEUE, connection=client)], connection=client)

        queue = worker.queues[0]

        def work():
            before = queue.count
            worker.work(burst=True, logging_level="WARNING")
            return before - queue.count, time.time()
    else:
        from bench.baselines import brpop_loop

        def work():
            return brpop_loop.run(client)

    print("ready", flush=True)
    sys.stdin.readline()
    start = time.time()
    count, end = work()
    print(json.dumps({"start": start, "end": end, "count": count}), flush=True)


if __name__ == "__main__":
    _worker(sys.argv[1], sys.argv[2])
