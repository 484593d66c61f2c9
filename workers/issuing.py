"""Polling Seam for commands whose webhook is late or lost (`action_attempts.get`).

Resolves through CommandStore.record_result, one Lua step that loses cleanly to a webhook that got
there first: the command resolves once whichever source wins. While the attempt is still pending the
job schedules itself again, until the command's deadline.
"""

from __future__ import annotations

import logging

from lockhook import jobs
from lockhook.clock import now_ms
from lockhook.commands.issuing import Refused, poll_seam
from lockhook.commands.store import CommandStatus, CommandStore, Via
from lockhook.settings import Settings, get_settings

log = logging.getLogger("lockhook.issuing")


def poll_seam_command(command_id: str, connection, settings: Settings | None = None) -> str:
    """Resolve a still-pending Seam command from its action attempt.

    Returns the outcome written, or "pending" (polled again later), "refused" or "noop".
    """
    client = connection
    store = CommandStore(client)
    command = store.get(command_id)
    if command is None or command.status != CommandStatus.PENDING or command.via != Via.SEAM:
        return "noop"
    if not command.action_attempt_id:
        return "noop"
    settings = settings or get_settings()
    try:
        attempt = poll_seam(settings, command.action_attempt_id)
    except Refused as exc:  # Seam no longer knows the attempt: leave it to the deadline
        log.warning("seam poll refused", extra={"command_id": command_id, "error_code": exc.error_code})
        return "refused"
    if attempt.status == "pending":
        remaining_s = (_deadline_ms(store, command_id) - now_ms()) / 1000
        if remaining_s > 0:
            jobs.schedule_seam_poll(client, command_id, min(max(settings.seam_poll_after_s, 1.0), remaining_s))
        return "pending"
    outcome = store.record_result(command_id, attempt.status == "succeeded", attempt.error_code,
                                  attempt.error_message, resolved_by="poll")
    if outcome:
        log.info("command resolved by polling Seam", extra={"command_id": command_id, "outcome": outcome})
    return outcome or "noop"


def _deadline_ms(store: CommandStore, command_id: str) -> int:
    from lockhook import keys

    raw = store.redis.hget(keys.command(command_id), "deadline_at")
    return int(raw) if raw else 0
