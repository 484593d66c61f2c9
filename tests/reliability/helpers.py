"""Helpers of the fault suite: event bodies, whether the inbox is settled, what to show when a test fails."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime

import redis

from lockhook import keys


def iso(ts: float | None = None) -> str:
    return datetime.fromtimestamp(ts or time.time(), tz=UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def attempt_succeeded(n: int, device: str, action: str = "lock") -> dict:
    """A Seam action_attempt.*.succeeded event confirming command n."""
    return {"event_id": f"evt_aa_{n}", "event_type": f"action_attempt.{action}_door.succeeded",
            "action_attempt_id": f"aa_{n}", "action_type": f"{action.upper()}_DOOR", "status": "success",
            "device_id": device, "workspace_id": "ws_rel", "created_at": iso(), "occurred_at": iso()}


def lock_event(n: int, device: str, locked: bool = True, **extra) -> dict:
    return {"event_id": f"evt_lock_{n}", "event_type": "lock.locked" if locked else "lock.unlocked",
            "device_id": device, "method": "keycode", "workspace_id": "ws_rel", "created_at": iso(),
            "occurred_at": iso(), **extra}


def other_event(n: int, device: str) -> dict:
    return {"event_id": f"evt_other_{n}", "event_type": "device.connected", "device_id": device,
            "workspace_id": "ws_rel", "created_at": iso(), "occurred_at": iso()}


def body(event: dict) -> bytes:
    return json.dumps(event, separators=(",", ":")).encode()


def inbox_settled(client: redis.Redis) -> bool:
    """True when every inbox entry was read and acknowledged by the drain workers."""
    try:
        groups = {g["name"].decode(): g for g in client.xinfo_groups(keys.INBOX)}
    except redis.ResponseError:
        return False
    group = groups.get(keys.INBOX_GROUP)
    if not group or group["pending"]:
        return False
    # Redis 6.2 has no "lag": compare the group's last delivered id with the stream's last id instead
    last = client.xinfo_stream(keys.INBOX)["last-generated-id"]
    return group["last-delivered-id"] == last


def diagnose(client: redis.Redis, *processes) -> str:
    """State worth seeing when a fault test fails: stream groups, queues, process logs."""
    lines = []
    for stream in (keys.INBOX, keys.OUTBOX):
        try:
            lines.append(f"{stream} len={client.xlen(stream)} groups={client.xinfo_groups(stream)}")
        except redis.ResponseError as exc:
            lines.append(f"{stream}: {exc}")
    for name in ("events", "notifications"):
        lines.append(f"queue {name}: {client.llen('rq:queue:' + name)} queued, "
                     f"{client.zcard('rq:wip:' + name)} started, {client.zcard('rq:failed:' + name)} failed, "
                     f"{client.zcard('rq:scheduled:' + name)} scheduled")
    inflight = client.zrange(keys.NOTIFY_INFLIGHT, 0, 9, withscores=True)
    lines.append(f"notifications in flight (id -> overdue at ms): {inflight}"
                 f"; intermediate queue: {client.llen('rq:queue:notifications:intermediate')}")
    lines.append(f"flags drain={client.ttl(keys.DRAIN_FLAG)} maintenance={client.ttl(keys.MAINTENANCE_FLAG)} "
                 f"locks={client.keys('rq:scheduler-lock:*')}")
    for proc in processes:
        lines.append(f"--- {proc.name} (exit {proc.proc.poll()}) ---\n" + proc.output()[-3000:])
    return "\n".join(lines)
