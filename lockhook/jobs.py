"""The names of lockhook's RQ jobs and how each is queued, so the core and the web process never import `workers`."""

from __future__ import annotations

from datetime import UTC, datetime

from rq import Queue, Retry

from lockhook import defaults, keys

JOBS_MODULE = "workers.jobs"
"""Where every job function lives; named by string so the core and the web process never import it."""

DRAIN = f"{JOBS_MODULE}.drain_inbox"
EXPIRE = f"{JOBS_MODULE}.expire_command"
POLL_SEAM = f"{JOBS_MODULE}.poll_seam_command"


def events_queue(connection) -> Queue:
    return Queue(defaults.QUEUE_EVENTS, connection=connection)


def enqueue_drain(connection) -> None:
    """Queue a drain job (the caller holds the 'drain scheduled' flag)."""
    events_queue(connection).enqueue(DRAIN, job_timeout=300, result_ttl=0, failure_ttl=24 * 3600)


def ensure_drain(connection) -> bool:
    """Queue a drain job unless one is already scheduled; True when one was queued."""
    if connection.set(keys.DRAIN_FLAG, "1", nx=True, ex=defaults.DRAIN_FLAG_TTL_S):
        enqueue_drain(connection)
        return True
    return False


def schedule_expiry(connection, command_id: str, deadline_ms: int) -> None:
    """Time a command out at its deadline with RQ's scheduler (the maintenance sweep is the safety net)."""
    at = datetime.fromtimestamp(deadline_ms / 1000, tz=UTC)
    events_queue(connection).enqueue_at(at, EXPIRE, command_id, result_ttl=0, failure_ttl=24 * 3600,
                                        retry=Retry(max=3, interval=[1, 5, 30]))


CHECK_LOCK = f"{JOBS_MODULE}.check_unlocked_lock"
"""The lock-watch job: a door left unlocked, an auto-relock."""


def schedule_lock_check(connection, check: str, device_id: str, period: str, due_ms: int) -> None:
    """Fire a lock-watch check at its due time with RQ's scheduler (the maintenance sweep is the safety net)."""
    at = datetime.fromtimestamp(due_ms / 1000, tz=UTC)
    events_queue(connection).enqueue_at(at, CHECK_LOCK, check, device_id, period, result_ttl=0,
                                        failure_ttl=24 * 3600, retry=Retry(max=3, interval=[1, 5, 30]))


def schedule_seam_poll(connection, command_id: str, delay_s: float) -> None:
    """Poll Seam's action attempt after `delay_s` in case its webhook is late or lost.

    On the polls queue, which the worker serves after the events queue: drains and deadlines go first.
    """
    from datetime import timedelta

    queue = Queue(defaults.QUEUE_POLLS, connection=connection)
    queue.enqueue_in(timedelta(seconds=max(delay_s, 0)), POLL_SEAM, command_id, result_ttl=0,
                     failure_ttl=24 * 3600, retry=Retry(max=3, interval=[2, 5, 15]))
