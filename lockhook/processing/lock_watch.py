"""Lock watch: the checks an unlocked period sets (left unlocked, auto-relock), when they are due, and firing one.

An unlock applied to lock state sets one due time per enabled check (zset `keys.LOCK_WATCH`) and a job at
that time (RQ's scheduler); the maintenance sweep fires any the scheduler missed. Firing is one script that
removes the check, so the job and the sweep together still fire it once per unlocked period; a lock applied
first removes it.
"""

from __future__ import annotations

from dataclasses import dataclass

from lockhook import defaults, jobs, keys
from lockhook.clock import now_ms
from lockhook.redis_client import text
from lockhook.scripts import Scripts
from lockhook.settings import Settings

LEFT_UNLOCKED = "left_unlocked"
AUTO_RELOCK = "auto_relock"
CHECKS = (LEFT_UNLOCKED, AUTO_RELOCK)


@dataclass(frozen=True, slots=True)
class LockWatch:
    """How long a lock may stay unlocked before each check fires, in ms (0: that check is off)."""

    left_unlocked_ms: int = 0
    auto_relock_ms: int = 0

    @classmethod
    def from_settings(cls, settings: Settings) -> LockWatch:
        return cls(int(settings.left_unlocked_after_s * 1000), int(settings.auto_relock_after_s * 1000))

    def enabled(self, check: str) -> bool:
        return (self.left_unlocked_ms if check == LEFT_UNLOCKED else self.auto_relock_ms) > 0

    def script_args(self) -> tuple[int, int]:
        """The apply_event arguments after the event: both delays."""
        return self.left_unlocked_ms, self.auto_relock_ms


def member(check: str, device_id: str) -> str:
    return f"{check}:{device_id}"


def schedule_checks(client, result: dict, period: str) -> None:
    """Queue a job at each due time the applied event set (`result["watch"]`: check -> due ms)."""
    due = result.get("watch") or {}
    device_id = result.get("device_id")
    if not device_id or not isinstance(due, dict):
        return
    for check, at_ms in due.items():
        if check in CHECKS:
            jobs.schedule_lock_check(client, check, device_id, period, int(at_ms))


def fire(client, check: str, device_id: str, period: str = "") -> tuple[str, str]:
    """Fire one check if it is due and its period still runs: (result, issuer or due ms or "")."""
    status, value = Scripts(client).watch(args=Scripts.args(now_ms(), check, device_id, period))
    return text(status), text(value) if value else ""


def due_checks(client, now: int | None = None, limit: int = defaults.LOCK_WATCH_SWEEP_BATCH) -> list[tuple[str, str]]:
    """(check, device_id) pairs whose due time has passed (for the sweep)."""
    found = client.zrangebyscore(keys.LOCK_WATCH, 0, now or now_ms(), start=0, num=limit)
    pairs = []
    for raw in found:
        check, _, device_id = text(raw).partition(":")
        pairs.append((check, device_id))
    return pairs


def drop(client, check: str, device_id: str) -> None:
    """Forget a check that is switched off now."""
    client.zrem(keys.LOCK_WATCH, member(check, device_id))
