"""End to end: 200 commands/s for 30 s, each confirmed by a signed webhook, through the Procfile's web + worker.

Commands are registered (pending) before the run; the measured path is: webhook POST -> verify -> inbox ->
drain job -> apply_event resolves the command (seen on its `lh:cmd:<id>:done` pub/sub message) -> outbox ->
notification job -> signed POST to a local receiver started here (NOTIFY_WEBHOOK_URL).
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field

import redis.asyncio as aioredis

from bench import profile
from bench.common import (
    BenchRedis,
    RssSampler,
    free_port,
    lockhook_env,
    log,
    percentile,
    register_pending,
    release_port,
    signed_deliveries,
    start_procfile,
    wait_port,
)
from bench.loadgen import LoadResult, open_loop_async, run_async

NOTIFY_SECRET = "whsec_YmVuY2gtbm90aWZ5LXNlY3JldC0wMTIzNDU2Nzg5"  # bench-only


@dataclass
class E2EResult:
    commands: int
    load: LoadResult
    resolved: list[float] = field(default_factory=list)
    notified: list[float] = field(default_factory=list)
    peak_rss: dict = field(default_factory=dict)
    profile: list | None = None
    notify: bool = True
    notify_rate: float = 0.0

    def p(self, which: str, q: float) -> float | None:
        return percentile(getattr(self, which), q)


async def _notification_server(port: int, arrived: dict[str, float]):
    """A minimal HTTP/1.1 keep-alive receiver: records when each command's notification first arrives."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line[:15].lower() == b"content-length:":
                        length = int(line[15:])
                body = await reader.readexactly(length) if length else b""
                now = time.time()
                try:
                    command_id = json.loads(body)["data"]["command_id"]
                except (ValueError, KeyError, TypeError):
                    command_id = None
                if command_id:
                    arrived.setdefault(command_id, now)
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

    return await asyncio.start_server(handle, "127.0.0.1", port)


async def _listen_resolutions(url: str, resolved: dict[str, float], ready: asyncio.Event) -> None:
    client = aioredis.Redis.from_url(url)
    pubsub = client.pubsub()
    await pubsub.psubscribe("lh:cmd:*:done")
    ready.set()
    try:
        async for message in pubsub.listen():
            if message["type"] == "pmessage":
                channel = message["channel"].decode()
                resolved.setdefault(channel[len("lh:cmd:"):-len(":done")], time.time())
    finally:
        await pubsub.aclose()
        await client.aclose()


def run(r: BenchRedis, rate: float = 200, seconds: float = 30, drain_s: float = 10,
        profile_s: float = 0, notify: bool = True) -> E2EResult:
    n = int(rate * seconds)
    r.flush()
    register_pending(r.client, "e2e", n, timeout_s=600)
    deliveries = signed_deliveries("e2e", n)
    web_port, notify_port = free_port(), free_port()
    targets = dict(NOTIFY_WEBHOOK_URL=f"http://127.0.0.1:{notify_port}/hook", NOTIFY_WEBHOOK_SECRET=NOTIFY_SECRET)
    env = lockhook_env(r.url, PORT=web_port, **(targets if notify else {}))
    tag = "" if notify else "-nonotify"
    web = start_procfile("web", env, f"e2e-web{tag}")
    worker = start_procfile("worker", env, f"e2e-worker{tag}")
    sent: dict[int, float] = {}
    resolved: dict[str, float] = {}
    notified: dict[str, float] = {}

    async def main() -> LoadResult:
        server = await _notification_server(notify_port, notified)
        ready = asyncio.Event()
        listener = asyncio.create_task(_listen_resolutions(r.url, resolved, ready))
        await ready.wait()
        payloads = [d.http(f"127.0.0.1:{web_port}", "/webhooks/seam") for d in deliveries]
        load = await open_loop_async(web_port, payloads, rate, 16, lambda i: sent.__setitem__(i, time.time()))
        deadline = time.monotonic() + drain_s
        while time.monotonic() < deadline and (len(resolved) < n or (notify and len(notified) < n)):
            await asyncio.sleep(0.1)
        listener.cancel()
        server.close()
        return load

    try:
        wait_port(web_port, web)
        time.sleep(1.0)  # the worker registers its queues
        log(f"end to end: {n} webhooks at {rate:.0f}/s, web + worker from the Procfile, "
            f"notification target {'on' if notify else 'off'}")
        spy = None
        if profile_s:
            spy = profile.start(worker.pid, profile_s, "e2e-worker", delay_s=min(5.0, seconds / 3))
        with RssSampler([web, worker]) as rss:
            load = run_async(main())
        rows = profile.finish(spy) if spy is not None else None
    finally:
        web.stop()
        worker.stop(timeout=25)
        release_port(web_port)
        release_port(notify_port)
    result = E2EResult(n, load, peak_rss={k.removesuffix(tag): v for k, v in rss.peak.items()}, profile=rows,
                       notify=notify)
    if len(notified) > 1:
        times = sorted(notified.values())
        result.notify_rate = (len(times) - 1) / max(times[-1] - times[0], 1e-6)
    for i in range(n):
        command_id = f"cmd_e2e_{i}"
        if i in sent and command_id in resolved:
            result.resolved.append(resolved[command_id] - sent[i])
        if i in sent and command_id in notified:
            result.notified.append(notified[command_id] - sent[i])
    return result
