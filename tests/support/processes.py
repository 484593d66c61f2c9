"""Child processes the tests start: the Procfile's lines, redis-server, the Seam fake and the simulator.

Each runs in its own session with its output in a log file, on a port picked free at start (so parallel
test workers never share one), and is waited for on what it serves, never on a sleep.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import httpx
import redis
from honcho.environ import parse_procfile

from lockhook.settings import Settings
from tests.support.config import API_TOKEN, DEVICE_CLOUD_SECRET, SEAM_API_KEY, SECRET
from tests.support.waiting import wait_for
from tools.devserver import EmbeddedRedis, free_port, redis_answers

ROOT = Path(__file__).resolve().parents[2]
PYTHON = sys.executable
START_TIMEOUT_S = 30.0
PORT_TAKEN = "address already in use"
"""What a server logs when the free port it was given was taken meanwhile (it is then started again)."""


def run_dir(tmp_path_factory) -> Path:
    """A folder every xdist worker of this run shares (the run's own temporary folder)."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


@contextlib.contextmanager
def exclusive(name: str, folder: Path):
    """Hold the lock `name` against every xdist worker of this run (waits until it is free)."""
    with open(folder / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def process_env(settings: Settings, **extra) -> dict[str, str]:
    """This environment without lockhook's variables, then the test's settings and `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LOCKHOOK_", "SEAM_", "DEVICE_CLOUD_"))}
    env.update(REDIS_URL=settings.redis_url, SEAM_WEBHOOK_SECRET=SECRET,
               DEVICE_CLOUD_WEBHOOK_SECRET=DEVICE_CLOUD_SECRET, LOCKHOOK_API_TOKEN=API_TOKEN,
               LOG_FORMAT="json", PYTHONUNBUFFERED="1")
    env.update({k: str(v) for k, v in extra.items()})
    return env


def procfile_command(name: str) -> str:
    """A process line of the Procfile, parsed by honcho (what `make run` uses)."""
    return parse_procfile((ROOT / "Procfile").read_text()).processes[name]


def procfile_args(name: str) -> list[str]:
    return ["bash", "-c", "exec " + procfile_command(name)]


class Process:
    """A child process in its own session, its output in a log file; stop() sends SIGTERM, then SIGKILL."""

    def __init__(self, name: str, args: list[str], env: dict[str, str], log_path: Path, cwd: Path = ROOT):
        self.name = name
        self.log_path = log_path
        self.log = open(log_path, "w")  # noqa: SIM115 (held open for the process lifetime)
        self.proc = subprocess.Popen(args, env=env, cwd=cwd, stdout=self.log, stderr=subprocess.STDOUT,
                                     start_new_session=True)

    def stop(self, timeout: float = 30) -> int:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        return self.proc.returncode

    def signal_group(self, signum: int) -> None:
        """Signal every process of its session (a worker and the processes it forked), as a platform does."""
        os.killpg(self.proc.pid, signum)

    def output(self) -> str:
        if not self.log.closed:
            self.log.flush()
        return self.log_path.read_text()

    def wait_until(self, ready: Callable[[], object], timeout: float = START_TIMEOUT_S, what: str = "") -> None:
        """Wait for `ready()`; fail at once, with the log, if the process exits first."""

        def check():
            if self.proc.poll() is not None:
                raise AssertionError(f"{self.name} exited ({self.proc.returncode}): {self.output()[-3000:]}")
            return ready()

        try:
            wait_for(check, timeout=timeout, interval=0.05, what=what or f"{self.name} ready")
        except AssertionError as exc:
            if self.proc.poll() is None:
                raise AssertionError(f"{exc}: {self.output()[-3000:]}") from None
            raise


def answers(url: str, method: str = "GET", ok_only: bool = False) -> bool:
    """True once something answers HTTP at `url` (with a 2xx when `ok_only`)."""
    try:
        response = httpx.request(method, url, timeout=1)
    except httpx.TransportError:
        return False
    return response.is_success or not ok_only


def start_server(start: Callable[[int], Process], health_path: str, method: str = "GET", ok_only: bool = False,
                 port: int | None = None) -> tuple[Process, str]:
    """Start a server on `port` (else a free one) and wait until it answers; (process, base URL).

    On a free port picked here it is started again on another should that one be taken meanwhile.
    """
    attempts = 1 if port else 3
    for attempt in range(1, attempts + 1):
        chosen = port or free_port()
        process = start(chosen)
        base = f"http://127.0.0.1:{chosen}"
        try:
            process.wait_until(lambda b=base: answers(b + health_path, method, ok_only))
            return process, base
        except AssertionError:
            process.stop()
            if attempt == attempts or PORT_TAKEN not in process.output().lower():
                raise


def start_procfile(name: str, env: dict[str, str], log_dir: Path) -> Process:
    """The Procfile's `name` line as a child process (what `make run` starts)."""
    index = len(list(log_dir.glob(f"{name}-*.log")))
    return Process(name, procfile_args(name), env, log_dir / f"{name}-{index}.log")


def start_web(env: dict[str, str], log_dir: Path) -> tuple[Process, str]:
    """The Procfile's `web` line on a free port, once its /healthz answers; (process, base URL)."""
    return start_server(lambda port: start_procfile("web", {**env, "PORT": str(port)}, log_dir), "/healthz")


def start_simulator(env: dict[str, str], log_dir: Path, *args: str, port: int | None = None) -> tuple[Process, str]:
    """`lockhook simulate ARGS` on `port` (else a free one), once its /healthz answers 200; (process, base URL)."""
    return start_server(lambda chosen: Process("simulator", ["lockhook", "simulate", "--port", str(chosen), *args],
                                               env, log_dir / f"simulator-{chosen}.log"),
                        "/healthz", ok_only=True, port=port)


class RedisServer(EmbeddedRedis):
    """A redis-server (AOF on) that a test may stop, start again, pause and kill; never the shared one."""

    def kill(self) -> None:
        """SIGKILL: no AOF flush (also ends a paused server)."""
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def pause(self) -> None:
        """Redis stops answering but keeps its connections open: the hang case, worse than a refusal."""
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        self.proc.send_signal(signal.SIGCONT)

    def answers(self) -> bool:
        return redis_answers("127.0.0.1", self.port)

    def client(self) -> redis.Redis:
        return redis.Redis(port=self.port)


SEAM_DEVICE = "august_device_1"
SEAM_FAKE_DIR = ROOT / "tests" / "seam-fake"  # its own node package: the project root stays Python only


class FakeSeam:
    """`@seamapi/fake-seam-connect --seed` on a free port (installed by scripts/test-deps.sh)."""

    def __init__(self, log_dir: Path):
        binary = SEAM_FAKE_DIR / "node_modules" / ".bin" / "fake-seam-connect"
        if not binary.exists() and shutil.which("npm"):  # `make test` installs it first; this covers bare pytest
            subprocess.run(["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"], check=True,
                           cwd=SEAM_FAKE_DIR)
        if not binary.exists() or not shutil.which("node"):
            raise RuntimeError("the Seam fake needs node and `npm install` (scripts/test-deps.sh does both)")
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
        self.process, self.url = start_server(
            lambda port: Process("fake-seam-connect", [str(binary), "--seed"], {**env, "PORT": str(port)},
                                 log_dir / f"fake-seam-{port}.log"),
            "/health/get", method="POST")

    def call(self, path: str, **body) -> dict:
        response = httpx.post(self.url + path, json=body, timeout=5,
                              headers={"authorization": f"Bearer {SEAM_API_KEY}"})
        response.raise_for_status()
        return response.json()

    def set_attempt(self, action_attempt_id: str, status: str, error: dict | None = None) -> None:
        """`POST /_fake/update_action_attempt`: what `action_attempts.get` answers next."""
        body = {"action_attempt_id": action_attempt_id, "status": status}
        if status == "error":
            body["error"] = error or {"type": "lock_jammed", "message": "the bolt is jammed"}
        if status == "success":
            body["result"] = {}
        httpx.post(self.url + "/_fake/update_action_attempt", json=body, timeout=5).raise_for_status()

    def next_attempt_number(self) -> int:
        """Issue one lock directly: the fake numbers attempts action_attempt1, 2, ... so this counts calls."""
        attempt_id = self.call("/locks/lock_door", device_id=SEAM_DEVICE)["action_attempt"]["action_attempt_id"]
        return int(attempt_id.removeprefix("action_attempt"))

    def stop(self) -> None:
        self.process.stop(10)
