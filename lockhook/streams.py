"""Consumer groups on lockhook's Redis streams (inbox, outbox): names, creation, reading, lag."""

from __future__ import annotations

import os
import socket
import time

from redis.exceptions import ResponseError

from lockhook.redis_client import text


def consumer_name() -> str:
    """This process's name in every consumer group."""
    return f"{socket.gethostname()}:{os.getpid()}"


def ensure_group(client, stream: str, group: str) -> None:
    """Create a consumer group reading the whole stream (id 0), if it does not exist."""
    try:
        client.xgroup_create(stream, group, id="0", mkstream=True)
    except ResponseError as exc:
        if "BUSYGROUP" not in str(exc):
            raise


def read_new(client, stream: str, group: str, consumer: str, count: int) -> list:
    """Entries no consumer of `group` has read yet (the group is created when a Redis restart lost it)."""
    try:
        reply = client.xreadgroup(group, consumer, {stream: ">"}, count=count)
    except ResponseError as exc:
        if "NOGROUP" not in str(exc):
            raise
        ensure_group(client, stream, group)
        reply = client.xreadgroup(group, consumer, {stream: ">"}, count=count)
    return reply[0][1] if reply else []


def trim_finished(client, stream: str, group: str, older_than_ms: int) -> int:
    """Drop entries older than `older_than_ms` that every consumer of `group` has finished; returns how many.

    An entry no consumer has read yet, or one read but not acknowledged, is never dropped, however old.
    """
    try:
        info = {text(g["name"]): g for g in client.xinfo_groups(stream)}.get(group)
    except Exception:
        return 0
    if info is None:
        return 0
    floor = older_than_ms
    last = text(info["last-delivered-id"])
    floor = min(floor, int(last.split("-")[0]) + 1) if last != "0-0" else 0
    pending = client.xpending(stream, group)
    if pending and pending.get("pending"):
        floor = min(floor, int(text(pending["min"]).split("-")[0]))
    return client.xtrim(stream, minid=f"{floor}-0", approximate=False) if floor > 0 else 0


def oldest_unread_ms(client, stream: str, group_name: str) -> int | None:
    """Age of the oldest entry no consumer has read yet (Redis 6.2 has no group 'lag', so look it up)."""
    try:
        groups = {text(g["name"]): g for g in client.xinfo_groups(stream)}
    except Exception:
        return None
    group = groups.get(group_name)
    if group is None:
        return None
    first = client.xrange(stream, min="(" + text(group["last-delivered-id"]), count=1)
    if not first:
        return None
    return max(0, int(time.time() * 1000) - int(text(first[0][0]).split("-")[0]))
