"""Fault 4: Redis unreachable (refusing, then hanging): webhooks get a quick 503, /healthz says so, and the
web and worker processes reconnect by themselves afterwards."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import httpx

from lockhook.commands.store import CommandStore
from tests.reliability.helpers import attempt_succeeded, body, diagnose, other_event
from tests.support.config import signed
from tests.support.waiting import wait_for

LIMIT_S = 15  # Svix counts only a 2xx within 15 s; anything slower is a failure and a retry


def post_many(base: str, prefix: str, n: int = 20) -> list[tuple[int, float, dict]]:
    """n concurrent signed deliveries; (status, seconds, json) for each."""

    def one(i: int):
        raw = body(other_event(i, "dev_down"))
        started = time.monotonic()
        resp = httpx.post(base + "/webhooks/seam", content=raw, headers=signed(raw, f"{prefix}_{i}"), timeout=30)
        return resp.status_code, time.monotonic() - started, resp.json(), resp.headers.get("retry-after")

    with ThreadPoolExecutor(n) as pool:
        return list(pool.map(one, range(n)))


def assert_storage_unavailable(results) -> float:
    for status, seconds, payload, retry_after in results:
        assert status == 503, (status, payload)
        assert payload["error"] == "storage_unavailable" and retry_after
        assert seconds < LIMIT_S, seconds
    return max(seconds for _, seconds, _, _ in results)


def healthz(base: str) -> tuple[int, float]:
    started = time.monotonic()
    status = httpx.get(base + "/healthz", timeout=30).status_code
    return status, time.monotonic() - started


def test_redis_down_means_503_not_500_and_everything_reconnects(own_redis, start_web, start_worker):
    store = CommandStore(own_redis.client())
    command, _ = store.register("dev_down", "lock", "external", action_attempt_id="aa_down", timeout_s=600)
    base = start_web(REDIS_URL=own_redis.url)
    worker = start_worker(REDIS_URL=own_redis.url)
    assert healthz(base)[0] == 200

    # 1. refused: the server is gone
    own_redis.kill()
    refused = assert_storage_unavailable(post_many(base, "refused"))
    status, health_s = healthz(base)
    assert status == 503 and health_s < LIMIT_S
    # the worker noticed, and a reconnect after its first backoff failed too (the next backoff is 1 s)
    worker.wait_until(lambda: "retrying in 1.0 s" in worker.output(), timeout=30, what="the worker's reconnect backoff")

    # 2. hanging: the server accepts nothing and answers nothing (SIGSTOP), the worst case for timeouts
    own_redis.start()
    wait_for(lambda: healthz(base)[0] == 200, timeout=10)
    own_redis.pause()
    hanging = assert_storage_unavailable(post_many(base, "hanging"))
    status, hang_health_s = healthz(base)
    assert status == 503 and hang_health_s < LIMIT_S
    time.sleep(2)  # the outage itself: Redis stays hung a while longer before it recovers
    own_redis.resume()
    back = time.monotonic()

    # 3. back: both processes serve again without a restart
    wait_for(lambda: healthz(base)[0] == 200, timeout=10)
    raw = body(attempt_succeeded(0, "dev_down") | {"action_attempt_id": "aa_down", "event_id": "evt_down"})
    resp = httpx.post(base + "/webhooks/seam", content=raw, headers=signed(raw, "msg_down_back"), timeout=15)
    assert resp.status_code == 202, resp.text
    try:
        wait_for(lambda: store.get(command.command_id).status == "succeeded", timeout=30)
    except AssertionError:
        raise AssertionError(diagnose(own_redis.client(), worker)) from None
    resumed_s = time.monotonic() - back
    assert worker.proc.poll() is None and start_web.live.proc.poll() is None
    assert "redis unavailable" in worker.output()  # it did lose Redis, and came back by itself
    print(f"\nrefused: slowest 503 {refused:.2f} s; hanging: slowest 503 {hanging:.2f} s, /healthz "
          f"{hang_health_s:.2f} s; command resolved {resumed_s:.1f} s after Redis came back")


def test_a_connection_redis_closed_while_idle_is_replaced_not_a_503(start_web, tmp_path):
    """Managed Redis services close idle connections (`timeout`): the next webhook must still be stored."""
    from tests.support.processes import RedisServer
    from tests.support.waiting import wait_for

    redis_server = RedisServer(tmp_path / "idle-redis").start()
    try:
        client = redis_server.client()
        client.config_set("timeout", 1)
        base = start_web(REDIS_URL=redis_server.url)
        assert httpx.get(base + "/healthz", timeout=5).status_code == 200
        wait_for(lambda: len(client.client_list()) == 1, timeout=20)  # the server closed the web's idle ones
        assert httpx.get(base + "/healthz", timeout=5).status_code == 200
    finally:
        redis_server.stop()
