"""Lock watch in the worker: fire due checks (job + sweep) and issue auto-relock commands through the device's issuer.

An auto-relock is an ordinary command (listed, confirmed, timed out, notified) with
`metadata.reason = "auto_relock"`, reserved before the issuer is called like POST /commands does, and
idempotent per unlocked period (its Idempotency-Key names the unlocking event).
"""

from __future__ import annotations

import hashlib
import json
import logging

from lockhook import defaults, jobs, keys
from lockhook.clock import now_ms
from lockhook.commands import issuing
from lockhook.commands.store import Command, CommandStore, Via
from lockhook.errors import LockhookError
from lockhook.processing.lock_watch import CHECKS, LockWatch, drop, due_checks, fire, member
from lockhook.processing.locks import record_reading
from lockhook.redis_client import text
from lockhook.settings import Settings, get_settings

log = logging.getLogger("lockhook.lock_watch")

AUTO_RELOCK_REASON = "auto_relock"


def record_anomaly(client, entry: dict) -> None:
    """The anomalies log the processing scripts write, for what a worker finds (same shape, same cap)."""
    entry["at"] = str(now_ms())
    pipe = client.pipeline(transaction=False)
    pipe.lpush(keys.ANOMALIES, json.dumps(entry))
    pipe.ltrim(keys.ANOMALIES, 0, defaults.RECENT_CAP - 1)
    pipe.execute()


def check_lock(client, settings: Settings, check: str, device_id: str, period: str = "") -> str:
    """Fire one check (from its scheduled job, or the sweep with period ""); returns what happened."""
    if check not in CHECKS:
        return "noop"
    if not LockWatch.from_settings(settings).enabled(check):
        drop(client, check, device_id)
        return "off"
    if seam_says_locked(client, settings, check, device_id):
        return "seam_says_locked"
    status, value = fire(client, check, device_id, period)
    if status == "early":  # the scheduler ran ahead of our clock: try again at the due time
        jobs.schedule_lock_check(client, check, device_id, period, int(value))
    elif status == "fired":
        log.warning("lock left unlocked", extra={"device_id": device_id, "outcome": "lock.left_unlocked"})
    elif status == "no_issuer":
        log.warning("auto-relock skipped: no issuer has confirmed a command for this lock",
                    extra={"device_id": device_id})
    elif status == "relock":
        return auto_relock(client, settings, device_id, value, period)
    return status


def seam_says_locked(client, settings: Settings, check: str, device_id: str) -> bool:
    """Ask Seam before an alarm or a relock of a Seam lock: locks that re-lock themselves often send no
    `lock.locked`. If Seam says locked, the stored state is corrected (source `seam_api`), which makes the
    check a no-op; if Seam does not know the lock or does not answer in time, the events decide."""
    due = client.zscore(keys.LOCK_WATCH, member(check, device_id))
    if settings.seam_api_key is None or due is None or due > now_ms():
        return False
    endpoint, issuer, locked = (text(v) if v is not None else None for v in
                                client.hmget(keys.lock_state(device_id), "endpoint", "issuer", "locked"))
    if locked != "0" or "seam" not in (endpoint, issuer):
        return False
    read_at = now_ms()
    if issuing.seam_lock_locked(settings, device_id) is not True:
        return False
    result = record_reading(client, device_id, True, read_at, settings.device_retention_s)
    log.info("Seam says the lock is locked: no %s (state %s)", check, result, extra={"device_id": device_id})
    return True


def sweep(client, settings: Settings | None = None) -> int:
    """Fire every check whose due time passed (catches jobs lost while no scheduler ran)."""
    settings = settings or get_settings()
    fired = 0
    for check, device_id in due_checks(client):
        if check_lock(client, settings, check, device_id) in ("fired", "relock_issued", "no_issuer"):
            fired += 1
    return fired


def _idempotency_key(device_id: str, period: str) -> str:
    """One auto-relock per unlocked period: the key names the device and the unlocking event (hashed: any length)."""
    return "auto_relock_" + hashlib.sha256(f"{device_id}|{period}".encode()).hexdigest()[:40]


def _issuer_ready(settings: Settings, via: Via) -> bool:
    return settings.seam_api_key is not None if via == Via.SEAM else bool(settings.device_cloud_url)


def auto_relock(client, settings: Settings, device_id: str, issuer: str, period: str) -> str:
    """Reserve and issue a `lock` command through `issuer`; 'relock_issued' or why not."""
    try:
        via = Via(issuer)
    except ValueError:
        via = None
    if via not in (Via.SEAM, Via.DEVICE_CLOUD) or not _issuer_ready(settings, via):
        record_anomaly(client, {"kind": "auto_relock_issuer_not_configured", "device_id": device_id,
                                "issuer": issuer, "event": period})
        log.error("auto-relock skipped: issuer %s is not configured", issuer, extra={"device_id": device_id})
        return "issuer_not_configured"
    store = CommandStore(client)
    custom_id = issuing.new_custom_id() if via == Via.DEVICE_CLOUD else None
    command, created = store.register(device_id, "lock", via.value, custom_id=custom_id,
                                      timeout_s=defaults.AUTO_RELOCK_TIMEOUT_S,
                                      metadata={"reason": AUTO_RELOCK_REASON, "unlocked_event": period},
                                      idempotency_key=_idempotency_key(device_id, period))
    if not created:
        return "existing"
    issue(client, settings, store, command)
    log.info("auto-relock issued", extra={"command_id": command.command_id, "device_id": device_id})
    return "relock_issued"


def issue(client, settings: Settings, store: CommandStore, command: Command) -> Command | None:
    """Call the issuer for a reserved command, as POST /commands does; a worker has nobody to answer 502 to,
    so an issuer that cannot be reached rejects the command (`upstream_error`), which notifies."""
    cid = command.command_id
    try:
        if command.via == Via.SEAM:
            issued = issuing.issue_seam(settings, command.device_id, command.action.value)
        else:
            issued = issuing.issue_device_cloud(settings, command.device_id, command.action.value, command.custom_id)
    except issuing.Refused as exc:
        store.reject(cid, exc.error_code, exc.message)
        return store.get(cid)
    except LockhookError as exc:
        log.error("auto-relock could not be issued: %s", exc.code, extra={"command_id": cid})
        store.reject(cid, exc.code, exc.message)
        return store.get(cid)
    store.attach_ids(cid, action_id=issued.action_id, action_attempt_id=issued.action_attempt_id)
    if issued.status != "pending":
        store.record_result(cid, issued.status == "succeeded", issued.error_code, issued.error_message,
                            resolved_by="issuer", resolved_via="issuer")
    elif command.via == Via.SEAM:
        jobs.schedule_seam_poll(client, cid, settings.seam_poll_after_s)
    return store.get(cid)
