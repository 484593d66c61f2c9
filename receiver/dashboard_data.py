"""What the dashboard shows, read from Redis with the sync client (called in a worker thread)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field

from lockhook import keys
from lockhook.clock import iso
from lockhook.commands.store import Command, CommandStatus, CommandStore
from lockhook.ingest.dead_letters import list_dead
from lockhook.notifications.store import NotificationStore
from lockhook.processing.locks import known_devices, lock_state, recent_events
from lockhook.redis_client import int_hash, text

STATUSES = tuple(s.value for s in CommandStatus)
DEVICE_LIMIT = 100
RECENT_LIMIT = 50
BODY_PREVIEW = 16_384


@dataclass
class Filters:
    """Command filters from the query string (validated: unknown statuses are ignored)."""

    device: str | None = None
    status: str | None = None

    @classmethod
    def from_query(cls, query) -> Filters:
        device = (query.get("device") or "").strip()[:200] or None
        status = query.get("status") or None
        return cls(device=device, status=status if status in STATUSES else None)


@dataclass
class Overview:
    pending: list[Command]
    recent: list[Command]
    locks: list[dict]
    events: list[dict]
    duplicates: list[dict]
    quarantined: list[dict]
    failed_notifications: list[dict]
    anomalies: list[dict]
    stats: dict[str, dict[str, int]]
    devices: list[str] = field(default_factory=list)
    dead_letters: list = field(default_factory=list)
    dead_letter_count: int = 0

    def delivery_counts(self) -> list[tuple[str, dict[str, int]]]:
        """(endpoint, {outcome: count}) from the `<endpoint>:<outcome>` counters, by endpoint."""
        by_endpoint: dict[str, dict[str, int]] = {}
        for name, value in self.stats["deliveries"].items():
            endpoint, _, outcome = name.rpartition(":")
            by_endpoint.setdefault(endpoint, {})[outcome] = value
        return sorted(by_endpoint.items())

    def cards(self) -> list[tuple[str, int]]:
        """The summary's counts, in the order they are shown."""
        deliveries, commands, notifications = (self.stats[k] for k in ("deliveries", "commands", "notifications"))

        def total(outcome: str) -> int:
            return sum(v for k, v in deliveries.items() if k.endswith(":" + outcome))

        return [
            ("accepted", total("accepted")), ("duplicates", total("duplicate")), ("quarantined", total("quarantined")),
            ("events", sum(self.stats["events"].values())), ("pending", self.stats["pending"]["pending"]),
            ("succeeded", commands.get("succeeded", 0)), ("failed", commands.get("failed", 0)),
            ("timed out", commands.get("timed_out", 0)), ("rejected", commands.get("rejected", 0)),
            ("late results", commands.get("late_result", 0)),
            ("notified", notifications.get("delivered", 0)), ("notify failed", len(self.failed_notifications)),
        ]


def _is_ms(value) -> bool:
    return (isinstance(value, int) and not isinstance(value, bool)) or (isinstance(value, str) and value.isdigit())


def _json_lines(raw: list) -> list[dict]:
    out = []
    for line in raw:
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict):
            for name, value in entry.items():  # `at`, `stale_occurred_at`, ...: epoch ms, shown as times
                if (name == "at" or name.endswith("_at")) and _is_ms(value):
                    entry[name] = iso(value)
            out.append(entry)
    return out


def commands(client, filters: Filters) -> tuple[list[Command], list[Command]]:
    """(pending, recent): every pending command matching the filters, then the newest resolved ones."""
    store = CommandStore(client)
    pending: list[Command] = []
    if filters.status in (None, CommandStatus.PENDING):
        pending = store.list(device_id=filters.device, status=CommandStatus.PENDING, limit=RECENT_LIMIT * 2)
    recent: list[Command] = []
    if filters.status != CommandStatus.PENDING:
        recent = [c for c in store.list(device_id=filters.device, status=filters.status, limit=RECENT_LIMIT)
                  if c.status != CommandStatus.PENDING]
    return pending, recent


def quarantined(client, limit: int = 20) -> list[dict]:
    """Newest quarantined deliveries with their raw body (decoded for display only)."""
    out = []
    for stream_id, fields in client.xrevrange(keys.QUARANTINE, count=limit):
        f = {text(k): v for k, v in fields.items()}
        body = f.get("body", b"")
        raw = body if isinstance(body, bytes) else str(body).encode()
        out.append({
            "stream_id": text(stream_id), "endpoint": text(f.get("endpoint", "")),
            "delivery_id": text(f.get("delivery_id", "")),
            "received_at": iso(text(f.get("received_at", "")) or None),
            "size": len(raw), "body": raw[:BODY_PREVIEW].decode("utf-8", "replace"),
        })
    return out


def failed_notifications(client, limit: int = 50) -> list[dict]:
    """Notifications kept as failed (the notifications store's public view: never URL or body)."""
    return [n.public() for n in NotificationStore(client).failed(limit)]


def stats(client) -> dict[str, dict[str, int]]:
    pipe = client.pipeline(transaction=False)
    for key in (keys.DELIVERY_STATS, keys.COMMAND_STATS, keys.EVENT_STATS, keys.NOTIFY_STATS):
        pipe.hgetall(key)
    pipe.zcard(keys.DEADLINES)
    pipe.hgetall(keys.NOTIFY_CIRCUITS)
    deliveries, commands_, events, notifications, pending, circuits = pipe.execute()
    return {"deliveries": int_hash(deliveries), "commands": int_hash(commands_), "events": int_hash(events),
            "notifications": int_hash(notifications), "pending": {"pending": int(pending)},
            "circuits": circuit_states(circuits)}


def circuit_states(raw: dict) -> dict[str, int]:
    """Notification target -> circuit state as in /metrics (0 closed, 1 half-open, 2 open)."""
    from lockhook.metrics import circuit_state

    return {text(label): circuit_state(value) for label, value in raw.items()}


def overview(client, filters: Filters) -> Overview:
    pending, recent = commands(client, filters)
    devices = known_devices(client, DEVICE_LIMIT)
    locks = [s for s in (lock_state(client, d) for d in devices) if s]
    return Overview(
        pending=pending, recent=recent, locks=locks, events=recent_events(client, 30),
        duplicates=_json_lines(client.lrange(keys.DUPLICATES, 0, 19)), quarantined=quarantined(client),
        failed_notifications=failed_notifications(client),
        anomalies=_json_lines(client.lrange(keys.ANOMALIES, 0, 9)), stats=stats(client), devices=devices,
        dead_letters=list_dead(client, 20), dead_letter_count=client.xlen(keys.INBOX_DEAD),
    )


def command_detail(client, command_id: str) -> tuple[Command | None, list[dict]]:
    store = CommandStore(client)
    command = store.get(command_id)
    if command is None:
        return None, []
    timeline = store.timeline(command_id)
    for entry in timeline:
        if entry.get("at"):
            entry["at"] = iso(entry["at"])
    return command, timeline


async def fingerprint(client, view: str, command_id: str | None = None) -> str:
    """A digest of what the view shows; the live stream re-renders only when it changes (async client)."""
    pipe = client.pipeline(transaction=False)
    if view == "command" and command_id:
        pipe.hgetall(keys.command(command_id))
        pipe.llen(keys.command_timeline(command_id))
    else:
        pipe.lindex(keys.RECENT_EVENTS, 0)
        pipe.zrevrange(keys.COMMANDS, 0, 0)
        for key in (keys.COMMAND_STATS, keys.DELIVERY_STATS, keys.NOTIFY_STATS):
            pipe.hgetall(key)
        pipe.zcard(keys.NOTIFY_FAILED)
        pipe.zcard(keys.DEADLINES)
        pipe.lindex(keys.DUPLICATES, 0)
        pipe.xrevrange(keys.QUARANTINE, count=1)
        pipe.xrevrange(keys.INBOX_DEAD, count=1)
        pipe.lindex(keys.ANOMALIES, 0)
    replies = await pipe.execute()
    return hashlib.sha256(repr(replies).encode()).hexdigest()
