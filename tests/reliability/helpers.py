"""Helpers of the fault suite: event bodies, a worker busy with a batch, whether the inbox is settled, and
what to show when a test fails."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime

import redis

from lockhook import defaults, jobs, keys
from lockhook.commands.store import Command, CommandStore
from tests.support.processes import Process
from tests.support.waiting import wait_for

FILLERS = defaults.DRAIN_BATCH - 1


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


def heavy_event(n: int) -> bytes:
    """A valid event that takes milliseconds to parse, so a batch of them keeps the drain busy."""
    event = other_event(n, "dev_filler")
    event["payload"] = [{"k": i, "v": "x" * 8, "nested": {"a": [i, i + 1]}} for i in range(2500)]
    return body(event)


def store_deliveries(r, deliveries: list[tuple[str, bytes]]) -> None:
    """Put deliveries in the inbox at once, as the ingest script does (so one drain batch reads them all)."""
    with r.pipeline(transaction=True) as pipe:
        for delivery_id, raw in deliveries:
            pipe.set(keys.dedupe("seam", delivery_id), "1")
            pipe.xadd(keys.INBOX, {"endpoint": "seam", "delivery_id": delivery_id, "headers": "{}", "body": raw,
                                   "received_at": int(time.time() * 1000)})
        pipe.execute()


def busy_worker(r: redis.Redis, start_worker, name: str) -> tuple[CommandStore, Command, Process]:
    """A worker that has read, and not yet acknowledged, a full drain batch: FILLERS slow-to-parse events,
    then delivery `msg_<name>` confirming the pending command (`aa_<name>` on device `dev_<name>`)."""
    store = CommandStore(r)
    command, _ = store.register(f"dev_{name}", "unlock", "external", action_attempt_id=f"aa_{name}", timeout_s=600)
    worker = start_worker()
    wait_for(lambda: r.exists(keys.MAINTENANCE_FLAG) and r.xinfo_groups(keys.INBOX), timeout=20)
    confirmation = attempt_succeeded(0, f"dev_{name}", action="unlock") | {"event_id": f"evt_{name}",
                                                                           "action_attempt_id": f"aa_{name}"}
    store_deliveries(r, [(f"msg_filler_{n}", heavy_event(n)) for n in range(FILLERS)]
                     + [(f"msg_{name}", body(confirmation))])
    jobs.ensure_drain(r)
    wait_for(lambda: r.xpending(keys.INBOX, keys.INBOX_GROUP)["pending"] > 0, timeout=20, interval=0.001)
    return store, command, worker


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
    for name in ("events", "polls"):
        lines.append(f"queue {name}: {client.llen('rq:queue:' + name)} queued, "
                     f"{client.zcard('rq:wip:' + name)} started, {client.zcard('rq:failed:' + name)} failed, "
                     f"{client.zcard('rq:scheduled:' + name)} scheduled")
    due = client.zrange(keys.NOTIFY_DUE, 0, 9, withscores=True)
    lines.append(f"notification targets (label -> earliest due/lease ms, now {int(time.time() * 1000)}): {due}; "
                 f"sizes {[client.zcard(keys.notify_due(label.decode())) for label, _ in due]}")
    lines.append(f"flags drain={client.ttl(keys.DRAIN_FLAG)} maintenance={client.ttl(keys.MAINTENANCE_FLAG)} "
                 f"locks={client.keys('rq:scheduler-lock:*')}")
    for proc in processes:
        lines.append(f"--- {proc.name} (exit {proc.proc.poll()}) ---\n" + proc.output()[-3000:])
    return "\n".join(lines)
