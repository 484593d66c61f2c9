"""Deadlines: a pending command past `deadline_at` becomes `timed_out` (scheduled job + sweep)."""

from __future__ import annotations

import logging

from lockhook.commands.store import CommandStore

log = logging.getLogger("lockhook.deadlines")


def expire(client, command_id: str) -> str:
    """Time out one command at its deadline; a no-op when it already resolved."""
    outcome = CommandStore(client).expire(command_id)
    if outcome:
        log.info("command timed out", extra={"command_id": command_id, "outcome": outcome})
    return outcome


def sweep(client) -> int:
    """Expire every overdue command (catches deadlines missed while no scheduler ran)."""
    store = CommandStore(client)
    expired = 0
    for command_id in store.overdue():
        if store.expire(command_id):
            expired += 1
            log.info("command timed out (sweep)", extra={"command_id": command_id})
    return expired
