"""Per-device lock state and event log, as written by the processing script."""

from __future__ import annotations

import json

from lockhook import keys
from lockhook.clock import iso
from lockhook.redis_client import text_hash


def lock_state(client, device_id: str) -> dict | None:
    """`locked` (bool or None), `occurred_at`, `method` / `performed_via`, `source_event`; None if unseen."""
    return parse_lock_state(device_id, client.hgetall(keys.lock_state(device_id)))


def parse_lock_state(device_id: str, raw: dict) -> dict | None:
    """A device's lock-state hash (HGETALL) as `lock_state` returns it."""
    h = text_hash(raw)
    if not h:
        return None
    return {
        "device_id": device_id,
        "locked": None if h.get("locked") in (None, "") else h["locked"] == "1",
        "occurred_at": iso(h.get("occurred_at")),
        "method": h.get("method"),
        "performed_via": h.get("performed_via"),
        "source_event": h.get("source_event"),
        "event_type": h.get("event_type"),
        "updated_at": iso(h.get("updated_at")),
    }


def _event_line(raw: bytes | str) -> dict:
    entry = json.loads(raw)
    for field in ("occurred_at", "received_at"):
        if entry.get(field):
            entry[field] = iso(entry[field])
    return entry


def device_events(client, device_id: str, limit: int = 20) -> list[dict]:
    """The device's event log, newest first."""
    return [_event_line(x) for x in client.lrange(keys.device_events(device_id), 0, limit - 1)]


def recent_events(client, limit: int = 50) -> list[dict]:
    return [_event_line(x) for x in client.lrange(keys.RECENT_EVENTS, 0, limit - 1)]


def known_devices(client, limit: int = 200) -> list[str]:
    """Devices with events, most recently active first."""
    return [d.decode() for d in client.zrevrange(keys.DEVICES, 0, limit - 1)]
