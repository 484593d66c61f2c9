"""Dispatch outcomes from the outbox stream to their subscribers (notifications, logs)."""

from __future__ import annotations

import logging
import os
import socket
import time

from redis.exceptions import ResponseError
from rq import get_current_job

from lockhook import defaults, jobs, keys
from lockhook.outcomes import Outcome, publish

log = logging.getLogger("lockhook.outbox")


def consumer_name() -> str:
    """This process's name in the inbox and outbox consumer groups."""
    return f"{socket.gethostname()}:{os.getpid()}"


def ensure_group(client, stream: str, group: str) -> None:
    """Create a consumer group reading the whole stream (id 0), if it does not exist."""
    try:
        client.xgroup_create(stream, group, id="0", mkstream=True)
    except ResponseError as exc:
        if "BUSYGROUP" not in str(exc):
            raise


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
    try:
        reply = client.xreadgroup(keys.OUTBOX_GROUP, consumer, {keys.OUTBOX: ">"}, count=limit)
    except ResponseError as exc:
        if "NOGROUP" not in str(exc):
            raise
        ensure_group(client, keys.OUTBOX, keys.OUTBOX_GROUP)
        return 0
    read = 0
    for _, entries in reply:
        read += len(entries)
        _dispatch(client, entries)
    return read


def dispatch_job() -> int:
    """RQ entry point (notifications queue): dispatch outcomes until the outbox is empty."""
    client = get_current_job().connection
    consumer = consumer_name()
    stop_at = time.monotonic() + defaults.DRAIN_MAX_SECONDS
    total = 0
    while True:
        client.expire(keys.DISPATCH_FLAG, defaults.DRAIN_FLAG_TTL_S)
        read = dispatch_outbox(client, consumer, limit=200)
        if not read:
            # release the flag, then look once more: an outcome written in between is not stranded
            client.delete(keys.DISPATCH_FLAG)
            read = dispatch_outbox(client, consumer, limit=200)
            if not read:
                return total
            client.set(keys.DISPATCH_FLAG, "1", ex=defaults.DRAIN_FLAG_TTL_S)
        total += read
        if time.monotonic() > stop_at:
            jobs.enqueue_dispatch(client)  # keep the flag, let the queued sends run first
            return total


def reclaim_outbox(client, consumer: str) -> int:
    """Dispatch outcomes a dead worker read but never finished."""
    try:
        _, entries, *_ = client.xautoclaim(keys.OUTBOX, keys.OUTBOX_GROUP, consumer,
                                           min_idle_time=defaults.RECLAIM_IDLE_MS, start_id="0-0", count=200)
    except ResponseError:
        return 0
    return _dispatch(client, entries) if entries else 0
