"""rediss:// with a self-signed certificate: REDIS_CA_CERT verifies it, REDIS_TLS_VERIFY=none skips verifying."""

from __future__ import annotations

import asyncio

import httpx
import pytest
import redis
from pydantic import ValidationError

from lockhook.errors import ConfigError
from lockhook.redis_client import async_client, sync_client
from lockhook.settings import Settings
from tests.support.config import API_TOKEN
from tests.support.waiting import wait_for


def ping_both(settings: Settings) -> None:
    client = sync_client(settings)
    try:
        assert client.ping()
    finally:
        client.close()

    async def ping_async():
        aclient = async_client(settings)
        try:
            assert await aclient.ping()
        finally:
            await aclient.aclose()

    asyncio.run(ping_async())


def test_the_ca_file_verifies_a_self_signed_server(tls_redis):
    ping_both(Settings(redis_url=tls_redis.url, redis_ca_cert=str(tls_redis.cert)))


def test_the_ca_given_as_pem_text_verifies_it_too(tls_redis):
    ping_both(Settings(redis_url=tls_redis.url, redis_ca_cert=tls_redis.cert.read_text()))


def test_verification_is_on_by_default_and_refuses_an_unknown_certificate(tls_redis):
    client = sync_client(Settings(redis_url=tls_redis.url))
    with pytest.raises(redis.ConnectionError, match="certificate verify failed"):
        client.ping()
    client.close()


def test_verify_none_connects_without_a_ca(tls_redis):
    ping_both(Settings(redis_url=tls_redis.url, redis_tls_verify="none"))
    ping_both(Settings(redis_url=tls_redis.url, redis_tls_verify="NONE"))


def test_unusable_tls_settings_are_refused_clearly(tls_redis, tmp_path):
    with pytest.raises(ValidationError, match="REDIS_URL is not rediss://"):
        Settings(redis_url="redis://127.0.0.1:6379/0", redis_ca_cert=str(tls_redis.cert))
    with pytest.raises(ValidationError, match="redis_tls_verify"):
        Settings(redis_url=tls_redis.url, redis_tls_verify="maybe")
    with pytest.raises(ConfigError, match="no such file"):
        sync_client(Settings(redis_url=tls_redis.url, redis_ca_cert=str(tmp_path / "missing.pem")))


def test_web_worker_and_rq_over_tls(tls_redis, start_web, start_worker, simulator):
    """The Procfile's processes on rediss://: the ack path (asyncio), the worker and RQ's jobs and scheduler."""
    tls_env = dict(REDIS_URL=tls_redis.url, REDIS_CA_CERT=str(tls_redis.cert), DEVICE_CLOUD_URL=simulator.url)
    base = start_web(**tls_env)
    worker = start_worker(**tls_env)
    simulator.send_to(base)
    headers = {"authorization": f"Bearer {API_TOKEN}"}
    created = httpx.post(f"{base}/commands", headers=headers, timeout=10,
                         json={"device_id": "front_door", "action": "unlock", "via": "device_cloud", "timeout_s": 30})
    assert created.status_code in (200, 201), created.text
    command_id = created.json()["command_id"]

    def resolved():
        body = httpx.get(f"{base}/commands/{command_id}", headers=headers, params={"wait": 5}, timeout=10).json()
        return body if body["status"] != "pending" else None

    assert wait_for(resolved, timeout=40)["status"] == "succeeded"
    client = sync_client(Settings(redis_url=tls_redis.url, redis_ca_cert=str(tls_redis.cert)))
    assert client.exists("lh:maintenance:scheduled")  # the worker's RQ maintenance job ran over TLS
    client.close()
    assert "Traceback" not in worker.output()
