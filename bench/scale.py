"""Scale: ingest with 1 and 2 web processes, processing with 1 and 2 worker processes."""

from __future__ import annotations

from bench import ingest, processing
from bench.common import BenchRedis, Section, free_port, ms


def ingest_two(r: BenchRedis, pools: ingest.Pools, seconds: int) -> dict[str, ingest.IngestResult]:
    """(a) and (c) with `uvicorn --workers 2`, saturated."""
    return {s: ingest.bench(s, r, pools, free_port(), seconds, processes=2, fixed_rate=None) for s in ("a", "c")}


def processing_two(r: BenchRedis, events: int) -> processing.ProcessingResult:
    """Two drain processes reading the inbox through the same consumer group."""
    return processing.bench_lockhook(r, events, processes=2)


def section(one_web: dict, two_web: dict, one_worker: processing.ProcessingResult,
            two_workers: processing.ProcessingResult) -> Section:
    s = Section("Scale (same load; 2 web processes = uvicorn --workers 2; 2 worker processes = 2 drains in one "
                "consumer group)", ["system", "1 process", "2 processes", "2 / 1", "p99 with 2"])
    for system, two in two_web.items():
        one = one_web[system].saturated.rps
        s.add(f"ingest {ingest.LABELS[system]}, req/s", f"{one:,.0f}", f"{two.saturated.rps:,.0f}",
              f"{two.saturated.rps / one:.2f}x", ms(two.saturated.p99))
    s.add("processing (c) lockhook drain, events/s", f"{one_worker.rate:,.0f}", f"{two_workers.rate:,.0f}",
          f"{two_workers.rate / one_worker.rate:.2f}x", "-")
    s.notes.append("the machine has 2 cores shared by the load generator, Redis and the measured processes, so "
                   "2 processes cannot double; the ratio shows what a second process adds here")
    s.notes.append("`lockhook worker` runs one drain job at a time (the `lh:drain:scheduled` flag), so a second "
                   "worker process only speeds processing up when drains run concurrently, as measured here")
    return s
