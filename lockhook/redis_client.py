"""Redis connections built from settings: sync for workers and CLI, asyncio for the web process."""

from __future__ import annotations

from pathlib import Path

import redis
import redis.asyncio as aioredis
from redis.asyncio.retry import Retry as AsyncRetry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError

from lockhook import defaults
from lockhook.errors import ConfigError
from lockhook.settings import Settings


def tls_options(settings: Settings) -> dict:
    """redis-py's ssl_* options for a rediss:// URL from REDIS_TLS_VERIFY / REDIS_CA_CERT (none for redis://).

    The same options serve the sync and asyncio clients; RQ's scheduler copies them from the pool it is given.
    """
    if not settings.redis_tls:
        return {}
    if settings.redis_tls_verify == "none":
        return {"ssl_cert_reqs": "none", "ssl_check_hostname": False}
    options: dict = {"ssl_cert_reqs": "required", "ssl_check_hostname": True}
    ca = settings.redis_ca_cert
    if ca and ca.lstrip().startswith("-----BEGIN"):
        options["ssl_ca_data"] = ca
    elif ca:
        if not Path(ca).is_file():
            raise ConfigError(f"REDIS_CA_CERT: no such file {ca} (give a PEM file's path or the PEM text itself)")
        options["ssl_ca_certs"] = ca
    return options


def sync_client(settings: Settings, **overrides) -> redis.Redis:
    """A client for workers, RQ and the CLI (RQ needs bytes, so no decode_responses)."""
    options = dict(socket_timeout=30, socket_connect_timeout=defaults.REDIS_SOCKET_TIMEOUT_S,
                   health_check_interval=15, retry_on_timeout=False, **tls_options(settings))
    options.update(overrides)
    return redis.Redis.from_url(settings.redis_url, **options)


def async_client(settings: Settings) -> aioredis.Redis:
    """A client for the ack path: short timeouts so a dead Redis is a fast 503.

    A command that finds its connection closed is sent once more on a new one: managed Redis services close
    idle connections (their `timeout`), and the asyncio client has no retry of its own. Every script on the
    ack path is idempotent (a second run of `ingest` finds its dedupe mark: the delivery is stored once).
    """
    return aioredis.Redis.from_url(
        settings.redis_url,
        socket_timeout=defaults.REDIS_SOCKET_TIMEOUT_S,
        socket_connect_timeout=defaults.REDIS_SOCKET_TIMEOUT_S,
        retry=AsyncRetry(NoBackoff(), 1), retry_on_error=[RedisConnectionError],
        **tls_options(settings),
    )


def text(value) -> str:
    """A Redis reply item as text (clients here return bytes)."""
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def text_hash(raw: dict) -> dict[str, str]:
    """A hash (HGETALL) or stream entry's fields as text."""
    return {text(key): text(value) for key, value in raw.items()}


def int_hash(raw: dict) -> dict[str, int]:
    """A counter hash (HGETALL) as {field: int}, skipping fields that are not integers."""
    out = {}
    for key, value in raw.items():
        try:
            out[text(key)] = int(value)
        except ValueError:
            continue
    return out


def eviction_warning(memory_info: dict) -> str | None:
    """What is wrong with a Redis that may evict keys (INFO memory's `maxmemory_policy`), or None.

    lockhook keeps commands, dedupe marks and the inbox in Redis: an evicting policy silently loses them.
    """
    policy = text(memory_info.get("maxmemory_policy", "noeviction"))
    if policy == "noeviction":
        return None
    return f"Redis maxmemory-policy is {policy}: set it to noeviction, or Redis may drop commands and deliveries"
