"""`lockhook demo`: embedded Redis, web, worker and the simulator; a batch of commands and their outcomes, then
the lock watch: an unlock nobody commanded, a door left unlocked and its auto-relock, as notifications."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx

from lockhook.errors import ConfigError
from lockhook.ingest.signatures import signature_headers
from tools.devserver import DEV_DIR, EmbeddedRedis, free_port, new_webhook_secret, procfile_path

DEVICES = ("front_door", "back_door", "side_gate", "garage")
OFFLINE = "garage"  # answers DEVICE_OFFLINE at once: its commands are rejected
START_TIMEOUT_S = 30.0
COMMAND_TIMEOUT_S = 20
LEFT_UNLOCKED_AFTER_S = 3  # short lock-watch settings, so the demo shows them in seconds
AUTO_RELOCK_AFTER_S = 6
WATCH_TIMEOUT_S = 30


class Child:
    """A demo process in its own session, output to a log file; stop() ends its whole group."""

    def __init__(self, name: str, command: str, env: dict[str, str], log_dir: Path, cwd: Path):
        self.name = name
        self.log_path = log_dir / f"{name}.log"
        self.log = open(self.log_path, "w")  # noqa: SIM115 (closed in stop())
        self.proc = subprocess.Popen(["bash", "-c", "exec " + command], env=env, cwd=cwd, stdout=self.log,
                                     stderr=subprocess.STDOUT, start_new_session=True)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self, grace_s: float = 3.0) -> None:
        if self.alive():
            with _quiet():
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(grace_s)
            except subprocess.TimeoutExpired:
                with _quiet():
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        with _quiet():
            os.killpg(self.proc.pid, signal.SIGKILL)  # leftovers of the group (worker children)
        self.log.close()


class _quiet:
    def __enter__(self):
        return self

    def __exit__(self, kind, exc, tb):
        return kind is not None and issubclass(kind, ProcessLookupError | PermissionError)


def _wait_healthy(url: str, children: list[Child]) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        for child in children:
            if not child.alive():
                raise ConfigError(f"demo: {child.name} exited at start (see {child.log_path})")
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise ConfigError(f"demo: {url} did not answer within {START_TIMEOUT_S:.0f} s")


def plan(count: int) -> list[tuple[str, str]]:
    """(device, action) pairs: every device, alternating lock and unlock."""
    return [(DEVICES[i % len(DEVICES)], "lock" if (i // len(DEVICES)) % 2 == 0 else "unlock") for i in range(count)]


def issue_and_wait(base: str, token: str, device: str, action: str) -> dict:
    """POST /commands (via device_cloud), then hold GET /commands/{id}?wait= until it resolves."""
    headers = {"authorization": f"Bearer {token}"}
    with httpx.Client(base_url=base, headers=headers, timeout=40) as http:
        response = http.post("/commands", json={"device_id": device, "action": action, "via": "device_cloud",
                                                 "timeout_s": COMMAND_TIMEOUT_S})
        if response.status_code not in (200, 201):
            try:
                error = response.json().get("error")
            except (ValueError, AttributeError):
                error = None
            return {"device_id": device, "action": action, "status": f"HTTP {response.status_code}",
                    "error_code": error, "command_id": "-"}
        command = response.json()
        deadline = time.monotonic() + COMMAND_TIMEOUT_S + 10
        while command.get("status") == "pending" and time.monotonic() < deadline:
            command = http.get(f"/commands/{command['command_id']}", params={"wait": 30}).json()
        return command


def confirmation_ms(command: dict) -> float | None:
    from datetime import datetime

    if not command.get("resolved_at") or not command.get("created_at"):
        return None
    parse = datetime.fromisoformat
    created = parse(command["created_at"].replace("Z", "+00:00"))
    resolved = parse(command["resolved_at"].replace("Z", "+00:00"))
    return (resolved - created).total_seconds() * 1000


def render(results: list[dict], elapsed_s: float, console) -> None:
    from collections import Counter
    from statistics import median

    from rich.table import Table

    table = Table(title="lockhook demo: commands through POST /commands, confirmed by the simulator's webhooks")
    for column, justify in (("command", "left"), ("device", "left"), ("action", "left"), ("outcome", "left"),
                            ("error code", "left"), ("time to confirmation", "right")):
        table.add_column(column, justify=justify)
    colours = {"succeeded": "green", "failed": "red", "rejected": "yellow", "timed_out": "magenta"}
    for c in results:
        ms = confirmation_ms(c)
        status = str(c.get("status"))
        table.add_row(str(c.get("command_id")), str(c.get("device_id")), str(c.get("action")),
                      f"[{colours.get(status, 'white')}]{status}[/]", c.get("error_code") or "",
                      f"{ms:.0f} ms" if ms is not None else "")
    console.print(table)
    counts = Counter(str(c.get("status")) for c in results)
    confirmed = [m for c in results if c.get("status") in ("succeeded", "failed")
                 if (m := confirmation_ms(c)) is not None]
    totals = ", ".join(f"{counts[s]} {s}" for s in ("succeeded", "failed", "rejected", "timed_out", "pending")
                       if counts.get(s))
    others = sum(v for k, v in counts.items() if k not in ("succeeded", "failed", "rejected", "timed_out", "pending"))
    if others:
        totals += f", {others} not issued"
    latency = f"; confirmation median {median(confirmed):.0f} ms, max {max(confirmed):.0f} ms" if confirmed else ""
    console.print(f"totals: {len(results)} commands: {totals}{latency}; demo ran {elapsed_s:.1f} s")


class NotificationSink:
    """A local notification target for the demo: keeps every payload lockhook sends it."""

    def __init__(self):
        self.payloads: list[dict] = []
        self.lock = threading.Lock()
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                with contextlib.suppress(ValueError), sink.lock:
                    sink.payloads.append(json.loads(body))
                self.send_response(200)
                self.send_header("content-length", "0")
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_port}/notifications"

    def of(self, kind: str, device: str | None = None) -> list[dict]:
        with self.lock:
            return [p for p in self.payloads if p.get("type") == kind
                    and (device is None or (p.get("data") or {}).get("device_id") == device)]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def post_seam_unlock(base: str, secret: str, device: str, **fields) -> None:
    """A signed Seam `lock.unlocked` that no command asked for (a keypad code, a thumb-turn)."""
    event = {"event_id": str(uuid.uuid4()), "event_type": "lock.unlocked", "device_id": device,
             "workspace_id": "demo", "occurred_at": _now_iso(), "created_at": _now_iso(), **fields}
    body = json.dumps(event).encode()
    headers = {**signature_headers(secret, "msg_" + uuid.uuid4().hex, body), "content-type": "application/json"}
    httpx.post(f"{base}/webhooks/seam", content=body, headers=headers, timeout=10).raise_for_status()


def _relock(http: httpx.Client, device: str) -> dict | None:
    """The device's auto-relock command once it left pending."""
    for command in http.get("/commands", params={"device_id": device}).json().get("commands", []):
        if (command.get("metadata") or {}).get("reason") == "auto_relock" and command.get("status") != "pending":
            return command
    return None


def watch_phase(base: str, token: str, secret: str, sink: NotificationSink, console) -> bool:
    """Unlock two doors without a command, wait for their alerts and auto-relocks; True when all arrived."""
    from rich.table import Table

    doors = {"front_door": {"method": "keycode", "access_code_id": "ac_guest_1042", "user_identity_id": "ui_guest"},
             "back_door": {"method": "manual"}}
    console.print(f"lock watch: {', '.join(doors)} unlocked by hand; LEFT_UNLOCKED_AFTER_S={LEFT_UNLOCKED_AFTER_S}, "
                  f"AUTO_RELOCK_AFTER_S={AUTO_RELOCK_AFTER_S} ...")
    for device, fields in doors.items():
        post_seam_unlock(base, secret, device, **fields)
    relocks: dict[str, dict | None] = {}
    deadline = time.monotonic() + WATCH_TIMEOUT_S
    with httpx.Client(base_url=base, headers={"authorization": f"Bearer {token}"}, timeout=10) as http:
        while time.monotonic() < deadline:
            relocks = {d: _relock(http, d) for d in doors}
            seen = all(sink.of("lock.unlocked_without_command", d) and sink.of("lock.left_unlocked", d) for d in doors)
            if seen and all(relocks.values()):
                break
            time.sleep(0.25)
    table = Table(title="lock watch: notifications received by a local NOTIFY_WEBHOOK_URL")
    for column in ("notification", "device", "details"):
        table.add_column(column)
    for device in doors:
        for p in sink.of("lock.unlocked_without_command", device):
            d = p["data"]
            who = ", ".join(f"{k} {d[k]}" for k in ("method", "access_code_id", "user_identity_id") if d.get(k))
            table.add_row("[yellow]lock.unlocked_without_command[/]", device, who)
        for p in sink.of("lock.left_unlocked", device):
            table.add_row("[magenta]lock.left_unlocked[/]", device, f"unlocked for {p['data'].get('unlocked_for_s')} s")
        relock = relocks.get(device)
        if relock:
            detail = f"lock command via {relock['via']}: {relock['status']}"
            if relock.get("error_code"):
                detail += f" ({relock['error_code']})"
            table.add_row("[green]auto-relock[/]", device, detail)
    console.print(table)
    missing = [d for d in doors if not (sink.of("lock.unlocked_without_command", d) and sink.of("lock.left_unlocked", d)
                                       and relocks.get(d))]
    if missing:
        console.print(f"[red]lock watch incomplete for {', '.join(missing)} within {WATCH_TIMEOUT_S} s[/]")
    return not missing


def run(count: int = 12, work_dir: Path | None = None) -> int:
    """Run the demo; 0 when every command left `pending` (resolved), 1 otherwise."""
    from rich.console import Console

    console = Console(width=None if sys.stdout.isatty() else 140)
    started = time.monotonic()
    work = Path(work_dir or DEV_DIR / "demo")
    shutil.rmtree(work, ignore_errors=True)
    (work / "logs").mkdir(parents=True)
    redis = EmbeddedRedis(work / "redis")
    sink = NotificationSink()
    children: list[Child] = []
    try:
        console.print("starting an embedded Redis, web, worker and the device-cloud simulator ...")
        redis.start()
        secret, token = new_webhook_secret(), "demo_" + secrets.token_urlsafe(12)
        web_port, sim_port = free_port(), free_port()
        base, sim = f"http://127.0.0.1:{web_port}", f"http://127.0.0.1:{sim_port}"
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("LOCKHOOK_", "SEAM_", "DEVICE_CLOUD_", "NOTIFY_", "SLACK_", "RECORD_"))}
        env.update(REDIS_URL=redis.url, PORT=str(web_port), SEAM_WEBHOOK_SECRET=secret,
                   DEVICE_CLOUD_WEBHOOK_SECRET=secret, LOCKHOOK_API_TOKEN=token, DEVICE_CLOUD_URL=sim,
                   NOTIFY_WEBHOOK_URL=sink.url, NOTIFY_WEBHOOK_SECRET=new_webhook_secret(),
                   NOTIFY_ALLOWED_HOSTS="127.0.0.1", LEFT_UNLOCKED_AFTER_S=str(LEFT_UNLOCKED_AFTER_S),
                   AUTO_RELOCK_AFTER_S=str(AUTO_RELOCK_AFTER_S),
                   LOG_FORMAT="json", PYTHONUNBUFFERED="1",
                   PATH=str(Path(sys.executable).parent) + os.pathsep + os.environ.get("PATH", ""))
        procfile = procfile_path()
        lines = dict(line.split(":", 1) for line in procfile.read_text().splitlines() if ":" in line
                     and not line.startswith("#"))
        cwd = procfile.resolve().parent
        logs = work / "logs"
        children.append(Child("web", lines["web"].strip(), env, logs, cwd))
        children.append(Child("worker", lines["worker"].strip(), env, logs, cwd))
        children.append(Child("simulator", f"lockhook simulate --port {sim_port} --receiver-url {base} "
                              f"--secret {secret} --delay 0.2 --delay-max 1.2 --failure-rate 0.25 "
                              f"--offline {OFFLINE} --seed 7", env, logs, cwd))
        _wait_healthy(base + "/healthz", children)
        _wait_healthy(sim + "/healthz", children)
        console.print(f"up in {time.monotonic() - started:.1f} s; issuing {count} commands (logs in {logs})")
        with ThreadPoolExecutor(max_workers=min(8, count)) as pool:
            results = list(pool.map(lambda p: issue_and_wait(base, token, *p), plan(count)))
        render(results, time.monotonic() - started, console)
        unresolved = [c for c in results if c.get("status") not in ("succeeded", "failed", "rejected", "timed_out")]
        watched = watch_phase(base, token, secret, sink, console)
        return 1 if unresolved or not watched else 0
    finally:
        for child in reversed(children):
            child.stop()
        redis.stop()
        sink.close()
