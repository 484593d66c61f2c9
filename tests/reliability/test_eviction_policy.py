"""A Redis that may evict keys is reported: /healthz carries a warning, the worker logs one at start."""

from __future__ import annotations

import httpx

from tests.support.waiting import wait_for


def test_an_evicting_redis_is_reported_by_healthz_and_the_worker(start_web, start_worker, r):
    base = start_web()
    assert "warnings" not in httpx.get(base + "/healthz", timeout=5).json()
    r.config_set("maxmemory-policy", "allkeys-lru")
    try:
        answer = httpx.get(base + "/healthz", timeout=5)
        assert answer.status_code == 200
        assert "noeviction" in answer.json()["warnings"][0]
        worker = start_worker()
        wait_for(lambda: "maxmemory-policy is allkeys-lru" in worker.output(), timeout=30)
    finally:
        r.config_set("maxmemory-policy", "noeviction")
