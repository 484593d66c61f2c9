"""Every RQ job lockhook queues, in one module: `lockhook.jobs` names each of them by its dotted path here."""

from __future__ import annotations

from rq import get_current_job

from lockhook.settings import get_settings


def _connection():
    return get_current_job().connection


def drain_inbox() -> int:
    """Queued by the receiver when the inbox had no drain scheduled."""
    from lockhook.processing.apply import Rules
    from workers.drain import drain

    return drain(_connection(), rules=Rules.from_settings(get_settings()))


def expire_command(command_id: str) -> str:
    """Scheduled at a command's deadline (enqueue_at); a no-op when it already resolved."""
    from workers.deadlines import expire

    return expire(_connection(), command_id)


def check_unlocked_lock(check: str, device_id: str, period: str) -> str:
    """Scheduled when a lock unlocked: a door left unlocked (`lock.left_unlocked`) or an auto-relock command."""
    from workers.lock_watch import check_lock

    return check_lock(_connection(), get_settings(), check, device_id, period)


def poll_seam_command(command_id: str) -> str:
    """Scheduled after SEAM_POLL_AFTER_S for a Seam command still pending."""
    from workers.issuing import poll_seam_command as poll

    return poll(command_id, connection=_connection(), settings=get_settings())
