"""`lockhook demo`: embedded Redis, web, worker and the simulator; a batch of commands and their outcomes."""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from lockhook.errors import ConfigError
from tools.devserver import DEV_DIR, EmbeddedRedis, free_port, new_webhook_secret, procfile_path

DEVICES = ("front_door", "back_door", "side_gate", "garage")
OFFLINE = "garage"  # answers DEVICE_OFFLINE at once: its commands are rejected
START_TIMEOUT_S = 30.0
COMMAND_TIMEOUT_S = 20


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


def run(count: int = 12, work_dir: Path | None = None) -> int:
    """Run the demo; 0 when every command left `pending` (resolved), 1 otherwise."""
    from rich.console import Console

    console = Console(width=None if sys.stdout.isatty() else 140)
    started = time.monotonic()
    work = Path(work_dir or DEV_DIR / "demo")
    shutil.rmtree(work, ignore_errors=True)
    (work / "logs").mkdir(parents=True)
    redis = EmbeddedRedis(work / "redis")
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
        return 1 if unresolved else 0
    finally:
        for child in reversed(children):
            child.stop()
        redis.stop()
