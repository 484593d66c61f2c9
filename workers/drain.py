"""The drain: read the inbox stream in batches through a consumer group, apply, acknowledge."""

from __future__ import annotations

import logging

from redis.exceptions import ResponseError

from lockhook import defaults, jobs, keys
from lockhook.processing.apply import Rules, apply_entries
from lockhook.streams import consumer_name, read_new
from workers.flagged import run_flagged

log = logging.getLogger("lockhook.drain")


def process_batch(client, entries, rules: Rules = Rules()) -> int:
    """Apply entries and acknowledge the finished ones (their outcomes are in the outbox, read by the notifier)."""
    done = apply_entries(client, entries, rules)
    if done:
        client.xack(keys.INBOX, keys.INBOX_GROUP, *done)
    return len(done)


def drain(client, max_seconds: float = defaults.DRAIN_MAX_SECONDS, batch: int = defaults.DRAIN_BATCH,
          rules: Rules = Rules()) -> int:
    """Process inbox entries until none are left (or time is up); returns how many were read."""
    consumer = consumer_name()

    def step() -> int:
        entries = read_new(client, keys.INBOX, keys.INBOX_GROUP, consumer, batch)
        if entries:
            process_batch(client, entries, rules)  # what failed stays pending: reclaimed later
        return len(entries)

    return run_flagged(client, keys.DRAIN_FLAG, step, lambda: jobs.enqueue_drain(client), max_seconds)


def reclaim_inbox(client, rules: Rules = Rules()) -> int:
    """Apply entries that a dead worker read but never acknowledged."""
    try:
        _, entries, *_ = client.xautoclaim(keys.INBOX, keys.INBOX_GROUP, consumer_name(),
                                           min_idle_time=defaults.RECLAIM_IDLE_MS, start_id="0-0", count=500)
    except ResponseError:
        return 0
    entries = [(sid, f) for sid, f in entries if f]
    if entries:
        log.warning("reclaimed %d inbox entries from a dead consumer", len(entries))
        return process_batch(client, entries, rules)
    return 0
