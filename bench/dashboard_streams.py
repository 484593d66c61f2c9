"""Live dashboard cost: webhook ack p99 at a steady rate with 0 and with 50 open `GET /dashboard/events` streams.

Web + worker from the Procfile; the streams are plain keep-alive readers sending the API token; the
deliveries confirm pending commands on a few devices, so the overview the streams show keeps changing.
"""

from __future__ import annotations

import asyncio
import threading

from bench.common import (
    BenchRedis,
    Section,
    free_port,
    lockhook_env,
    log,
    ms,
    register_pending,
    release_port,
    signed_deliveries,
    start_procfile,
    wait_port,
)
from bench.loadgen import open_loop

TOKEN = "bench-dashboard-token"


class Streams:
    """`n` SSE readers in a thread of their own; counts the bytes the server sends them."""

    def __init__(self, port: int, n: int):
        self.port, self.n = port, n
        self.bytes = 0
        self.open = 0
        self._stop: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Streams:
        self._thread.start()
        self._ready.wait(30)
        return self

    def __exit__(self, *exc) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(30)

    def _run(self) -> None:
        asyncio.run(self._main())

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        readers = [asyncio.create_task(self._read()) for _ in range(self.n)]
        while self.open < self.n and not all(t.done() for t in readers):
            await asyncio.sleep(0.05)
        self._ready.set()
        await self._stop.wait()
        for t in readers:
            t.cancel()
        await asyncio.gather(*readers, return_exceptions=True)

    async def _read(self) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        writer.write(f"GET /dashboard/events HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {TOKEN}\r\n"
                     "Accept: text/event-stream\r\n\r\n".encode())
        await reader.readuntil(b"\r\n\r\n")
        self.open += 1
        try:
            while chunk := await reader.read(65536):
                self.bytes += len(chunk)
        finally:
            writer.close()


def run(rate: float = 20, seconds: int = 15, streams: int = 50) -> tuple[Section, dict]:
    r = BenchRedis()
    port = free_port()
    env = lockhook_env(r.url, PORT=port, LOCKHOOK_API_TOKEN=TOKEN)
    web = start_procfile("web", env, "web-dash")
    worker = start_procfile("worker", env, "worker-dash")
    figures: dict = {}
    try:
        wait_port(port, web)
        count = int(rate * seconds)
        for n in (0, streams):
            run_id = f"dash{n}"
            register_pending(r.client, run_id, count, device_count=5)
            deliveries = signed_deliveries(run_id, count, device_count=5)
            payloads = [s.http(f"127.0.0.1:{port}", "/webhooks/seam") for s in deliveries]
            log(f"dashboard: {count} deliveries at {rate:g}/s with {n} open streams")
            if n:
                with Streams(port, n) as st:
                    result = open_loop(port, payloads, rate, connections=8)
                figures[n] = (result, st.bytes, st.open)
            else:
                figures[n] = (open_loop(port, payloads, rate, connections=8), 0, 0)
    finally:
        web.stop()
        worker.stop()
        release_port(port)
        r.stop()
    alone, loaded = figures[0][0], figures[streams][0]
    section = Section(f"Live dashboard streams (webhooks at {rate:g}/s for {seconds} s, web + worker)",
                      ["open streams", "ack p50", "ack p99", "errors", "bytes sent to streams", "p99 vs 0 streams"])
    for n, (res, sent, opened) in figures.items():
        section.add(f"{n}" + (f" ({opened} opened)" if n else ""), ms(res.p50), ms(res.p99), res.errors,
                    f"{sent / 1e6:,.1f} MB" if n else "-", f"{res.p99 / alone.p99:.2f} x" if alone.p99 else "-")
    ratio = loaded.p99 / alone.p99 if alone.p99 else float("inf")
    section.notes.append(f"target: p99 with {streams} streams <= 2 x p99 with none -> {ratio:.2f} x "
                         f"({'PASS' if ratio <= 2 else 'FAIL'})")
    return section, {"ratio": ratio, "bytes": figures[streams][1]}


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    s, _ = run(seconds=5 if args.quick else 15)
    print(s.markdown())
