"""Outcomes (command.*, lock.state_changed) read from the outbox stream, and their subscribers.

The processing scripts write each outcome to the outbox in the same atomic step as the state change,
so an outcome exists exactly when its transition happened. Subscribers (notifications, logs) must be
idempotent on `Outcome.id`: after a worker death an outbox entry is dispatched again.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from lockhook.redis_client import text, text_hash

log = logging.getLogger("lockhook.outcomes")

COMMAND_OUTCOMES = ("command.succeeded", "command.failed", "command.timed_out", "command.rejected",
                    "command.late_result")
LOCK_STATE_CHANGED = "lock.state_changed"


@dataclass(frozen=True, slots=True)
class Outcome:
    """One transition to tell the world about."""

    type: str
    at_ms: int
    command_id: str | None = None
    device_id: str | None = None
    event: str | None = None
    stream_id: str = field(default="", compare=False)

    @property
    def id(self) -> str:
        """Stable per (outcome, target object): receivers dedupe on it."""
        if self.type == LOCK_STATE_CHANGED:
            return f"lock.state_changed:{self.device_id}:{self.event}"
        return f"{self.type}:{self.command_id}"

    @classmethod
    def from_stream(cls, stream_id: bytes | str, fields: dict) -> Outcome:
        f = text_hash(fields)
        sid = text(stream_id)
        return cls(type=f["type"], at_ms=int(f.get("at") or 0), command_id=f.get("command_id"),
                   device_id=f.get("device_id"), event=f.get("event"), stream_id=sid)


Subscriber = Callable[[object, Outcome], None]
_subscribers: list[Subscriber] = []


def subscribe(fn: Subscriber) -> Subscriber:
    """Register a function called as fn(redis_connection, outcome) for every outcome."""
    if fn not in _subscribers:
        _subscribers.append(fn)
    return fn


def publish(connection, outcome: Outcome) -> None:
    """Hand an outcome to every subscriber; a failure is raised after all were called (then retried)."""
    failure: Exception | None = None
    for fn in list(_subscribers):
        try:
            fn(connection, outcome)
        except Exception as exc:
            log.exception("outcome subscriber %s failed", getattr(fn, "__name__", fn),
                          extra={"outcome": outcome.type, "command_id": outcome.command_id})
            failure = failure or exc
    if failure is not None:
        raise failure
