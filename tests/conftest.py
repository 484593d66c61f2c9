"""Shared fixtures: a real Redis server the tests start, settings, an app factory, live processes and remotes.

Under pytest-xdist every worker is its own session: its own redis-server, Seam fake and free ports.
"""

from __future__ import annotations

import pytest
import redis
from pytest_redis import factories

from lockhook.settings import Settings
from tests.support.config import API_TOKEN, DEVICE_CLOUD_SECRET, SECRET, configured
from tests.support.processes import (
    FakeSeam,
    Process,
    RedisServer,
    exclusive,
    process_env,
    run_dir,
    start_procfile,
)
from tests.support.processes import start_simulator as start_simulator_process
from tests.support.processes import start_web as start_web_process
from tests.support.servers import DeviceCloud, NotifyTarget
from tools.devserver import redis_server_binary

redis_proc = factories.redis_proc(executable=redis_server_binary(), port=None, save="")


@pytest.fixture(autouse=True)
def _one_at_a_time(request, tmp_path_factory):
    """Tests marked one_at_a_time load the machine or answer against a deadline: never two of them at once,
    whichever xdist workers they run on (the lock is held from their first fixture to their last)."""
    if request.node.get_closest_marker("one_at_a_time") is None:
        yield
        return
    with exclusive("one-at-a-time", run_dir(tmp_path_factory)):
        yield


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
        return build_app(configured(settings, **overrides))

    return factory


@pytest.fixture
def client(make_app):
    from starlette.testclient import TestClient

    with TestClient(make_app()) as test_client:
        yield test_client


@pytest.fixture
def started():
    """The processes a test starts with the fixtures below; stopped (SIGTERM) when it ends, newest first."""
    processes: list[Process] = []
    yield processes
    for process in reversed(processes):
        process.stop()


@pytest.fixture
def start_web(settings, tmp_path, started):
    """Start the Procfile's `web` line on a free port; returns its base URL (`start_web.live`: the process)."""

    def start(**env_overrides) -> str:
        start.live, base = start_web_process(process_env(settings, **env_overrides), tmp_path)
        started.append(start.live)
        return base

    return start


@pytest.fixture
def start_worker(settings, tmp_path, started):
    """Start the Procfile's `worker` line; returns the process."""

    def start(**env_overrides) -> Process:
        started.append(start_procfile("worker", process_env(settings, **env_overrides), tmp_path))
        return started[-1]

    return start


@pytest.fixture
def start_simulator(settings, tmp_path, started):
    """Start `lockhook simulate` sending its webhooks to `receiver`, on `port` or a free one; returns its URL."""

    def start(receiver: str, *flags: str, port: int | None = None) -> str:
        args = ("--receiver-url", receiver, "--secret", DEVICE_CLOUD_SECRET, "--seam-secret", SECRET, *flags)
        simulator, base = start_simulator_process(process_env(settings), tmp_path, *args, port=port)
        started.append(simulator)
        return base

    return start


@pytest.fixture
def own_redis(tmp_path):
    """A redis-server this test owns (AOF on), so it can be stopped, paused or killed."""
    server = RedisServer(tmp_path / "redis").start()
    yield server
    server.kill()  # SIGKILL also ends a paused (SIGSTOPped) server


@pytest.fixture
def notify_target():
    target = NotifyTarget()
    yield target
    target.close()


@pytest.fixture(scope="session")
def fake_seam(tmp_path_factory):
    seam = FakeSeam(tmp_path_factory.mktemp("seam"))
    yield seam
    seam.stop()


@pytest.fixture
def device_cloud():
    cloud = DeviceCloud()
    yield cloud
    cloud.close()


def pytest_collection_modifyitems(config, items):
    """Tests marked `long` run first: a parallel run starts them early instead of ending on them."""
    items.sort(key=lambda item: item.get_closest_marker("long") is None)
