"""Local HTTP servers standing in for remotes: a notification target and a device cloud, recording requests."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from tools.devserver import free_port


@dataclass
class Answer:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0
    """Seconds to hold the answer back (a slow or hanging remote)."""


class RecordingServer:
    """A threaded HTTP server on 127.0.0.1 that records every POST and answers what `respond` says."""

    def __init__(self):
        self.requests: list[dict] = []
        self.lock = threading.Lock()
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 (http.server's naming)
                recorder._handle(self)

            def log_message(self, *args):  # keep test output quiet
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.server.block_on_close = False  # a hanging answer must not hold up the test's teardown
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def respond(self, request: dict) -> Answer:
        """The answer to `request` (called under `lock`, after it is recorded)."""
        return Answer()

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        raw = handler.rfile.read(int(handler.headers.get("content-length") or 0))
        request = {"path": handler.path, "headers": {k.lower(): v for k, v in handler.headers.items()},
                   "body": raw, "at": time.monotonic(), "wall": time.time()}
        with self.lock:
            self.requests.append(request)
            answer = self.respond(request)
            request["status"] = answer.status
        if answer.delay_s:
            time.sleep(answer.delay_s)  # the remote's own slowness, not a wait in a test
        try:
            handler.send_response(answer.status)
            for name, value in answer.headers.items():
                handler.send_header(name, value)
            handler.send_header("content-length", str(len(answer.body)))
            handler.end_headers()
            handler.wfile.write(answer.body)
        except OSError:  # the client gave up first (its timeout)
            pass

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class NotifyTarget(RecordingServer):
    """A customer's notification endpoint at `url`: answers `status` (after `delay_s`) with `headers`."""

    def __init__(self, status: int = 200, delay_s: float = 0.0, headers: dict[str, str] | None = None):
        self.status = status
        self.delay_s = delay_s
        self.headers = headers or {}
        super().__init__()
        self.url = self.base + "/hook"

    def respond(self, request: dict) -> Answer:
        return Answer(self.status, headers=self.headers, delay_s=self.delay_s)

    def ids(self) -> list[str]:
        """webhook-id of every request answered 2xx (a retry after a non-2xx is not a duplicate)."""
        with self.lock:
            return [r["headers"].get("webhook-id", "") for r in self.requests if r["status"] < 300]

    def delivered(self, type_: str | None = None) -> list[dict]:
        """Bodies of the requests answered 2xx, optionally of one outcome type."""
        with self.lock:
            bodies = [json.loads(r["body"]) for r in self.requests if r["status"] < 300]
        return [b for b in bodies if type_ is None or b.get("type") == type_]


class DeviceCloud(RecordingServer):
    """A device cloud: POST /locks/{id}/actions answers at once, confirmation comes later by webhook.

    `refuse[device_id] = (code, message)` answers `{error_code, message}`; `fail_next` answers that
    many 503s first; every request is in `calls` (its JSON body and authorization header).
    """

    def __init__(self):
        self.refuse: dict[str, tuple[str, str]] = {"offline-lock": (
            "DEVICE_OFFLINE", "The device is currently offline and cannot accept commands.")}
        self.fail_next = 0
        super().__init__()
        self.url = self.base

    @property
    def calls(self) -> list[dict]:
        with self.lock:
            return [{"path": r["path"], "body": json.loads(r["body"] or b"{}"),
                     "authorization": r["headers"].get("authorization")} for r in self.requests]

    def respond(self, request: dict) -> Answer:
        if self.fail_next > 0:
            self.fail_next -= 1
            return _json(503, {"message": "try again"})
        parts = request["path"].strip("/").split("/")
        if len(parts) != 3 or parts[0] != "locks" or parts[2] != "actions":
            return _json(404, {"error_code": "NOT_FOUND", "message": "no such route"})
        lock_id = parts[1]
        if lock_id in self.refuse:
            code, message = self.refuse[lock_id]
            return _json(409, {"error_code": code, "message": message})
        body = json.loads(request["body"] or b"{}")
        return _json(200, {"action_id": f"act_{len(self.requests)}", "custom_id": body.get("custom_id"),
                           "status": "pending", "lock_id": lock_id, "action": body.get("action")})


def _json(status: int, payload: dict) -> Answer:
    return Answer(status, json.dumps(payload).encode(), {"content-type": "application/json"})


def closed_port_url() -> str:
    """A local URL nothing listens on (a remote that is down)."""
    return f"http://127.0.0.1:{free_port()}"
