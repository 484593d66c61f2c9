"""Local stand-ins for the remotes commands are issued to: the Seam fake (npm) and a local device cloud."""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from lockhook.settings import Settings
from tests.conftest import ROOT, free_port

SEAM_API_KEY = "seam_apikey1_token"
SEAM_DEVICE = "august_device_1"
DEVICE_CLOUD_API_KEY = "dc-test-key-7f3a"
SEAM_FAKE_DIR = ROOT / "tests" / "seam-fake"  # its own node package: the project root stays Python only


class FakeSeam:
    """`@seamapi/fake-seam-connect --seed` on a free port (installed by scripts/test-deps.sh)."""

    def __init__(self, log_path: Path):
        binary = SEAM_FAKE_DIR / "node_modules" / ".bin" / "fake-seam-connect"
        if not binary.exists() and shutil.which("npm"):  # `make test` installs it first; this covers bare pytest
            subprocess.run(["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"], check=True,
                           cwd=SEAM_FAKE_DIR)
        if not binary.exists() or not shutil.which("node"):
            raise RuntimeError("the Seam fake needs node and `npm install` (scripts/test-deps.sh does both)")
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = open(log_path, "w")  # noqa: SIM115  (the child writes to it until stop())
        self.proc = subprocess.Popen([str(binary), "--seed"], env={"PORT": str(self.port), "PATH": _path()},
                                     cwd=ROOT, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("fake-seam-connect exited: " + log_path.read_text())
            try:
                httpx.post(self.url + "/health/get", timeout=1)
                return
            except httpx.TransportError:
                time.sleep(0.05)
        raise RuntimeError("fake-seam-connect did not start")

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
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


def _path() -> str:
    import os

    return os.environ.get("PATH", "/usr/bin:/bin")


class DeviceCloud:
    """A device cloud: POST /locks/{id}/actions answers at once, confirmation comes later by webhook.

    `refuse[device_id] = (code, message)` answers `{error_code, message}`; `fail_next` answers that
    many 503s first; every request is recorded in `calls`.
    """

    def __init__(self):
        self.calls: list[dict] = []
        self.refuse: dict[str, tuple[str, str]] = {"offline-lock": (
            "DEVICE_OFFLINE", "The device is currently offline and cannot accept commands.")}
        self.fail_next = 0
        self.lock = threading.Lock()
        cloud = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def do_POST(self):
                length = int(self.headers.get("content-length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                parts = self.path.strip("/").split("/")
                with cloud.lock:
                    cloud.calls.append({"path": self.path, "body": body,
                                        "authorization": self.headers.get("authorization")})
                    failing = cloud.fail_next > 0
                    cloud.fail_next -= 1 if failing else 0
                if failing:
                    return self._send(503, {"message": "try again"})
                if len(parts) != 3 or parts[0] != "locks" or parts[2] != "actions":
                    return self._send(404, {"error_code": "NOT_FOUND", "message": "no such route"})
                lock_id = parts[1]
                if lock_id in cloud.refuse:
                    code, message = cloud.refuse[lock_id]
                    return self._send(409, {"error_code": code, "message": message})
                return self._send(200, {"action_id": f"act_{len(cloud.calls)}", "custom_id": body.get("custom_id"),
                                        "status": "pending", "lock_id": lock_id, "action": body.get("action")})

            def _send(self, status: int, payload: dict) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="session", name="fake_seam")
def fake_seam_fixture(tmp_path_factory):
    seam = FakeSeam(tmp_path_factory.mktemp("seam") / "fake-seam.log")
    yield seam
    seam.stop()


@pytest.fixture(name="device_cloud")
def device_cloud_fixture():
    cloud = DeviceCloud()
    yield cloud
    cloud.stop()


def configured(settings: Settings, **overrides) -> Settings:
    """Settings with overrides, validated as the environment would be (secrets become SecretStr)."""
    return Settings.model_validate({**dict(settings), **overrides})


def closed_port_url() -> str:
    """A local URL nothing listens on (a remote that is down)."""
    return f"http://127.0.0.1:{free_port()}"
