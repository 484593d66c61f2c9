"""Fixtures of the fault suite: a Redis server each test owns, so it can be stopped, paused or killed."""

from __future__ import annotations

import pytest

from tests.reliability.helpers import NotifyTarget, OwnRedis


@pytest.fixture
def own_redis(tmp_path):
    server = OwnRedis(tmp_path / "redis")
    server.start()
    yield server
    server.kill()  # SIGKILL also ends a paused (SIGSTOPped) server


@pytest.fixture
def notify_target():
    target = NotifyTarget()
    yield target
    target.close()
