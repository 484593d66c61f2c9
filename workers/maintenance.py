"""Worker housekeeping every 2 s: reclaim dead drains' inbox entries, restart stranded drains, sweep deadlines."""

from __future__ import annotations

import logging
import threading
import time

from lockhook import defaults, jobs, keys
from lockhook.processing.apply import Rules
from lockhook.streams import oldest_unread_ms, trim_finished
from workers.deadlines import sweep
from workers.drain import reclaim_inbox
from workers.lock_watch import sweep as sweep_lock_watch
from workers.reconcile import maybe_reconcile

log = logging.getLogger("lockhook.maintenance")

STALE_DRAIN_S = 10
"""A drain flag whose TTL was not refreshed for this long, while entries wait, belongs to a dead drain."""


def maintain(client, inbox_retention_s: int | None = None, rules: Rules = Rules()) -> dict:
    """One round of housekeeping; safe to run concurrently and repeatedly."""
    report = {"reclaimed": reclaim_inbox(client, rules), "expired": sweep(client)}
    report["forgotten"] = forget_expired(client, rules.device_retention_s)
    if inbox_retention_s is not None:  # raw bodies of processed deliveries, once past reprocess's reach
        cutoff = int(time.time() * 1000) - inbox_retention_s * 1000
        report["trimmed"] = trim_finished(client, keys.INBOX, keys.INBOX_GROUP, cutoff)
        report["trimmed"] += client.xtrim(keys.QUARANTINE, minid=f"{cutoff}-0", approximate=False)
    report["drain"] = _restart_stranded_drain(client)
    report["lock_watch"] = sweep_lock_watch(client)  # left-unlocked / auto-relock checks whose job was missed
    return report


def forget_expired(client, device_retention_s: int) -> int:
    """Trim the indexes whose members expire on their own: commands past COMMAND_TTL_S, silent devices."""
    now = int(time.time() * 1000)
    pipe = client.pipeline(transaction=False)
    pipe.zremrangebyscore(keys.COMMANDS, "-inf", now - defaults.COMMAND_TTL_S * 1000)
    pipe.zremrangebyscore(keys.DEVICES, "-inf", now - device_retention_s * 1000)
    return sum(pipe.execute())


def _restart_stranded_drain(client) -> str:
    """Entries stored while no drain runs (enqueue failed, Redis restarted, worker killed): start one.

    A running drain refreshes the flag's TTL every batch, so a flag not refreshed for STALE_DRAIN_S while
    entries wait was left by a drain that died: queue a new one (a spare drain job is harmless).
    """
    age_ms = oldest_unread_ms(client, keys.INBOX, keys.INBOX_GROUP)
    if age_ms is None:
        return ""
    if jobs.ensure_drain(client):
        return "queued"
    ttl = client.ttl(keys.DRAIN_FLAG)
    if age_ms > STALE_DRAIN_S * 1000 and 0 <= ttl < defaults.DRAIN_FLAG_TTL_S - STALE_DRAIN_S:
        client.set(keys.DRAIN_FLAG, "1", ex=defaults.DRAIN_FLAG_TTL_S)
        jobs.enqueue_drain(client)
        log.warning("inbox entries waited %d ms behind a stale drain flag; queued a new drain", age_ms)
        return "requeued"
    return ""


def mark_alive(client) -> None:
    """Tell the world (tests, operators) a worker's maintenance runs; expires a few rounds after it stops."""
    client.set(keys.MAINTENANCE_FLAG, "1", ex=int(defaults.MAINTENANCE_INTERVAL_S * 5) + 5)


def run_in_thread(settings, stop: threading.Event) -> threading.Thread:
    """Run `maintain` every MAINTENANCE_INTERVAL_S in a thread of the worker process.

    The RQ chain below needs RQ's scheduler, whose lock can stay with a dead process for a minute (and is
    retried only at RQ's maintenance interval); recovery after a worker death or a Redis restart must not.
    """
    from lockhook.redis_client import sync_client

    def loop() -> None:
        client = sync_client(settings, socket_timeout=10)
        while not stop.wait(defaults.MAINTENANCE_INTERVAL_S):
            try:
                mark_alive(client)
                maintain(client, settings.inbox_retention_s, Rules.from_settings(settings))
                maybe_reconcile(client, settings)
            except Exception as exc:  # Redis down or a bad entry: next round
                log.warning("maintenance round failed: %s", type(exc).__name__)

    thread = threading.Thread(target=loop, name="lockhook-maintenance", daemon=True)
    thread.start()
    return thread
