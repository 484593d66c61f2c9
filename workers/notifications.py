"""Notifications for outcomes (placeholder until the notifications issue): one structured log line each."""

from __future__ import annotations

import logging

from lockhook.outcomes import Outcome, subscribe

log = logging.getLogger("lockhook.notifications")


@subscribe
def log_outcome(connection, outcome: Outcome) -> None:
    log.info("%s", outcome.type, extra={"outcome": outcome.type, "command_id": outcome.command_id,
                                        "device_id": outcome.device_id})
