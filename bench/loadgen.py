"""Load generators: wrk for saturation (closed loop), and an asyncio open-loop generator for fixed rates."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from bench.common import ROOT, Signed, percentile, work_dir

WRK_SCRIPT = ROOT / "bench" / "wrk_replay.lua"


@dataclass
class LoadResult:
    """What one load run measured; latencies in seconds."""

    requests: int
    seconds: float
    p50: float | None
    p99: float | None
    errors: int
    statuses: Counter = field(default_factory=Counter)
    wrapped: int = 0
    max_lag: float = 0.0

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


def write_wrk_files(deliveries: list[Signed], threads: int) -> Path:
    """One TSV per wrk thread, so every thread replays its own unique delivery ids."""
    folder = work_dir() / "wrk"
    folder.mkdir(exist_ok=True)
    for t in range(threads):
        with open(folder / f"wrk_{t}.tsv", "w") as out:
            for s in deliveries[t::threads]:
                out.write(f"{s.delivery_id}\t{s.timestamp}\t{s.signature}\t{s.body.decode()}\n")
    return folder


def run_wrk(url: str, folder: Path, seconds: int, connections: int = 64, threads: int = 2) -> LoadResult:
    """Saturate `url` with wrk for `seconds`, replaying the pre-signed deliveries in `folder`."""
    if not shutil.which("wrk"):
        raise RuntimeError("wrk is not installed (make bench installs Debian's wrk)")
    argv = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--timeout", "5s", "-s", str(WRK_SCRIPT),
            url, "--", str(folder)]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 120)
    line = next((x for x in done.stdout.splitlines() if x.startswith("{")), None)
    if line is None:
        raise RuntimeError(f"wrk printed no result: {done.stdout[-1000:]} {done.stderr[-1000:]}")
    r = json.loads(line)
    return LoadResult(requests=r["requests"], seconds=r["duration_us"] / 1e6, p50=r["p50_us"] / 1e6,
                      p99=r["p99_us"] / 1e6, errors=sum(r[k] for k in ("connect", "read", "write", "status",
                                                                          "timeout")),
                      wrapped=r["wrapped"])


async def open_loop_async(port: int, payloads: list[bytes], rate: float, connections: int, on_send) -> LoadResult:
    idle: asyncio.Queue = asyncio.Queue()
    for _ in range(connections):
        idle.put_nowait(await asyncio.open_connection("127.0.0.1", port))
    latencies: list[float] = []
    statuses: Counter = Counter()
    errors = 0
    max_lag = 0.0

    async def one(i: int, target: float) -> None:
        nonlocal errors
        reader, writer = await idle.get()
        try:
            if on_send is not None:
                on_send(i)
            writer.write(payloads[i])
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head[9:12])
            length = 0
            for line in head.split(b"\r\n"):
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            if length:
                await reader.readexactly(length)
            # measured from the intended send time: a slow server is not excused by a late send
            latencies.append(time.perf_counter() - target)
            statuses[status] += 1
            if status >= 400:
                errors += 1
        except (OSError, asyncio.IncompleteReadError, ValueError):
            errors += 1
            writer.close()
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
        finally:
            idle.put_nowait((reader, writer))

    # perf_counter, not loop.time(): uvloop's clock has millisecond resolution
    start = time.perf_counter() + 0.05
    tasks = []
    for i in range(len(payloads)):
        target = start + i / rate
        delay = target - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        max_lag = max(max_lag, time.perf_counter() - target)
        tasks.append(asyncio.create_task(one(i, target)))
    await asyncio.gather(*tasks)
    elapsed = time.perf_counter() - start
    while not idle.empty():
        _, writer = idle.get_nowait()
        writer.close()
    return LoadResult(requests=len(latencies), seconds=elapsed, p50=percentile(latencies, 50),
                      p99=percentile(latencies, 99), errors=errors, statuses=statuses, max_lag=max_lag)


def run_async(coro):
    """Run a coroutine on uvloop (as the servers do) when available."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover
        return asyncio.run(coro)
    return uvloop.run(coro)


def open_loop(port: int, payloads: list[bytes], rate: float, connections: int = 32) -> LoadResult:
    """Send `payloads` at a fixed `rate` whatever the responses do (open loop)."""
    return run_async(open_loop_async(port, payloads, rate, connections, None))

