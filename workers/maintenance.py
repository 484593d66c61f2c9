"""The self-rescheduling maintenance job: reclaim, drain leftovers, sweep deadlines, dispatch outcomes."""

from __future__ import annotations

import logging

from rq import get_current_job

from lockhook import defaults, jobs, keys
from workers.deadlines import sweep
from workers.drain import consumer_name, reclaim_inbox
from workers.outbox import dispatch_outbox, reclaim_outbox

log = logging.getLogger("lockhook.maintenance")


def maintain(client) -> dict:
    """One round of housekeeping; safe to run concurrently and repeatedly."""
    consumer = consumer_name()
    report = {"reclaimed": reclaim_inbox(client), "expired": sweep(client)}
    report["dispatched"] = reclaim_outbox(client, consumer) + dispatch_outbox(client, consumer)
    # entries stored while no drain was scheduled (e.g. the enqueue failed): start one
    try:
        groups = {g["name"].decode() if isinstance(g["name"], bytes) else g["name"]: g
                  for g in client.xinfo_groups(keys.INBOX)}
        lag = (groups.get(keys.INBOX_GROUP) or {}).get("lag")
    except Exception:
        lag = None
    if lag:
        jobs.ensure_drain(client)
    return report


def run_maintenance() -> dict:
    """RQ entry point: one round, then schedule the next."""
    client = get_current_job().connection
    try:
        return maintain(client)
    finally:
        jobs.schedule_maintenance(client, defaults.MAINTENANCE_INTERVAL_S)
