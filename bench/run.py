"""`make bench`: every benchmark with its baselines in one run, printed as Markdown tables with ratios."""

from __future__ import annotations

import argparse
import dataclasses
import platform
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import dashboard_streams, e2e, ingest, memory, notifications, processing, profile, scale  # noqa: E402
from bench.common import BenchRedis, Section, free_port, log, mib, ms, work_dir  # noqa: E402


def machine(r: BenchRedis) -> str:
    """What the numbers were measured on."""
    import aiohttp
    import httpx
    import psutil
    import redis
    import rq
    import starlette
    import svix
    import uvicorn

    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    wrk = subprocess.run(["wrk", "--version"], capture_output=True, text=True).stdout.split("[")[0].strip()
    load = ", ".join(f"{x:.2f}" for x in psutil.getloadavg())
    return (f"- machine: {psutil.cpu_count()} cores ({cpu}), {mib(psutil.virtual_memory().total)} RAM, "
            f"load average at start {load}\n"
            f"- software: Python {platform.python_version()}, redis-server {r.version()}, "
            f"redis-py {redis.__version__}, "
            f"rq {rq.__version__}, starlette {starlette.__version__}, uvicorn {uvicorn.__version__}, "
            f"svix {svix.__version__}, httpx {httpx.__version__}, aiohttp {aiohttp.__version__}, {wrk}\n"
            f"- all processes, the load generators and Redis share these cores\n")


def e2e_section(res: e2e.E2EResult, rate: float, seconds: float, bare: e2e.E2EResult) -> Section:
    def pct(which: str, q: float, res: e2e.E2EResult = res) -> str:
        values = getattr(res, which)
        missing = res.commands - len(values)
        if missing > res.commands * (100 - q) / 100:
            return "> run end"
        return ms(res.p(which, q))

    s = Section(f"End to end ({rate:.0f} commands/s for {seconds:.0f} s, each confirmed by one signed webhook; "
                "web + worker as in the Procfile)", ["measure", "count", "p50", "p99"])
    s.add("webhook ack (POST -> 202)", f"{res.load.requests:,}", ms(res.load.p50), ms(res.load.p99))
    s.add("POST -> command resolved", f"{len(res.resolved):,} / {res.commands:,}", pct("resolved", 50),
          pct("resolved", 99))
    s.add("POST -> notification received", f"{len(res.notified):,} / {res.commands:,}", pct("notified", 50),
          pct("notified", 99))
    s.add(f"no notification target configured ({bare.commands:,} commands, {bare.commands / rate:.0f} s): "
          "POST -> command resolved", f"{len(bare.resolved):,} / {bare.commands:,}", pct("resolved", 50, bare),
          pct("resolved", 99, bare))
    s.notes.append(f"target: p99 <= 100 ms to resolution -> {pct('resolved', 99)} with a notification target, "
                   f"{pct('resolved', 99, bare)} without one")
    if res.notify_rate:
        s.notes.append(f"notifications arrived at {res.notify_rate:,.0f}/s on average (first to last), "
                       f"for {rate:.0f} commands/s")
    s.notes.append("resolution time is when the command's `lh:cmd:<id>:done` message reached a subscriber; "
                   "notification time is when its signed POST reached the bench's receiver; counts are what "
                   "arrived before the run ended (10 s after the last webhook)")
    return s


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="short runs (a smoke test, figures are rough)")
    parser.add_argument("--no-profile", action="store_true", help="skip the py-spy profiles after the runs")
    parser.add_argument("--only", choices=["notifications"], help="run only this benchmark (with its baselines)")
    args = parser.parse_args()
    q = args.quick
    ingest_s = 3 if q else 8
    fixed = 1000
    n_events, n_rq, n_brpop, others = (3000, 500, 1500, 10_000) if q else (20_000, 2000, 6000, 100_000)
    e2e_rate, e2e_s, bare_s = (200, 5, 3) if q else (200, 30, 10)

    started = time.time()
    r = BenchRedis()
    out: list[str] = []
    try:
        out.append(machine(r))
        sizes = notifications.Sizes.quick() if q else notifications.Sizes()
        sizes = dataclasses.replace(sizes, profile_s=0 if args.no_profile else (3 if q else 8))
        if args.only == "notifications":
            out += [s.markdown() for s in notifications.run(r, sizes)]
        else:
            pools = ingest.Pools(saturated=40_000 if q else 110_000, fixed=2000 if q else 4000)
            ing, ing_results = ingest.run(r, pools, ingest_s, fixed)
            two_web = scale.ingest_two(r, pools, ingest_s)  # while the pool's signatures are fresh
            proc, proc_results = processing.run(r, n_events, n_rq, n_brpop, others)
            two_workers = scale.processing_two(r, n_events)
            end = e2e.run(r, e2e_rate, e2e_s, profile_s=0 if args.no_profile else 8)
            end_bare = e2e.run(r, e2e_rate, bare_s, drain_s=3, notify=False)
            rb = memory.redis_bytes(r)
            dash, _ = dashboard_streams.run(seconds=5 if q else 15)
            c_big = proc_results["c_big"]
            rss = [("web (c), saturated ingest", ing_results["c"].peak_rss),
                   ("web (a), saturated ingest", ing_results["a"].peak_rss),
                   ("web (b), saturated ingest", ing_results["b"].peak_rss),
                   (f"worker (c), draining with {others:,} other pending", c_big.peak_rss),
                   ("web, end to end", end.peak_rss.get("e2e-web", 0)),
                   ("worker (+ notifier child), end to end", end.peak_rss.get("e2e-worker", 0))]
            out += [ing.markdown(), proc.markdown(), e2e_section(end, e2e_rate, e2e_s, end_bare).markdown(),
                    memory.section(rb, rss, ing_results["c"].redis_bytes,
                                   proc_results["c"].redis_bytes_per_event).markdown(),
                    scale.section(ing_results, two_web, proc_results["c"], two_workers).markdown(),
                    dash.markdown()]
            out += [s.markdown() for s in notifications.run(r, sizes)]
            if not args.no_profile:
                log("profiles (separate short runs after the measured ones; the end-to-end one was sampled during it)")
                web = ingest.bench("c", r, ingest.Pools(40_000, 0), free_port(), 5, fixed_rate=None, profile_s=1)
                worker = processing.bench_lockhook(r, 6000, profile_s=4)
                out.append("### Profiles\n\n" + profile.markdown("web (c) under wrk saturation", web.profile or [])
                           + "\n" + profile.markdown("worker (c) draining queued events", worker.profile or [])
                           + "\n" + profile.markdown("worker process tree (`lockhook worker`) during the end-to-end "
                                                     "run", end.profile or []))
    finally:
        r.stop()
    text = "\n".join(out) + f"\n_bench took {time.time() - started:.0f} s_\n"
    print(text)
    (work_dir() / "latest.md").write_text(text)


if __name__ == "__main__":
    main()
