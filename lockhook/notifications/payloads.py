"""What a notification says: the JSON body `{"type","id","created_at","data"}` and the one-line chat text."""

from __future__ import annotations

import hashlib
import json
from urllib.parse import urlsplit

from lockhook.clock import iso
from lockhook.commands.store import Command, CommandStore
from lockhook.outcomes import LOCK_STATE_CHANGED, Outcome
from lockhook.processing.locks import lock_state

WEBHOOK = "webhook"
CALLBACK = "callback"
SLACK = "slack"


def notification_id(outcome: Outcome, target: str) -> str:
    """Stable per (outcome, target): the payload `id` and the `webhook-id`, the same on every attempt."""
    digest = hashlib.sha256(f"{outcome.id}|{target}".encode()).hexdigest()[:32]
    return f"msg_{digest}"


def target_label(kind: str, url: str | None) -> str:
    """A name for a target that is safe to log and show: the host only (paths and queries may hold tokens)."""
    if kind == SLACK or not url:
        return kind
    parts = urlsplit(url)
    host = parts.hostname or "?"
    return f"{kind}:{host}:{parts.port}" if parts.port else f"{kind}:{host}"


def outcome_data(client, outcome: Outcome) -> dict:
    """The command JSON for command outcomes, the device's lock state for `lock.state_changed`."""
    if outcome.type == LOCK_STATE_CHANGED:
        state = lock_state(client, outcome.device_id) if outcome.device_id else None
        return state or {"device_id": outcome.device_id, "source_event": outcome.event}
    command = CommandStore(client).get(outcome.command_id) if outcome.command_id else None
    return command.model_dump(mode="json") if command else {"command_id": outcome.command_id}


def body(outcome: Outcome, nid: str, data: dict) -> str:
    """The exact bytes sent (as text): built once, so every retry carries the same signed body."""
    return json.dumps({"type": outcome.type, "id": nid, "created_at": iso(outcome.at_ms), "data": data},
                      separators=(",", ":"), sort_keys=True)


def _latency(data: dict) -> str | None:
    try:
        command = Command.model_validate(data)
    except ValueError:
        return None
    ms = command.latency_ms
    if ms is None:
        return None
    return f"{ms} ms" if ms < 1000 else f"{ms / 1000:.1f} s"


def slack_text(outcome: Outcome, data: dict) -> str:
    """One readable line: device, action, outcome, error code, latency."""
    if outcome.type == LOCK_STATE_CHANGED:
        locked = data.get("locked")
        state = "locked" if locked else ("unlocked" if locked is False else "unknown")
        how = data.get("performed_via") or data.get("method") or "unknown"
        return f"lock.state_changed: device {data.get('device_id') or outcome.device_id} is {state} (via {how})"
    parts = [f"{outcome.type}: {data.get('action') or '?'} on device {data.get('device_id') or '?'}"]
    if data.get("error_code"):
        parts.append(f"error {data['error_code']}")
    latency = _latency(data)
    if latency:
        parts.append(f"latency {latency}")
    parts.append(f"command {data.get('command_id') or outcome.command_id}")
    return " · ".join(parts)


def slack_body(outcome: Outcome, data: dict) -> str:
    return json.dumps({"text": slack_text(outcome, data)})
