"""Shared fixtures: a real Redis server the tests start, settings, an app factory, live processes."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import redis
from honcho.environ import parse_procfile
from pytest_redis import factories

from lockhook.ingest.signatures import signature_headers
from lockhook.settings import Settings
from tools.devserver import free_port, redis_server_binary  # noqa: F401  (re-exported to the tests)

ROOT = Path(__file__).resolve().parent.parent
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
DEVICE_CLOUD_SECRET = "whsec_dGVzdC1kZXZpY2UtY2xvdWQtc2VjcmV0LTEyMzQ1Ng=="
API_TOKEN = "test-api-token-5b1d"


redis_proc = factories.redis_proc(executable=redis_server_binary(), port=None, save="")


@pytest.fixture
def redis_url(redis_proc) -> str:
    """A clean database on the Redis server these tests started (flushed: it is ours)."""
    client = redis.Redis(host=redis_proc.host, port=redis_proc.port)
    client.flushall()
    client.close()
    return f"redis://{redis_proc.host}:{redis_proc.port}/0"


@pytest.fixture
def r(redis_url) -> redis.Redis:
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


@pytest.fixture
def settings(redis_url) -> Settings:
    return Settings(redis_url=redis_url, seam_webhook_secret=SECRET,
                    device_cloud_webhook_secret=DEVICE_CLOUD_SECRET, lockhook_api_token=API_TOKEN)


@pytest.fixture
def make_app(settings):
    """Build a fresh app per test; pass overrides to change settings."""
    from receiver.app import build_app

    def factory(**overrides):
        return build_app(Settings.model_validate({**dict(settings), **overrides}))

    return factory


@pytest.fixture
def client(make_app):
    from starlette.testclient import TestClient

    with TestClient(make_app()) as test_client:
        yield test_client


def signed(body: bytes, delivery_id: str, secret: str = SECRET, timestamp: int | None = None,
           prefix: str = "svix") -> dict[str, str]:
    """Headers for a signed delivery, produced with svix's own signing."""
    headers = signature_headers(secret, delivery_id, body, timestamp=timestamp, prefix=prefix)
    headers["content-type"] = "application/json"
    return headers


def wait_for(predicate, timeout: float = 10.0, interval: float = 0.02):
    """Poll a condition until it holds (for state produced by other processes)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout:.1f} s")


def process_env(settings: Settings, **extra) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LOCKHOOK_", "SEAM_", "DEVICE_CLOUD_"))}
    env.update(REDIS_URL=settings.redis_url, SEAM_WEBHOOK_SECRET=SECRET,
               DEVICE_CLOUD_WEBHOOK_SECRET=DEVICE_CLOUD_SECRET, LOCKHOOK_API_TOKEN=API_TOKEN,
               LOG_FORMAT="json", PYTHONUNBUFFERED="1")
    env.update({k: str(v) for k, v in extra.items()})
    return env


def procfile_command(name: str) -> str:
    """A process line of the Procfile, parsed by honcho (what `make run` uses)."""
    return parse_procfile((ROOT / "Procfile").read_text()).processes[name]


class Live:
    """A Procfile process started as a subprocess (stopped with SIGTERM at the end)."""

    def __init__(self, name: str, env: dict[str, str], log_path: Path):
        self.name = name
        self.log_path = log_path
        self.log = open(log_path, "w")  # noqa: SIM115 (held open for the process lifetime)
        self.proc = subprocess.Popen(["bash", "-c", "exec " + procfile_command(name)], env=env, cwd=ROOT,
                                     stdout=self.log, stderr=subprocess.STDOUT,
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

    def output(self) -> str:
        self.log.flush()
        return self.log_path.read_text()


@pytest.fixture
def start_web(settings, tmp_path):
    """Start the Procfile's `web` line on a free port; returns its base URL."""
    started: list[Live] = []

    def start(**env_overrides) -> str:
        port = free_port()
        live = Live("web", process_env(settings, PORT=port, **env_overrides), tmp_path / f"web-{port}.log")
        started.append(live)
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if live.proc.poll() is not None:
                raise AssertionError("web exited: " + live.output())
            try:
                httpx.get(base + "/healthz", timeout=1)
                start.live = live
                return base
            except httpx.TransportError:
                time.sleep(0.05)
        raise AssertionError("web did not start: " + live.output())

    yield start
    for live in started:
        live.stop()


@pytest.fixture
def start_worker(settings, tmp_path):
    """Start the Procfile's `worker` line; returns the Live process."""
    started: list[Live] = []

    def start(**env_overrides) -> Live:
        live = Live("worker", process_env(settings, **env_overrides), tmp_path / f"worker-{len(started)}.log")
        started.append(live)
        return live

    yield start
    for live in started:
        live.stop()


PYTHON = sys.executable


def pytest_collection_modifyitems(config, items):
    """Tests marked `long` run first: a parallel run starts them early instead of ending on them."""
    items.sort(key=lambda item: item.get_closest_marker("long") is None)
