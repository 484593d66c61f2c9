"""Typed events from Seam and device clouds, and their normalized form for the processing script.

Tolerant where the senders are: extra fields are kept, `method` / `performed_via` are open strings,
timestamps of any precision parse (between 2000 and a day from now), and any other `event_type`, or a known
one with invalid fields, becomes a GenericEvent: kept and counted, never applied to lock state.
"""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime
from functools import cache
from typing import Annotated, Any, Literal, get_args, get_type_hints

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, ValidationError

from lockhook import defaults
from lockhook.processing.event_log import own_fields

_FRACTION = re.compile(r"(\.\d{6})\d+")


def _lenient_time(value: Any) -> Any:
    """Accept ISO 8601 with any fractional precision (nanoseconds included) or epoch seconds/ms."""
    if isinstance(value, str):
        value = _FRACTION.sub(r"\1", value.strip())
        if value.endswith("z"):
            value = value[:-1] + "Z"
    elif isinstance(value, int | float) and not isinstance(value, bool):
        seconds = value / 1000 if value > 10_000_000_000 else value
        try:
            return datetime.fromtimestamp(seconds, tz=UTC)
        except (OverflowError, OSError, ValueError):  # out of range: a validation error, not a crash
            raise ValueError("timestamp out of range") from None
    return value


EARLIEST_EVENT = datetime(2000, 1, 1, tzinfo=UTC)
"""No lock event happened before this; a timestamp earlier is a sender's bug."""


def _sane_time(value: datetime) -> datetime:
    """Between EARLIEST_EVENT and a day from now (a year-10000 instant would poison lock state forever)."""
    aware = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
    try:
        seconds = aware.timestamp()
    except (OverflowError, ValueError, OSError):
        raise ValueError("timestamp out of range") from None
    if seconds < EARLIEST_EVENT.timestamp() or seconds > time.time() + defaults.EVENT_FUTURE_TOLERANCE_S:
        raise ValueError("timestamp before 2000 or more than a day ahead")
    return aware


Timestamp = Annotated[datetime, BeforeValidator(_lenient_time), AfterValidator(_sane_time)]


class BaseEvent(BaseModel):
    """Fields every event may carry; unknown fields are kept (`model_extra`)."""

    model_config = ConfigDict(extra="allow", frozen=True)

    event_type: str
    event_id: str | None = None
    workspace_id: str | None = None
    device_id: str | None = None
    connected_account_id: str | None = None
    created_at: Timestamp | None = None
    occurred_at: Timestamp | None = None


class LockLocked(BaseEvent):
    event_type: Literal["lock.locked"]
    method: str | None = None
    action_attempt_id: str | None = None
    access_code_id: str | None = None


class LockUnlocked(BaseEvent):
    event_type: Literal["lock.unlocked"]
    method: str | None = None
    action_attempt_id: str | None = None
    access_code_id: str | None = None


class LockAccessDenied(BaseEvent):
    event_type: Literal["lock.access_denied"]
    access_code_id: str | None = None


ACTION_ATTEMPT_TYPES = (
    "action_attempt.lock_door.succeeded", "action_attempt.lock_door.failed",
    "action_attempt.unlock_door.succeeded", "action_attempt.unlock_door.failed",
)


class ActionAttemptEvent(BaseEvent):
    event_type: Literal[ACTION_ATTEMPT_TYPES]  # type: ignore[valid-type]
    action_attempt_id: str
    action_type: str | None = None
    status: str | None = None
    error: dict[str, Any] | None = None


class LockActionCompleted(BaseEvent):
    """Device cloud: the outcome of an action requested with `POST /locks/{id}/actions`. It has no event_id."""

    event_type: Literal["lock.action_completed"]
    action_id: str | None = None
    custom_id: str | None = None
    action: str | None = None
    status: str
    performed_via: str | None = None
    error_code: str | None = None
    message: str | None = None
    timestamp: Timestamp | None = None


HEALTH_TYPES = ("device.connected", "device.disconnected", "device.low_battery", "device.battery_status_changed")


class DeviceHealthEvent(BaseEvent):
    """Seam: a device came online or went offline, or its battery changed (level 0-1, status low/good/...)."""

    event_type: Literal[HEALTH_TYPES]  # type: ignore[valid-type]
    battery_level: float | None = None
    battery_status: str | None = None


class GenericEvent(BaseEvent):
    """Any other event type (Seam has ~100): stored and counted, never an error."""


MODELS: dict[str, type[BaseEvent]] = {
    "lock.locked": LockLocked,
    "lock.unlocked": LockUnlocked,
    "lock.access_denied": LockAccessDenied,
    "lock.action_completed": LockActionCompleted,
    **{name: ActionAttemptEvent for name in ACTION_ATTEMPT_TYPES},
    **{name: DeviceHealthEvent for name in HEALTH_TYPES},
}

SOURCE_WEBHOOK = "webhook"
SOURCE_RECONCILE = "reconcile"
SOURCES = (SOURCE_WEBHOOK, SOURCE_RECONCILE)
"""Where an event came from: a delivered webhook, or Seam's event list (an inbox entry with
`lockhook-source: reconcile` among its stored headers)."""

# lock events without ids whose method may be a remote command (correlation rule 4)
REMOTE_METHODS = {None, "", "remote", "seamapi", "unknown"}


def parse_event(data: dict) -> tuple[BaseEvent, str | None]:
    """The typed event and, when a known type had invalid fields, why it fell back to GenericEvent."""
    model = MODELS.get(data.get("event_type"), GenericEvent)
    try:
        return model.model_validate(data), None
    except ValidationError as exc:
        fields = sorted({".".join(str(p) for p in err["loc"]) for err in exc.errors()})
        generic = {k: v for k, v in data.items() if k in ("event_type",)}
        for key in ("event_id", "device_id", "workspace_id"):
            if isinstance(data.get(key), str):
                generic[key] = data[key]
        return GenericEvent.model_validate(generic), "invalid fields: " + ", ".join(fields)[:200]


def _ms(value: datetime | None) -> int | None:
    if not isinstance(value, datetime):  # e.g. an unvalidated extra field named `timestamp` on a generic event
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return int(value.timestamp() * 1000)


def event_key(event: BaseEvent, endpoint: str, delivery_id: str) -> str:
    """Idempotency key: Seam's event_id, or the delivery id for senders without one."""
    return f"event:{event.event_id}" if event.event_id else f"delivery:{endpoint}:{delivery_id}"


def _text(event: BaseEvent, name: str) -> str | None:
    """A field for the log only if it is a string: on other types it is an unvalidated extra of any shape."""
    value = getattr(event, name, None)
    return value if isinstance(value, str) else None


class EventSummary(BaseModel):
    """What the event logs (per device and recent) show of an event; the script adds command_id, lock, parked.

    Beside these, the event's own fields (attribution: `method` / `performed_via`, `access_code_id`,
    `user_identity_id`, `acs_*`, and any other) are kept as extra fields, capped by `event_log.own_fields`.
    """

    model_config = ConfigDict(extra="allow")

    event: str
    event_type: str
    device_id: str | None = None
    occurred_at: str
    received_at: str
    delivery_id: str | None = None
    endpoint: str
    method: str | None = None
    performed_via: str | None = None
    status: str | None = None
    error_code: str | None = None
    problem: str | None = None
    """Why a known event type was kept as a generic event (its fields were invalid)."""


class NormalizedEvent(BaseModel):
    """The flat form the `apply_event` script works on, sent as JSON with absent values omitted.

    Events that arrive before their command are stored in this form (parked) and applied when the command
    registers, so the fields `common.lua`'s `apply_result` reads keep their names across versions.
    """

    model_config = ConfigDict(extra="forbid")

    key: str
    """Idempotency key (`event_key`): the event is applied once per key and endpoint."""
    endpoint: str
    """Who signed it (`seam` | `device-cloud`): a sender resolves only commands issued through it."""
    digest: str | None = None
    """Of the raw body: the same key with another digest is an `event_id_conflict` (None: not compared)."""
    stats_type: str
    """The event_type as counted in metrics: a type no sender documents counts as `other` (bounded series)."""
    type: str
    """The event_type."""
    device_id: str | None = None
    occurred: str
    """When it happened, epoch ms (when the event says, else when it was received)."""
    is_action_result: bool = False
    """The outcome of a lock/unlock action: it may resolve a pending command."""
    match_by_device_window: bool = False
    """An id-less lock event from a possibly remote method: it resolves the oldest pending command with the
    same device and action created inside the correlation window (rule 4)."""
    success: bool | None = None
    action: Literal["lock", "unlock"] | None = None
    lock_state: Literal["locked", "unlocked"] | None = None
    method: str | None = None
    performed_via: str | None = None
    action_id: str | None = None
    custom_id: str | None = None
    action_attempt_id: str | None = None
    error_code: str | None = None
    error_message: str | None = None
    access_code_id: str | None = None
    """The keypad code a `lock.access_denied` names (sent on with its notification)."""
    ref: str | None = None
    """What a command it confirms records as `resolved_by`: the bare event id, else the delivery id."""
    source: Literal["webhook", "reconcile"] = SOURCE_WEBHOOK
    """How it arrived, a confirmed command's `resolved_via`: delivered, or read from Seam's event list."""
    health: dict[str, str] | None = None
    """Lock-state fields a device health event sets (`online`, `battery_level`, `battery_status`)."""
    summary: EventSummary

    def payload(self) -> str:
        """The JSON handed to the script."""
        return self.model_dump_json(exclude_none=True)


def _health(event: DeviceHealthEvent) -> dict[str, str]:
    """Lock-state fields a health event sets: `online` ("1"/"0"), `battery_level`, `battery_status`."""
    health: dict[str, str] = {}
    if event.event_type == "device.connected":
        health["online"] = "1"
    elif event.event_type == "device.disconnected":
        health["online"] = "0"
    if event.battery_level is not None:
        health["battery_level"] = repr(round(float(event.battery_level), 4))
    if event.battery_status:
        health["battery_status"] = event.battery_status
    elif event.event_type == "device.low_battery":
        health["battery_status"] = "low"
    return health


def normalize(event: BaseEvent, endpoint: str, delivery_id: str, received_ms: int,
              problem: str | None = None, digest: str | None = None,
              source: str = SOURCE_WEBHOOK) -> NormalizedEvent:
    """The form the `apply_event` script works on; `problem` says why a known type fell back to generic,
    `source` how it arrived (webhook, or reconcile for an event read from Seam's event list)."""
    occurred = str(_ms(event.occurred_at) or _ms(getattr(event, "timestamp", None)) or _ms(event.created_at)
                   or received_ms)
    n: dict[str, Any] = {}
    if isinstance(event, LockLocked | LockUnlocked):
        action = "lock" if isinstance(event, LockLocked) else "unlock"
        n.update(is_action_result=True, success=True, action=action, lock_state=action + "ed", method=event.method,
                 action_attempt_id=event.action_attempt_id,
                 match_by_device_window=(not event.action_attempt_id) and event.method in REMOTE_METHODS)
    elif isinstance(event, ActionAttemptEvent):
        succeeded = event.event_type.endswith(".succeeded")
        error = event.error or {}
        action = "lock" if ".lock_door." in event.event_type else "unlock"
        n.update(is_action_result=True, success=succeeded, action_attempt_id=event.action_attempt_id,
                 action=action)
        if succeeded:  # Seam confirmed the lock moved: the state follows, also for locks that send no lock event
            n.update(lock_state=action + "ed", method="seamapi")
        if not succeeded:
            n.update(error_code=str(error.get("type") or "action_attempt_failed"),
                     error_message=str(error.get("message") or "") or None)
    elif isinstance(event, LockActionCompleted):
        success = event.status.lower() in ("success", "succeeded")
        action = event.action if event.action in ("lock", "unlock") else None
        n.update(is_action_result=True, success=success, action=action, action_id=event.action_id,
                 custom_id=event.custom_id, performed_via=event.performed_via)
        if success and action:
            n["lock_state"] = action + "ed"
        if not success:
            n.update(error_code=event.error_code or "unknown_error", error_message=event.message)
    elif isinstance(event, LockAccessDenied):
        n["access_code_id"] = _text(event, "access_code_id")
    elif isinstance(event, DeviceHealthEvent):
        n["health"] = _health(event)
    key = event_key(event, endpoint, delivery_id)
    summary = EventSummary(
        event=key, event_type=event.event_type, device_id=event.device_id, occurred_at=occurred,
        received_at=str(received_ms), delivery_id=delivery_id or None, endpoint=endpoint,
        method=_text(event, "method"), performed_via=_text(event, "performed_via"), status=_text(event, "status"),
        error_code=n.get("error_code"), problem=problem)
    summary = EventSummary.model_validate(own_fields(event, summary.model_dump(exclude_none=True),
                                                     frozenset(EventSummary.model_fields)))
    return NormalizedEvent(key=key, endpoint=endpoint, digest=digest, type=event.event_type,
                           stats_type=event.event_type if event.event_type in known_event_types() else "other",
                           device_id=event.device_id, occurred=occurred, ref=event.event_id or delivery_id or None,
                           source=source if source in SOURCES else SOURCE_WEBHOOK, summary=summary, **n)


@cache
def known_event_types() -> frozenset[str]:
    """Every event type Seam documents (read from the official SDK's `events.list` filter) and ours."""
    from seam.routes.events import Events

    def literals(annotation) -> set[str]:
        found = set()
        for arg in get_args(annotation):
            found |= {arg} if isinstance(arg, str) else literals(arg)
        return found

    hints = get_type_hints(Events.list)
    return frozenset(literals(hints.get("event_type")) | set(MODELS) | {"lock.action_completed"})
