"""Issuing lock/unlock commands: Seam through its SDK, device clouds over HTTP (`POST /locks/{id}/actions`).

Both clients are synchronous (web handlers call them in a thread) and bounded in time. Every outcome
is one of three: accepted (ids to attach), `Refused` (the remote said no: the command is rejected),
or `UpstreamError` (we could not tell: the caller discards the reserved command and answers 502).

Outgoing limits: a Seam call times out after SEAM_TIMEOUT_S and is never retried (lock_door is not
idempotent); a device-cloud call times out after DEVICE_CLOUD_TIMEOUT_S and is tried
DEVICE_CLOUD_ATTEMPTS times in all, always with the same custom_id so the cloud can deduplicate it.
"""

from __future__ import annotations

import logging
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx

from lockhook import defaults
from lockhook.commands.store import scrub
from lockhook.errors import LockhookError, UpstreamError, ValidationFailed
from lockhook.ids import ID_PATTERN, is_id
from lockhook.settings import Settings

log = logging.getLogger("lockhook.issuing")

SEAM_TIMEOUT_S = 10.0
"""Each Seam API call gives up after this many seconds."""

DEVICE_CLOUD_RETRY_BACKOFF_S = 0.25
"""Pause before the next device-cloud attempt (doubled each time)."""

_RETRY_STATUSES = {429, 500, 502, 503, 504}


class Refused(LockhookError):
    """The Seam API or the device cloud refused the command synchronously (it becomes `rejected`)."""

    status_code = 409
    code = "command_refused"

    def __init__(self, error_code: str, message: str = ""):
        error_code, message = scrub(error_code), scrub(message)  # stored and echoed: must encode as UTF-8
        super().__init__(message or error_code)
        self.error_code = error_code


class IssuerNotConfigured(ValidationFailed):
    """`via` names an issuer whose settings are missing (422 with a field error on `via`)."""

    def __init__(self, via: str, setting: str):
        reason = f"via {via!r} needs {setting} to be set"
        super().__init__(reason, errors=[{"loc": ["body", "via"], "msg": reason, "type": "issuer_not_configured"}])


@dataclass(frozen=True, slots=True)
class Issued:
    """What the remote answered for an accepted command."""

    action_attempt_id: str | None = None
    action_id: str | None = None
    custom_id: str | None = None
    status: str = "pending"  # pending | succeeded | failed (Seam may answer with a finished attempt)
    error_code: str | None = None
    error_message: str | None = None


def _secret(value) -> str:
    return value.get_secret_value() if hasattr(value, "get_secret_value") else str(value)


def new_custom_id() -> str:
    """A custom_id for device-cloud commands that had none, so the completion event always matches."""
    return "lh_" + uuid.uuid4().hex


# -- Seam ------------------------------------------------------------------------------------------

def seam_client(settings: Settings, timeout_s: float = SEAM_TIMEOUT_S):
    """The official SDK client; raises IssuerNotConfigured without SEAM_API_KEY."""
    if settings.seam_api_key is None:
        raise IssuerNotConfigured("seam", "SEAM_API_KEY")
    from seam import Seam

    options: dict[str, Any] = {"api_key": _secret(settings.seam_api_key), "timeout": timeout_s,
                               "wait_for_action_attempt": False}
    if settings.seam_endpoint:
        options["endpoint"] = settings.seam_endpoint
    try:
        return Seam(**options)
    except Exception as exc:  # e.g. SeamInvalidTokenError: a key that is not a Seam key
        log.error("cannot build the Seam client: %s", type(exc).__name__)
        raise IssuerNotConfigured("seam", "a valid SEAM_API_KEY") from None


@contextmanager
def _seam(settings: Settings, client):
    """The given client, or a new one that is closed afterwards (each holds an httpx connection pool)."""
    if client is not None:
        yield client
        return
    own = seam_client(settings)
    try:
        yield own
    finally:
        own.client.close()


def _attempt_status(attempt) -> tuple[str, str | None, str | None]:
    """(pending|succeeded|failed, error_code, error_message) of an SDK ActionAttempt."""
    status = getattr(attempt, "status", None)
    if status == "success":
        return "succeeded", None, None
    if status == "error":
        error = getattr(attempt, "error", None)
        code = getattr(error, "type", None) or "action_attempt_failed"
        return "failed", scrub(str(code)), scrub(str(getattr(error, "message", None) or "")) or None
    return "pending", None, None


def _seam_failure(exc: Exception, what: str) -> LockhookError:
    """Map an SDK/transport exception: an API error body is a refusal, anything else is unknown."""
    from seam.exceptions import SeamHttpApiError

    if isinstance(exc, SeamHttpApiError) and exc.status_code < 500:
        return Refused(str(exc.code or "seam_error"), str(exc) or "")
    log.warning("seam %s failed: %s", what, type(exc).__name__)
    return UpstreamError(f"Seam API unreachable or failing ({type(exc).__name__})")


def issue_seam(settings: Settings, device_id: str, action: str, client=None) -> Issued:
    """`locks.lock_door` / `unlock_door` without waiting; the action attempt id is what confirms it later."""
    with _seam(settings, client) as seam:
        call = seam.locks.lock_door if action == "lock" else seam.locks.unlock_door
        try:
            attempt = call(device_id=device_id, wait_for_action_attempt=False)
        except Exception as exc:  # SDK errors, httpx transport errors, invalid responses
            raise _seam_failure(exc, action) from None
    attempt_id = getattr(attempt, "action_attempt_id", None)
    if not attempt_id:
        raise UpstreamError("Seam answered without an action_attempt_id")
    status, code, message = _attempt_status(attempt)
    return Issued(action_attempt_id=str(attempt_id), status=status, error_code=code, error_message=message)


def seam_lock_locked(settings: Settings, device_id: str) -> bool | None:
    """`locks.get`'s `properties.locked` within SEAM_READ_TIMEOUT_S; None when Seam does not know the lock,
    cannot be reached in time, or does not say (the events then decide)."""
    seam = seam_client(settings, timeout_s=defaults.SEAM_READ_TIMEOUT_S)
    try:
        locked = getattr(getattr(seam.locks.get(device_id=device_id), "properties", None), "locked", None)
    except Exception as exc:  # unknown device (404), Seam down or slow: not a reason to stay silent
        log.info("seam locks.get gave no answer (%s)", type(exc).__name__, extra={"device_id": device_id})
        return None
    finally:
        seam.client.close()
    return locked if isinstance(locked, bool) else None


def poll_seam(settings: Settings, action_attempt_id: str, client=None) -> Issued:
    """`action_attempts.get`: the attempt's current status (Refused when Seam does not know it)."""
    with _seam(settings, client) as seam:
        try:
            attempt = seam.action_attempts.get(action_attempt_id=action_attempt_id, wait_for_action_attempt=False)
        except Exception as exc:
            raise _seam_failure(exc, "action_attempts.get") from None
    status, code, message = _attempt_status(attempt)
    return Issued(action_attempt_id=action_attempt_id, status=status, error_code=code, error_message=message)


# -- device cloud ----------------------------------------------------------------------------------

def _json(response: httpx.Response) -> dict:
    try:
        data = response.json()
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def _action_id(data: dict) -> str | None:
    """The cloud's action id when it is a usable id; otherwise the custom_id alone correlates the command."""
    value = data.get("action_id")
    if value in (None, ""):
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if is_id(value):
        return value
    log.warning("the device cloud answered an action_id outside %s; correlating by custom_id only", ID_PATTERN)
    return None


def action_url(base_url: str, device_id: str) -> str:
    """`{base}/locks/{device_id}/actions`; the id is checked first (`..` would be normalised away by
    httpx into another route) and percent-encoded as a path segment."""
    if not is_id(device_id):
        raise ValidationFailed("device_id is not a valid id", errors=[
            {"loc": ["body", "device_id"], "msg": f"must match {ID_PATTERN}", "type": "string_pattern_mismatch"}])
    return f"{base_url.rstrip('/')}/locks/{quote(device_id, safe='')}/actions"


def issue_device_cloud(settings: Settings, device_id: str, action: str, custom_id: str,
                       transport: httpx.BaseTransport | None = None) -> Issued:
    """POST {DEVICE_CLOUD_URL}/locks/{device_id}/actions {action, custom_id}, bounded retries."""
    if not settings.device_cloud_url:
        raise IssuerNotConfigured("device_cloud", "DEVICE_CLOUD_URL")
    url = action_url(settings.device_cloud_url, device_id)
    headers = {"content-type": "application/json", "user-agent": "lockhook"}
    if settings.device_cloud_api_key is not None:
        headers["authorization"] = "Bearer " + _secret(settings.device_cloud_api_key)
    attempts = settings.device_cloud_attempts
    backoff = DEVICE_CLOUD_RETRY_BACKOFF_S
    last = "no attempt"
    with httpx.Client(timeout=settings.device_cloud_timeout_s, transport=transport, follow_redirects=False) as http:
        for attempt in range(1, attempts + 1):
            try:
                response = http.post(url, json={"action": action, "custom_id": custom_id}, headers=headers)
            except httpx.HTTPError as exc:
                last = type(exc).__name__
            else:
                data = _json(response)
                if data.get("error_code"):
                    raise Refused(str(data["error_code"]), str(data.get("message") or ""))
                if response.is_success:
                    return Issued(action_id=_action_id(data), custom_id=custom_id)
                if response.status_code not in _RETRY_STATUSES:
                    raise Refused(f"http_{response.status_code}", "the device cloud refused the command")
                last = f"HTTP {response.status_code}"
            if attempt < attempts:
                log.info("device cloud attempt %d failed (%s); retrying", attempt, last)
                time.sleep(backoff)
                backoff *= 2
    log.warning("device cloud unreachable after %d attempts: %s", attempts, last)
    raise UpstreamError(f"device cloud unreachable after {attempts} attempts ({last})")
