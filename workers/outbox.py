"""Dispatch outcomes from the outbox stream to their subscribers (notifications, logs)."""

from __future__ import annotations

import logging

from redis.exceptions import ResponseError

from lockhook import defaults, jobs, keys
from lockhook.outcomes import Outcome, publish
from lockhook.streams import consumer_name, read_new
from workers.flagged import run_flagged

log = logging.getLogger("lockhook.outbox")


def _dispatch(client, entries) -> int:
    finished = []
    for stream_id, fields in entries:
        if not fields:  # deleted meanwhile
            finished.append(stream_id)
            continue
        outcome = Outcome.from_stream(stream_id, fields)
        try:
            publish(client, outcome)
        except Exception:
            continue  # left pending: reclaimed and dispatched again later
        finished.append(stream_id)
    if finished:
        pipe = client.pipeline(transaction=False)
        pipe.xack(keys.OUTBOX, keys.OUTBOX_GROUP, *finished)
        pipe.xdel(keys.OUTBOX, *finished)
        pipe.execute()
    return len(finished)


def dispatch_outbox(client, consumer: str, limit: int = 1000) -> int:
    """Dispatch new outcomes; returns how many were read (those whose subscriber failed stay pending)."""
    entries = read_new(client, keys.OUTBOX, keys.OUTBOX_GROUP, consumer, limit)
    if entries:
        _dispatch(client, entries)
    return len(entries)


def dispatch_all(client) -> int:
    """Dispatch outcomes until the outbox is empty (or time is up, then a fresh job takes over)."""
    consumer = consumer_name()
    return run_flagged(client, keys.DISPATCH_FLAG, lambda: dispatch_outbox(client, consumer, limit=200),
                       lambda: jobs.enqueue_dispatch(client))


def reclaim_outbox(client, consumer: str) -> int:
    """Dispatch outcomes a dead worker read but never finished."""
    try:
        _, entries, *_ = client.xautoclaim(keys.OUTBOX, keys.OUTBOX_GROUP, consumer,
                                           min_idle_time=defaults.RECLAIM_IDLE_MS, start_id="0-0", count=200)
    except ResponseError:
        return 0
    return _dispatch(client, entries) if entries else 0
