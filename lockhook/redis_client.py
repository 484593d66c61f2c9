"""Redis connections built from settings: sync for workers and CLI, asyncio for the web process."""

from __future__ import annotations

import redis
import redis.asyncio as aioredis

from lockhook import defaults
from lockhook.settings import Settings


def sync_client(settings: Settings, **overrides) -> redis.Redis:
    """A client for workers, RQ and the CLI (RQ needs bytes, so no decode_responses)."""
    options = dict(socket_timeout=30, socket_connect_timeout=defaults.REDIS_SOCKET_TIMEOUT_S,
                   health_check_interval=15, retry_on_timeout=False)
    options.update(overrides)
    return redis.Redis.from_url(settings.redis_url, **options)


def async_client(settings: Settings) -> aioredis.Redis:
    """A client for the ack path: short timeouts so a dead Redis is a fast 503."""
    return aioredis.Redis.from_url(
        settings.redis_url,
        socket_timeout=defaults.REDIS_SOCKET_TIMEOUT_S,
        socket_connect_timeout=defaults.REDIS_SOCKET_TIMEOUT_S,
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
