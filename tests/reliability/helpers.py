"""Fault-injection helpers: a Redis server the test owns (AOF on), event bodies, a notification target."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import redis

from lockhook import keys
from tests.conftest import free_port, redis_server_binary


class OwnRedis:
    """A redis-server subprocess this test may stop, start, pause and kill (the shared one must not be)."""

    def __init__(self, workdir: Path, appendonly: bool = True):
        self.dir = workdir
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.appendonly = appendonly
        self.proc: subprocess.Popen | None = None
        self.url = f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        args = [redis_server_binary(), "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.dir),
                "--save", "", "--appendonly", "yes" if self.appendonly else "no", "--appendfsync", "everysec",
                "--daemonize", "no", "--logfile", str(self.dir / "redis.log")]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with redis.Redis(port=self.port, socket_timeout=1) as c:
                    if c.ping():
                        return
            except (redis.ConnectionError, redis.BusyLoadingError):
                time.sleep(0.02)
        raise AssertionError("own redis-server did not start")

    def stop(self) -> None:
        """A graceful stop (SIGTERM), as a managed Redis restart does: the AOF is flushed first."""
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(20)

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def pause(self) -> None:
        """Redis stops answering but keeps its connections open: the hang case, worse than a refusal."""
        os.kill(self.proc.pid, signal.SIGSTOP)

    def resume(self) -> None:
        os.kill(self.proc.pid, signal.SIGCONT)

    def client(self) -> redis.Redis:
        return redis.Redis(port=self.port)


def iso(ts: float | None = None) -> str:
    return datetime.fromtimestamp(ts or time.time(), tz=UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def attempt_succeeded(n: int, device: str, action: str = "lock") -> dict:
    """A Seam action_attempt.*.succeeded event confirming command n."""
    return {"event_id": f"evt_aa_{n}", "event_type": f"action_attempt.{action}_door.succeeded",
            "action_attempt_id": f"aa_{n}", "action_type": f"{action.upper()}_DOOR", "status": "success",
            "device_id": device, "workspace_id": "ws_rel", "created_at": iso(), "occurred_at": iso()}


def lock_event(n: int, device: str, locked: bool = True, **extra) -> dict:
    return {"event_id": f"evt_lock_{n}", "event_type": "lock.locked" if locked else "lock.unlocked",
            "device_id": device, "method": "keycode", "workspace_id": "ws_rel", "created_at": iso(),
            "occurred_at": iso(), **extra}


def other_event(n: int, device: str) -> dict:
    return {"event_id": f"evt_other_{n}", "event_type": "device.connected", "device_id": device,
            "workspace_id": "ws_rel", "created_at": iso(), "occurred_at": iso()}


def body(event: dict) -> bytes:
    return json.dumps(event, separators=(",", ":")).encode()


def inbox_settled(client: redis.Redis) -> bool:
    """True when every inbox entry was read and acknowledged by the drain workers."""
    try:
        groups = {g["name"].decode(): g for g in client.xinfo_groups(keys.INBOX)}
    except redis.ResponseError:
        return False
    group = groups.get(keys.INBOX_GROUP)
    if not group or group["pending"]:
        return False
    # Redis 6.2 has no "lag": compare the group's last delivered id with the stream's last id instead
    last = client.xinfo_stream(keys.INBOX)["last-generated-id"]
    return group["last-delivered-id"] == last


class NotifyTarget:
    """A local HTTP server standing in for a customer's notification endpoint; records every request."""

    def __init__(self, status: int = 200, delay_s: float = 0.0, headers: dict[str, str] | None = None):
        self.requests: list[dict] = []
        self.status = status
        self.delay_s = delay_s
        self.headers = headers or {}
        self.lock = threading.Lock()
        target = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 (http.server's naming)
                length = int(self.headers.get("content-length") or 0)
                raw = self.rfile.read(length)
                with target.lock:
                    target.requests.append({"path": self.path, "headers": {k.lower(): v for k, v in
                                                                           self.headers.items()},
                                            "body": raw, "at": time.monotonic(), "wall": time.time(),
                                            "status": target.status})
                if target.delay_s:
                    time.sleep(target.delay_s)
                self.send_response(target.status)
                for name, value in target.headers.items():
                    self.send_header(name, value)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args):  # keep test output quiet
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.server.block_on_close = False  # a hanging target must not hold up the test's teardown
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def ids(self) -> list[str]:
        """webhook-id of every request answered 2xx (a retry after a non-2xx is not a duplicate)."""
        with self.lock:
            return [r["headers"].get("webhook-id", "") for r in self.requests if r["status"] < 300]

    def delivered(self, type_: str | None = None) -> list[dict]:
        """Bodies of the requests answered 2xx, optionally of one outcome type."""
        with self.lock:
            bodies = [json.loads(r["body"]) for r in self.requests if r["status"] < 300]
        return [b for b in bodies if type_ is None or b.get("type") == type_]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def diagnose(client: redis.Redis, *processes) -> str:
    """State worth seeing when a fault test fails: stream groups, queues, process logs."""
    lines = []
    for stream in (keys.INBOX, keys.OUTBOX):
        try:
            lines.append(f"{stream} len={client.xlen(stream)} groups={client.xinfo_groups(stream)}")
        except redis.ResponseError as exc:
            lines.append(f"{stream}: {exc}")
    for name in ("events", "polls"):
        lines.append(f"queue {name}: {client.llen('rq:queue:' + name)} queued, "
                     f"{client.zcard('rq:wip:' + name)} started, {client.zcard('rq:failed:' + name)} failed, "
                     f"{client.zcard('rq:scheduled:' + name)} scheduled")
    due = client.zrange(keys.NOTIFY_DUE, 0, 9, withscores=True)
    lines.append(f"notification targets (label -> earliest due/lease ms, now {int(time.time() * 1000)}): {due}; "
                 f"sizes {[client.zcard(keys.notify_due(label.decode())) for label, _ in due]}")
    lines.append(f"flags drain={client.ttl(keys.DRAIN_FLAG)} maintenance={client.ttl(keys.MAINTENANCE_FLAG)} "
                 f"locks={client.keys('rq:scheduler-lock:*')}")
    for proc in processes:
        lines.append(f"--- {proc.name} (exit {proc.proc.poll()}) ---\n" + proc.output()[-3000:])
    return "\n".join(lines)
