"""Outcomes (command.*, lock.*) as the processing scripts write them to the outbox stream.

The scripts write each outcome in the same atomic step as the state change, so an outcome exists exactly
when its transition happened. The notifier reads the stream; after a notifier death an entry is read
again, so whatever it derives must be keyed by `Outcome.id`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from lockhook.redis_client import text, text_hash

COMMAND_OUTCOMES = ("command.succeeded", "command.failed", "command.timed_out", "command.rejected",
                    "command.late_result")
LOCK_STATE_CHANGED = "lock.state_changed"
LOCK_UNLOCKED_WITHOUT_COMMAND = "lock.unlocked_without_command"
LOCK_LEFT_UNLOCKED = "lock.left_unlocked"
DEVICE_HEALTH_OUTCOMES = ("device.connected", "device.disconnected", "device.low_battery",
                          "device.battery_status_changed")
"""Outcomes about a device, not a command: `device_id` and `event` (the event that caused it, or for
`lock.left_unlocked` the one that unlocked) identify them."""


@dataclass(frozen=True, slots=True)
class Outcome:
    """One transition to tell the world about."""

    type: str
    at_ms: int
    command_id: str | None = None
    device_id: str | None = None
    event: str | None = None
    stream_id: str = field(default="", compare=False)
    extra: dict[str, str] = field(default_factory=dict, compare=False)
    """Whatever else the script wrote with a device outcome (e.g. `access_code_id`, `count`)."""

    @property
    def id(self) -> str:
        """Stable per (outcome, target object): receivers dedupe on it."""
        if self.type in COMMAND_OUTCOMES:
            return f"{self.type}:{self.command_id}"
        return f"{self.type}:{self.device_id}:{self.event}"  # a lock's news, once per event that caused it

    @property
    def is_command(self) -> bool:
        return self.type in COMMAND_OUTCOMES

    @classmethod
    def from_stream(cls, stream_id: bytes | str, fields: dict) -> Outcome:
        f = text_hash(fields)
        extra = {k: v for k, v in f.items() if k not in _OWN_FIELDS}
        return cls(type=f["type"], at_ms=int(f.get("at") or 0), command_id=f.get("command_id"),
                   device_id=f.get("device_id"), event=f.get("event"), stream_id=text(stream_id), extra=extra)


_OWN_FIELDS = ("type", "at", "command_id", "device_id", "event")
