"""A notification sink in its own process: a target answering 200 at once, one answering 503, one that hangs.

Run as `python -m bench.notify_sink`; it prints one JSON line with its four ports once they all listen:
`ok` (200 at once), `fail` (503 at once), `hang` (accepts connections, never reads nor answers) and
`control` (`GET /stats`, `GET /dump?path=`, `POST /reset`, for the bench). Every request on `ok` and `fail`
is recorded as (arrival time, webhook-id, notification type, command or device id) under its path (`/stats`
counts requests and distinct (type, id) notifications, so a notification sent twice shows); the first
few requests of each path are kept whole so the bench can check their signatures. Arrival times are
`time.time()`, the same clock the bench stamps its sends with.
"""

from __future__ import annotations

import asyncio
import json
import re
import sys
import time
from collections import defaultdict

from aiohttp import web

SAMPLES_PER_PATH = 5
_SLACK_COMMAND = re.compile(r"\bcommand (\S+)\s*$")
_SLACK_DEVICE = re.compile(r"\bdevice (\S+)")


def parse(body: bytes) -> tuple[str | None, str | None]:
    """(type, key) of a notification body: key is the command id for command.*, else the device id.

    Signed webhooks carry `{"type","id","created_at","data"}`; Slack bodies `{"text": "<type>: ..."}`.
    """
    try:
        doc = json.loads(body)
    except ValueError:
        return None, None
    if not isinstance(doc, dict):
        return None, None
    if "text" in doc and "type" not in doc:
        text = str(doc["text"])
        kind = text.split(":", 1)[0].strip() or None
        match = _SLACK_COMMAND.search(text) if kind and kind.startswith("command.") else _SLACK_DEVICE.search(text)
        return kind, match.group(1) if match else None
    data = doc.get("data") if isinstance(doc.get("data"), dict) else {}
    kind = doc.get("type")
    key = data.get("command_id") if str(kind).startswith("command.") else data.get("device_id")
    return kind, key


class Recorder:
    """What arrived, per path."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.records: dict[str, list[tuple]] = defaultdict(list)
        self.samples: dict[str, list[dict]] = defaultdict(list)
        self.distinct: dict[str, set] = defaultdict(set)  # (type, key): a notification sent twice counts once
        self.hanging = 0

    def add(self, path: str, headers, body: bytes) -> None:
        now = time.time()
        kind, key = parse(body)
        self.records[path].append((now, headers.get("webhook-id"), kind, key))
        self.distinct[path].add((kind, key))
        if len(self.samples[path]) < SAMPLES_PER_PATH:
            self.samples[path].append({"headers": dict(headers), "body": body.decode(errors="replace")})


def apps(rec: Recorder) -> tuple[web.Application, web.Application, web.Application]:
    async def ok(request: web.Request) -> web.Response:
        rec.add(request.path, request.headers, await request.read())
        return web.Response(status=200)

    async def fail(request: web.Request) -> web.Response:
        rec.add(request.path, request.headers, await request.read())
        return web.Response(status=503, text="unavailable")

    async def stats(request: web.Request) -> web.Response:
        return web.json_response({"paths": {p: len(v) for p, v in rec.records.items()},
                                  "distinct": {p: len(v) for p, v in rec.distinct.items()}, "hanging": rec.hanging})

    async def dump(request: web.Request) -> web.Response:
        path = request.query.get("path", "")
        return web.json_response({"records": rec.records.get(path, []), "samples": rec.samples.get(path, [])})

    async def reset(request: web.Request) -> web.Response:
        rec.reset()
        return web.json_response({"reset": True})

    ok_app, fail_app, control = web.Application(), web.Application(), web.Application()
    ok_app.router.add_route("*", "/{tail:.*}", ok)
    fail_app.router.add_route("*", "/{tail:.*}", fail)
    control.router.add_get("/stats", stats)
    control.router.add_get("/dump", dump)
    control.router.add_post("/reset", reset)
    return ok_app, fail_app, control


async def serve() -> None:
    rec = Recorder()
    held: list[asyncio.StreamWriter] = []

    async def hang(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        rec.hanging += 1
        held.append(writer)  # never read, never answered, never closed by us

    ports = {}
    for name, app in zip(("ok", "fail", "control"), apps(rec), strict=True):
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0, backlog=1024)
        await site.start()
        ports[name] = runner.addresses[0][1]
    hanger = await asyncio.start_server(hang, "127.0.0.1", 0, backlog=1024)
    ports["hang"] = hanger.sockets[0].getsockname()[1]
    print(json.dumps(ports), flush=True)
    await asyncio.Event().wait()


def main() -> None:
    try:
        import uvloop
    except ImportError:  # pragma: no cover
        asyncio.run(serve())
        return
    uvloop.run(serve())


if __name__ == "__main__":
    sys.exit(main())
