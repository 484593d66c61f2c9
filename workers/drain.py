"""The drain job: read the inbox stream in batches through a consumer group, apply, acknowledge."""

from __future__ import annotations

import logging
import time

from redis.exceptions import ResponseError
from rq import get_current_job

from lockhook import defaults, jobs, keys
from workers.outbox import consumer_name, ensure_group
from workers.processing import apply_entries

log = logging.getLogger("lockhook.drain")


def _read(client, consumer: str, count: int):
    try:
        reply = client.xreadgroup(keys.INBOX_GROUP, consumer, {keys.INBOX: ">"}, count=count)
    except ResponseError as exc:
        if "NOGROUP" not in str(exc):
            raise
        ensure_group(client, keys.INBOX, keys.INBOX_GROUP)
        reply = client.xreadgroup(keys.INBOX_GROUP, consumer, {keys.INBOX: ">"}, count=count)
    return reply[0][1] if reply else []


def process_batch(client, entries) -> int:
    """Apply entries, acknowledge the finished ones, hand the outcomes they produced to the notifier."""
    done = apply_entries(client, entries)
    if done:
        client.xack(keys.INBOX, keys.INBOX_GROUP, *done)
        jobs.ensure_dispatch(client)
    return len(done)


def drain(client, max_seconds: float = defaults.DRAIN_MAX_SECONDS, batch: int = defaults.DRAIN_BATCH) -> int:
    """Process inbox entries until none are left (or time is up); returns how many were applied."""
    consumer = consumer_name()
    stop_at = time.monotonic() + max_seconds
    total = 0
    while True:
        client.expire(keys.DRAIN_FLAG, defaults.DRAIN_FLAG_TTL_S)
        entries = _read(client, consumer, batch)
        if not entries:
            # release the flag, then look once more: a delivery stored in between is not stranded
            client.delete(keys.DRAIN_FLAG)
            entries = _read(client, consumer, batch)
            if not entries:
                return total
            client.set(keys.DRAIN_FLAG, "1", ex=defaults.DRAIN_FLAG_TTL_S)
        total += process_batch(client, entries)
        if time.monotonic() > stop_at:
            jobs.enqueue_drain(client)  # keep the flag, hand over to a fresh job so others get a turn
            return total


def drain_inbox() -> int:
    """RQ entry point (queued by the receiver when the inbox had no drain scheduled)."""
    return drain(get_current_job().connection)


def reclaim_inbox(client) -> int:
    """Apply entries that a dead worker read but never acknowledged."""
    consumer = consumer_name()
    try:
        _, entries, *_ = client.xautoclaim(keys.INBOX, keys.INBOX_GROUP, consumer,
                                           min_idle_time=defaults.RECLAIM_IDLE_MS, start_id="0-0", count=500)
    except ResponseError:
        return 0
    entries = [(sid, f) for sid, f in entries if f]
    if entries:
        log.warning("reclaimed %d inbox entries from a dead consumer", len(entries))
        return process_batch(client, entries)
    return 0
