"""Per-device lock state and event log, as written by the processing script."""

from __future__ import annotations

import json

from lockhook import keys
from lockhook.clock import iso, now_ms
from lockhook.redis_client import text_hash
from lockhook.scripts import Scripts


def lock_state(client, device_id: str) -> dict | None:
    """`locked` (bool or None), `occurred_at`, `method` / `performed_via`, `source_event`, `online`, `battery`;
    None if unseen."""
    return parse_lock_state(device_id, client.hgetall(keys.lock_state(device_id)))


def parse_lock_state(device_id: str, raw: dict) -> dict | None:
    """A device's lock-state hash (HGETALL) as `lock_state` returns it."""
    h = text_hash(raw)
    if set(h) <= {"issuer"}:  # no event said anything about it yet (a failed command may have named its issuer)
        return None
    return {
        "device_id": device_id,
        "locked": _flag(h.get("locked")),
        "occurred_at": iso(h.get("occurred_at")),
        "method": h.get("method"),
        "performed_via": h.get("performed_via"),
        "source_event": h.get("source_event"),
        "event_type": h.get("event_type"),
        "updated_at": iso(h.get("updated_at")),
        "source": h.get("source") or ("event" if h.get("source_event") else None),
        "read_at": iso(h.get("read_at")),
        **_watch_fields(h),
    }


def record_reading(client, device_id: str, locked: bool, read_ms: int, device_retention_s: int) -> str:
    """What the lock's cloud says now (Seam's `properties.locked`): corrects the stored state unless an
    event newer than the reading says otherwise. Returns 'applied', 'agrees' or 'stale'."""
    result = Scripts(client).lock_reading(args=Scripts.args(now_ms(), device_id, "1" if locked else "0", read_ms,
                                                            device_retention_s, f"seam_api@{read_ms}"))
    return result.decode() if isinstance(result, bytes) else result


def _flag(value: str | None) -> bool | None:
    return None if value in (None, "") else value == "1"


def _watch_fields(h: dict) -> dict:
    """Device health (`online`, `battery`), since when it is unlocked, and the issuer an auto-relock would use."""
    try:
        level = float(h["battery_level"]) if h.get("battery_level") else None
    except ValueError:
        level = None
    battery = {"level": level, "status": h.get("battery_status")} if level is not None or h.get("battery_status") \
        else None
    return {"online": _flag(h.get("online")), "battery": battery, "health_at": iso(h.get("health_at")),
            "unlocked_since": iso(h.get("unlocked_since")), "issuer": h.get("issuer")}


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


def lock_page(client, limit: int = 50, cursor: str | None = None) -> tuple[list[dict], str | None]:
    """Every device an event was seen for, most recent event first, with its state (locked None when unknown)."""
    from lockhook.paging import page

    def keep(device_ids: list[str]) -> list[dict]:
        return [lock_state(client, d) or {"device_id": d, "locked": None, "occurred_at": None, "method": None,
                                           "performed_via": None, "source_event": None, "event_type": None,
                                           "updated_at": None} for d in device_ids]

    return page(client, keys.DEVICES, cursor, limit, keep)
