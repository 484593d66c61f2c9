"""What a notification says and to whom: the targets of an outcome (with their event filters), the JSON body
`{"type","id","created_at","data"}` and the one-line chat text."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from fnmatch import fnmatchcase
from urllib.parse import urlsplit

from lockhook import keys
from lockhook.clock import iso
from lockhook.commands.store import Command
from lockhook.outcomes import (
    COMMAND_OUTCOMES,
    DEVICE_HEALTH_OUTCOMES,
    LOCK_LEFT_UNLOCKED,
    LOCK_STATE_CHANGED,
    LOCK_UNLOCKED_WITHOUT_COMMAND,
    Outcome,
)
from lockhook.processing.event_log import is_attribution
from lockhook.processing.locks import lock_state, parse_lock_state
from lockhook.settings import Settings

WEBHOOK, CALLBACK, SLACK = "webhook", "callback", "slack"


def notification_id(outcome: Outcome, target: str) -> str:
    """Stable per (outcome, target): the payload `id` and the `webhook-id`, the same on every attempt."""
    return "msg_" + hashlib.sha256(f"{outcome.id}|{target}".encode()).hexdigest()[:32]


def targets(settings: Settings, outcome: Outcome, data: dict) -> list[tuple[str, str | None]]:
    """(kind, url) per target: webhooks and Slack whose event patterns match, the command's own callback."""
    def wanted(patterns: list[str]) -> bool:
        return any(fnmatchcase(outcome.type, p) for p in patterns)

    found: list = [(WEBHOOK, url) for url, patterns in settings.notify_webhooks if wanted(patterns)]
    if outcome.type in COMMAND_OUTCOMES and data.get("callback_url"):
        found.append((CALLBACK, data["callback_url"]))
    if settings.slack_webhook_url and wanted(settings.notify_events_patterns):
        found.append((SLACK, None))
    return found


def target_label(kind: str, url: str | None) -> str:
    """A name for a target that is safe to log and show: the host only (paths and queries may hold tokens)."""
    if kind == SLACK or not url:
        return kind
    parts = urlsplit(url)
    host = parts.hostname or "?"
    try:
        port = parts.port
    except ValueError:  # not a port: the send will say so
        port = "invalid"
    return f"{kind}:{host}:{port}" if port else f"{kind}:{host}"


def outcomes_data(client, outcomes: list[Outcome]) -> list[dict]:
    """Per outcome, read in one round trip: the command JSON, or the device's lock state for `lock.state_changed`;
    for the lock-watch and device-health outcomes what happened, to which device, and who did it."""
    pipe = client.pipeline(transaction=False)
    for o in outcomes:
        pipe.hgetall(keys.command(o.command_id or "") if o.is_command else keys.lock_state(o.device_id or ""))
    out = []
    for o, raw in zip(outcomes, pipe.execute() if outcomes else [], strict=True):
        if o.type in DEVICE_OUTCOME_DATA:  # lock watch, device health: rare, read on their own
            out.append(DEVICE_OUTCOME_DATA[o.type](client, o))
        elif o.type == LOCK_STATE_CHANGED:
            out.append(parse_lock_state(o.device_id, raw) or {"device_id": o.device_id, "source_event": o.event})
        elif o.is_command:
            out.append(Command.from_hash(raw).model_dump(mode="json") if raw else {"command_id": o.command_id})
        else:  # a lock's own news (a denied code, ...): what the script wrote, and the lock as it stands
            event_id = (o.event or "").removeprefix("event:")
            out.append({"device_id": o.device_id, "event_id": event_id or None, **o.extra,
                        "lock": parse_lock_state(o.device_id, raw)})
    return out


def _event_entry(client, event_key: str | None) -> dict:
    """The event-log entry kept for an outcome's event ({} once it expired)."""
    raw = client.get(keys.event_record(event_key)) if event_key else None
    try:
        entry = json.loads(raw) if raw else {}
    except ValueError:
        return {}
    return entry if isinstance(entry, dict) else {}


def _event_fields(entry: dict, event_key: str | None) -> dict:
    """The event's id, type, time and attribution (method / performed_via, access code, user identity, acs_*)."""
    fields = {"event_id": entry.get("event_id") or entry.get("delivery_id") or event_key,
              "event_type": entry.get("event_type"), "occurred_at": iso(entry.get("occurred_at"))}
    if entry.get("delivery_id"):
        fields["delivery_id"] = entry["delivery_id"]
    fields.update({k: v for k, v in entry.items() if is_attribution(k) and k != "event_id"})
    return {k: v for k, v in fields.items() if v is not None}


def unlocked_without_command_data(client, outcome: Outcome) -> dict:
    """`lock.unlocked_without_command`: an unlock no command explains, and who or what did it."""
    entry = _event_entry(client, outcome.event)
    return {"device_id": outcome.device_id, **_event_fields(entry, outcome.event)}


def left_unlocked_data(client, outcome: Outcome) -> dict:
    """`lock.left_unlocked`: since when the lock has been unlocked, for how long, and the unlock that began it."""
    entry = _event_entry(client, outcome.event)
    state = (lock_state(client, outcome.device_id) if outcome.device_id else None) or {}
    since_ms = entry.get("occurred_at")
    data = {"device_id": outcome.device_id, "locked": state.get("locked"), "unlocked_since": iso(since_ms),
            "unlocked_by": _event_fields(entry, outcome.event)}
    if since_ms and str(since_ms).isdigit():
        data["unlocked_for_s"] = max(0, round((outcome.at_ms - int(since_ms)) / 1000))
    return data


def device_health_data(client, outcome: Outcome) -> dict:
    """`device.*`: the event, and the device's online state and battery as they are now."""
    entry = _event_entry(client, outcome.event)
    state = (lock_state(client, outcome.device_id) if outcome.device_id else None) or {}
    data = {"device_id": outcome.device_id, "online": state.get("online"), "battery": state.get("battery"),
            **_event_fields(entry, outcome.event)}
    for name in ("battery_level", "battery_status", "error_code"):
        if name in entry:
            data[name] = entry[name]
    return data


DEVICE_OUTCOME_DATA = {
    LOCK_UNLOCKED_WITHOUT_COMMAND: unlocked_without_command_data,
    LOCK_LEFT_UNLOCKED: left_unlocked_data,
    **{name: device_health_data for name in DEVICE_HEALTH_OUTCOMES},
}


def body(outcome: Outcome, nid: str, data: dict) -> str:
    """The exact bytes sent (as text): built once, so every retry carries the same signed body."""
    return json.dumps({"type": outcome.type, "id": nid, "created_at": iso(outcome.at_ms), "data": data},
                      separators=(",", ":"), sort_keys=True)


def latency_ms(data: dict) -> int | None:
    """Command created -> resolved, from the command JSON; None when it has not resolved."""
    ends = [datetime.fromisoformat(data[k]) for k in ("created_at", "resolved_at") if data.get(k)]
    return int((ends[1] - ends[0]).total_seconds() * 1000) if len(ends) == 2 else None


def slack_text(outcome: Outcome, data: dict) -> str:
    """One readable line: device, action, outcome, error code, latency."""
    if outcome.type == LOCK_STATE_CHANGED:
        locked = data.get("locked")
        state = "locked" if locked else ("unlocked" if locked is False else "unknown")
        how = data.get("performed_via") or data.get("method") or "unknown"
        return f"lock.state_changed: device {data.get('device_id') or outcome.device_id} is {state} (via {how})"
    if outcome.type in DEVICE_OUTCOME_DATA:
        return _device_text(outcome, data)
    if not outcome.is_command:
        details = ", ".join(f"{k} {v}" for k, v in outcome.extra.items())
        return f"{outcome.type}: device {outcome.device_id}" + (f" ({details})" if details else "")
    parts = [f"{outcome.type}: {data.get('action') or '?'} on device {data.get('device_id') or '?'}"]
    if data.get("error_code"):
        parts.append(f"error {data['error_code']}")
    ms = latency_ms(data)
    if ms is not None:
        parts.append(f"latency {ms} ms" if ms < 1000 else f"latency {ms / 1000:.1f} s")
    parts.append(f"command {data.get('command_id') or outcome.command_id}")
    return " · ".join(parts)


def slack_body(outcome: Outcome, data: dict) -> str:
    return json.dumps({"text": slack_text(outcome, data)})


def _device_text(outcome: Outcome, data: dict) -> str:
    device = data.get("device_id") or outcome.device_id or "?"
    if outcome.type == LOCK_LEFT_UNLOCKED:
        by = data.get("unlocked_by") or {}
        how = by.get("method") or by.get("performed_via") or "?"
        for_s = data.get("unlocked_for_s")
        return (f"lock.left_unlocked: device {device} unlocked for {for_s if for_s is not None else '?'} s "
                f"(since {data.get('unlocked_since') or '?'}, via {how})")
    if outcome.type == LOCK_UNLOCKED_WITHOUT_COMMAND:
        parts = [f"lock.unlocked_without_command: device {device} unlocked by "
                 f"{data.get('method') or data.get('performed_via') or 'unknown'}"]
        for name in ("access_code_id", "user_identity_id"):
            if data.get(name):
                parts.append(f"{name} {data[name]}")
        parts.append(f"event {data.get('event_id') or outcome.event}")
        return " · ".join(parts)
    battery = data.get("battery") or {}
    state = {True: "online", False: "offline"}.get(data.get("online"), "online state unknown")
    level = battery.get("level")
    text = f"{outcome.type}: device {device} is {state}"
    if level is not None or battery.get("status"):
        text += f", battery {battery.get('status') or ''}{f' {level:.0%}' if level is not None else ''}".rstrip()
    return text
