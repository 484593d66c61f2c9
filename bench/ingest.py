"""Ingest: signed 800-byte deliveries (unique ids) against (a) bare verify, (b) verify + RQ enqueue, (c) lockhook.

Saturation: wrk, 64 connections, replaying pre-signed requests (bench/wrk_replay.lua). Fixed rate: the
open-loop asyncio generator of bench/loadgen.py at 1,000 req/s, latency counted from each request's
intended send time. Every server is one uvicorn process (or `--workers N` for the scale rows).
"""

from __future__ import annotations

from dataclasses import dataclass

from bench import profile
from bench.common import (
    PY,
    BenchRedis,
    Proc,
    RssSampler,
    Section,
    Signed,
    free_port,
    lockhook_env,
    log,
    ms,
    ratio,
    release_port,
    signed_deliveries,
    start_procfile,
    wait_port,
)
from bench.loadgen import LoadResult, open_loop, run_wrk, write_wrk_files

LABELS = {
    "a": "(a) bare Starlette + svix verify",
    "b": "(b) verify + run_in_threadpool(Queue.enqueue)",
    "c": "(c) lockhook POST /webhooks/seam",
}
BASELINE_APPS = {"a": "bench.baselines.bare:app", "b": "bench.baselines.rq_enqueue:app"}


@dataclass
class IngestResult:
    system: str
    processes: int
    saturated: LoadResult
    fixed: LoadResult | None
    peak_rss: int
    cpu_per_request: float = 0.0
    stored: int | None = None
    redis_bytes: int | None = None
    profile: list[tuple[str, float]] | None = None


def start_server(system: str, r: BenchRedis, port: int, processes: int) -> Proc:
    workers = f"--workers {processes}" if processes > 1 else ""
    if system == "c":
        return start_procfile("web", lockhook_env(r.url, PORT=port), f"web-c-{processes}", workers)
    argv = [PY, "-m", "uvicorn", BASELINE_APPS[system], "--host", "127.0.0.1", "--port", str(port),
            "--no-access-log"]
    if processes > 1:
        argv += ["--workers", str(processes)]
    return Proc(f"web-{system}-{processes}", argv, env=lockhook_env(r.url))


class Pools:
    """Pre-signed deliveries: one big pool replayed by wrk, a small one for the fixed-rate runs."""

    def __init__(self, saturated: int, fixed: int, threads: int = 2):
        log(f"signing {saturated:,} + {fixed:,} deliveries")
        self.threads = threads
        self.wrk_dir = write_wrk_files(signed_deliveries("sat", saturated), threads)
        self.fixed: list[Signed] = signed_deliveries("fix", fixed)
        self.warm: list[Signed] = signed_deliveries("warm", 1000)


def bench(system: str, r: BenchRedis, pools: Pools, port: int, seconds: int, processes: int = 1,
          fixed_rate: float | None = 1000, profile_s: float = 0) -> IngestResult:
    from lockhook import keys

    r.flush()
    server = start_server(system, r, port, processes)
    try:
        wait_port(port, server)
        fixed = None
        # warm up (imports on first use, thread pool, Redis script cache) as a running server would be
        open_loop(port, [s.http(f"127.0.0.1:{port}", "/webhooks/seam") for s in pools.warm], 2000)
        if fixed_rate:
            log(f"ingest {system} x{processes}: {len(pools.fixed):,} requests at {fixed_rate:.0f} req/s (open loop)")
            fixed = open_loop(port, [s.http(f"127.0.0.1:{port}", "/webhooks/seam") for s in pools.fixed],
                              fixed_rate)
        r.flush()
        before = r.used_memory()
        log(f"ingest {system} x{processes}: wrk -c64 for {seconds} s")
        spy = profile.start(server.pid, seconds - 2, f"ingest-{system}") if profile_s else None
        cpu = server.cpu_seconds()
        with RssSampler([server]) as rss:
            saturated = run_wrk(f"http://127.0.0.1:{port}/webhooks/seam", pools.wrk_dir, seconds,
                                threads=pools.threads)
        result = IngestResult(LABELS[system], processes, saturated, fixed, rss.peak[server.name])
        if saturated.requests:
            result.cpu_per_request = (server.cpu_seconds() - cpu) / saturated.requests
        if spy is not None:
            result.profile = profile.finish(spy)
        if system == "c":
            result.stored = r.client.xlen(keys.INBOX)
            if result.stored:
                result.redis_bytes = (r.used_memory() - before) // result.stored
        return result
    finally:
        server.stop()
        release_port(port)


def run(r: BenchRedis, pools: Pools, seconds: int, fixed_rate: float) -> tuple[Section, dict[str, IngestResult]]:
    """The ingest table: (a), (b), (c) with one web process each, saturated and at a fixed rate."""
    results = {s: bench(s, r, pools, free_port(), seconds, fixed_rate=fixed_rate) for s in "abc"}
    a, b, c = results["a"], results["b"], results["c"]
    section = Section(f"Ingest (800-byte signed deliveries, unique ids, 1 web process; wrk -t2 -c64 for {seconds} s; "
                      f"open loop at {fixed_rate:,.0f} req/s)",
                      ["system", "req/s", "p50", "p99", "errors", "web CPU/req", f"p50 @ {fixed_rate:,.0f}/s",
                       f"p99 @ {fixed_rate:,.0f}/s", "vs (a)", "vs (b)"])
    for res in (a, b, c):
        s, f = res.saturated, res.fixed
        section.add(res.system, f"{s.rps:,.0f}", ms(s.p50), ms(s.p99), s.errors + (f.errors if f else 0),
                    f"{res.cpu_per_request * 1e6:,.0f} us", ms(f.p50 if f else None), ms(f.p99 if f else None),
                    ratio(s.rps, a.saturated.rps), ratio(s.rps, b.saturated.rps))
    if c.fixed and a.fixed and c.fixed.p99 and a.fixed.p99:
        fixed_ratio = c.fixed.p99 / a.fixed.p99
        section.notes.append(f"fixed rate: (c) p99 {ms(c.fixed.p99)} against (a) {ms(a.fixed.p99)} at "
                             f"{fixed_rate:,.0f} req/s -> {fixed_ratio:.2f} x (target <= 2 x: "
                             f"{'PASS' if fixed_ratio <= 2 else 'FAIL'}); saturated (c)/(a) -> "
                             f"{c.saturated.rps / a.saturated.rps:.2f} x (target >= 0.7 x: "
                             f"{'PASS' if c.saturated.rps >= 0.7 * a.saturated.rps else 'FAIL'})")
    section.notes.append(
        f"targets: (c) >= 0.7 x (a) -> {c.saturated.rps / a.saturated.rps:.2f}; (c) >= 4 x (b) -> "
        f"{c.saturated.rps / b.saturated.rps:.2f}; p99 <= 50 ms saturated -> {ms(c.saturated.p99)}; "
        f"p99 <= 10 ms at {fixed_rate:,.0f}/s -> {ms(c.fixed.p99 if c.fixed else None)}")
    lags = ", ".join(f"{s} {ms(res.fixed.max_lag)}" for s, res in results.items() if res.fixed)
    section.notes.append(f"worst scheduling lag of the open-loop generator itself: {lags} (a lag of more than a "
                         "few ms means the machine, not the server, stalled: other processes share the cores)")
    section.notes.append(f"(c) stored {c.stored:,} deliveries in the inbox stream for {c.saturated.requests:,} "
                         "answered requests (each 202 only after its batch was written)")
    section.notes.append("load generators: wrk 4.1 replaying pre-signed requests (bench/wrk_replay.lua) for the "
                         "saturated rows; bench/loadgen.py (asyncio, open loop, latency from each request's "
                         "intended send time) for the fixed-rate columns")
    return section, results
