"""`make run` (`lockhook dev`) with nothing configured: embedded Redis, the simulator as device cloud and Seam API,
both `via` examples resolve; a second run says where the first one is; a taken port is explained."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time

import httpx
import pytest

from lockhook.settings import Settings
from tests.support.waiting import wait_for
from tests.tools.cli import CLEARED, assert_one_clear_line, lockhook
from tools.devserver import DEV_ENV, child_env, free_port, load_dev_env, redis_answers


class DevRun:
    """`lockhook dev` in a folder, as `make run` starts it, with only PORT and the embedded Redis's port set."""

    def __init__(self, folder, port: int, redis_port: int):
        self.folder, self.port, self.redis_port = folder, port, redis_port
        self.base = f"http://127.0.0.1:{port}"
        env = {k: v for k, v in os.environ.items() if not k.startswith(CLEARED)}
        env.update(PORT=str(port), LOCKHOOK_DEV_REDIS_PORT=str(redis_port))
        self.log_path = folder / "dev.log"
        with open(self.log_path, "w") as log:
            self.proc = subprocess.Popen(["lockhook", "dev"], env=env, cwd=folder, stdout=log, stderr=subprocess.STDOUT,
                                         start_new_session=True)

    def output(self) -> str:
        return self.log_path.read_text()

    def wait_healthy(self) -> None:
        def healthy():
            assert self.proc.poll() is None, self.output()
            try:
                return httpx.get(self.base + "/healthz", timeout=1).status_code == 200
            except httpx.TransportError:
                return False

        wait_for(healthy, timeout=60, interval=0.1)

    def stop(self) -> int:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGINT)  # Ctrl-C in its terminal
            try:
                self.proc.wait(40)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        return self.proc.returncode


@pytest.fixture
def dev(tmp_path):
    run = DevRun(tmp_path, free_port(), free_port())
    yield run
    run.stop()


def issue(base: str, token: str, via: str) -> dict:
    headers = {"authorization": f"Bearer {token}"}
    created = httpx.post(f"{base}/commands", headers=headers, timeout=10,
                         json={"device_id": "front_door", "action": "unlock", "via": via})
    assert created.status_code in (200, 201), created.text
    command = created.json()
    deadline = time.monotonic() + 30
    while command["status"] == "pending" and time.monotonic() < deadline:
        command = httpx.get(f"{base}/commands/{command['command_id']}", params={"wait": 10}, headers=headers,
                            timeout=20).json()
    return command


def test_nothing_configured_both_vias_resolve_and_a_second_run_says_where(dev, tmp_path):
    dev.wait_healthy()
    banner = dev.output()
    assert f"dashboard   {dev.base}/dashboard" in banner
    assert f"redis://127.0.0.1:{dev.redis_port}/0 (embedded, AOF data in .lockhook/redis)" in banner
    assert "plays the device cloud and the Seam API" in banner
    token = load_dev_env(tmp_path / ".lockhook" / DEV_ENV)["LOCKHOOK_API_TOKEN"]
    for via in ("device_cloud", "seam"):
        assert f'"via": "{via}"' in banner  # the banner's curl examples
        command = issue(dev.base, token, via)
        assert command["status"] == "succeeded", command

    again = lockhook("dev", cwd=tmp_path, PORT=dev.port, LOCKHOOK_DEV_REDIS_PORT=dev.redis_port, timeout=30)
    assert again.returncode == 0, again.stderr
    assert f"already running from this folder (pid {dev.proc.pid})" in again.stdout
    assert f"{dev.base}/dashboard" in again.stdout and "Traceback" not in again.stdout + again.stderr

    elsewhere = tmp_path / "other-clone"
    elsewhere.mkdir()
    other = lockhook("dev", cwd=elsewhere, PORT=dev.port, LOCKHOOK_DEV_REDIS_PORT=free_port(), timeout=30)
    assert f"a lockhook already answers on {dev.base}" in assert_one_clear_line(other)
    assert f"PORT={dev.port + 1} make run" in other.stderr
    assert not (elsewhere / ".lockhook" / "redis").exists()  # refused before starting anything

    assert dev.stop() == 0, dev.output()
    assert not redis_answers("127.0.0.1", dev.redis_port)
    assert not (tmp_path / ".lockhook" / "dev.json").exists()


def test_a_port_taken_by_another_program_is_explained(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = lockhook("dev", cwd=tmp_path, PORT=port, LOCKHOOK_DEV_REDIS_PORT=free_port(), timeout=30)
    assert assert_one_clear_line(done) == (f"lockhook: port {port} is in use by another program: "
                                           f"run with another port: PORT={port + 1} make run")


def test_a_stale_state_file_is_ignored(dev, tmp_path):
    """A `make run` killed hard leaves .lockhook/dev.json behind: the next run starts anyway."""
    import psutil

    dev.wait_healthy()
    children = psutil.Process(dev.proc.pid).children(recursive=True)  # honcho starts each in its own session
    os.killpg(dev.proc.pid, signal.SIGKILL)
    dev.proc.wait()
    for child in children:
        with contextlib.suppress(psutil.NoSuchProcess):
            child.kill()
    psutil.wait_procs(children, timeout=10)
    assert (tmp_path / ".lockhook" / "dev.json").exists()
    assert not redis_answers("127.0.0.1", dev.redis_port)
    restarted = DevRun(tmp_path, free_port(), free_port())
    try:
        restarted.wait_healthy()
        assert "already running" not in restarted.output()
    finally:
        assert restarted.stop() == 0


@pytest.mark.parametrize(("tty", "configured", "expected"), [
    (True, None, "text"), (False, None, None), (True, "json", None),
])
def test_children_log_text_in_a_terminal(monkeypatch, tty, configured, expected):
    monkeypatch.setattr("sys.stdout.isatty", lambda: tty)
    monkeypatch.delenv("LOG_FORMAT", raising=False)
    env = child_env(Settings(log_format=configured), "redis://127.0.0.1:1/0", {})
    assert env.get("LOG_FORMAT") == expected
