"""Test helpers for the notifier: run it in-process, make one attempt, write an outcome to the outbox."""

from __future__ import annotations

import asyncio
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from lockhook import keys
from lockhook.redis_client import async_client
from lockhook.streams import ensure_group
from workers.notifier import Attempt, Sender, serve


class Receiver:
    """A local HTTP server that records every request and answers from a per-path plan.

    Plan steps: "ok", an HTTP status ("500", "400", ...), "429:N" (with Retry-After N), "hang" (answers
    after `hang_s`, past the client's timeout) and "drop" (closes the connection without answering).
    """

    def __init__(self, hang_s: float = 3.0):
        self.requests: list[dict] = []
        self.plans: dict[str, list[str]] = {}
        self.hang_s = hang_s
        self.open = self.max_open = 0  # requests being answered now / at most at once
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                path = self.path.split("?")[0]
                with receiver.lock:
                    plan = receiver.plans.get(path) or []
                    step = plan.pop(0) if plan else "ok"
                    entry = {"path": path, "headers": {k.lower(): v for k, v in self.headers.items()},
                             "body": body, "at": time.monotonic(), "step": step}
                    receiver.requests.append(entry)
                    receiver.open += 1
                    receiver.max_open = max(receiver.max_open, receiver.open)
                try:
                    if step == "drop":
                        self.close_connection = True
                        return
                    if step == "hang":
                        time.sleep(receiver.hang_s)
                        step = "ok"
                    status, _, retry_after = step.partition(":")
                    code = 200 if status == "ok" else int(status)
                    self.send_response(code)
                    if retry_after:
                        self.send_header("Retry-After", retry_after)
                    self.send_header("content-length", "0")
                    self.end_headers()
                except OSError:
                    pass
                finally:
                    with receiver.lock:
                        receiver.open -= 1

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.server.block_on_close = False
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.started = time.monotonic()
        self.base = f"http://127.0.0.1:{self.server.server_port}"

    def at(self, path: str) -> list[dict]:
        with self.lock:
            return [r for r in self.requests if r["path"] == path]

    def close(self):
        self.server.shutdown()
        self.server.server_close()


class InProcess:
    """The notifier (consumer thread and sender loop) in a thread of the test; leaving the block stops it
    the way SIGTERM does (stop leasing, finish in-flight sends)."""

    def __init__(self, settings, **sender_options):
        self.settings, self.options = settings, sender_options
        self.ready = threading.Event()

    def __enter__(self) -> InProcess:
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        assert self.ready.wait(10)
        return self

    def _run(self) -> None:
        async def main():
            self.loop, self.stop = asyncio.get_running_loop(), asyncio.Event()
            self.ready.set()
            await serve(self.settings, self.stop, **self.options)

        asyncio.run(main())

    def __exit__(self, *exc) -> None:
        self.loop.call_soon_threadsafe(self.stop.set)
        self.thread.join(60)
        assert not self.thread.is_alive()


def deliver(record, settings, **sender_options) -> Attempt:
    """One attempt of one record, as the sender makes it (nothing recorded)."""
    async def main():
        redis = async_client(settings)
        try:
            async with Sender(settings, redis, **sender_options) as sender:
                return await sender.deliver(record)
        finally:
            await redis.aclose()

    return asyncio.run(main())


def outbox_entry(r, type_: str, command_id: str | None = None, device_id: str | None = None, event: str = "e1"):
    """Write an outcome to the outbox as the processing scripts do; returns it as the consumer reads it."""
    ensure_group(r, keys.OUTBOX, keys.OUTBOX_GROUP)
    fields = {"type": type_, "at": "1", **({"command_id": command_id} if command_id else {}),
              **({"device_id": device_id, "event": event} if device_id else {})}
    sid = r.xadd(keys.OUTBOX, fields)
    return sid, {k.encode(): v.encode() for k, v in fields.items()}
