"""Notifications: each outcome becomes one RQ job per target (signed webhooks, callback_url, Slack) plus a log line.

The outbox subscriber enqueues the jobs and sets the outcome's guard in ONE Redis transaction (WATCH on the
guard), so a re-dispatched outcome, a duplicated processing job or a replayed event never creates a second
job, and a crash cannot leave the guard set without its jobs. Each job sends with httpx, records the result
and, for retryable failures, schedules the next attempt (deterministic job id) in the same transaction.
"""

from __future__ import annotations

import email.utils
import functools
import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime

import httpx
from redis.exceptions import WatchError
from rq.timeouts import JobTimeoutException

from lockhook import defaults, keys
from lockhook.errors import LockhookError
from lockhook.ingest.signatures import signature_headers
from lockhook.notifications.callback_policy import CallbackUrlUnresolvable, check_callback_url
from lockhook.notifications.payloads import (
    CALLBACK,
    SLACK,
    WEBHOOK,
    body,
    notification_id,
    outcome_data,
    slack_body,
    target_label,
)
from lockhook.notifications.store import (
    DELIVERED,
    FAILED,
    QUEUED,
    RETRYING,
    Notification,
    NotificationStore,
    enqueue_send,
    now_ms,
)
from lockhook.outcomes import COMMAND_OUTCOMES, LOCK_STATE_CHANGED, Outcome, subscribe
from lockhook.settings import Settings, get_settings

log = logging.getLogger("lockhook.notifications")

USER_AGENT = "lockhook-notifications/0.1"
RETRYABLE_STATUS = {408, 429}


# -- enqueueing (runs in whichever job dispatched the outbox) ----------------------------------------------


def _targets(settings: Settings, outcome: Outcome, data: dict) -> list[tuple[str, str | None]]:
    targets: list[tuple[str, str | None]] = [(WEBHOOK, url) for url in settings.notify_urls]
    if outcome.type in COMMAND_OUTCOMES and data.get("callback_url"):
        targets.append((CALLBACK, data["callback_url"]))
    if settings.slack_webhook_url:
        targets.append((SLACK, None))
    return targets


def enqueue_notifications(client, settings: Settings, outcome: Outcome) -> list[str]:
    """Create the outcome's notification records and jobs once; returns their ids ([] if already done)."""
    guard = keys.notification_guard(outcome.id)
    if client.exists(guard):
        return []
    data = outcome_data(client, outcome)
    records = []
    for kind, url in _targets(settings, outcome, data):
        nid = notification_id(outcome, f"{kind}:{url}" if url else kind)
        text = slack_body(outcome, data) if kind == SLACK else body(outcome, nid, data)
        records.append({"id": nid, "outcome": outcome.type, "outcome_id": outcome.id, "target": kind,
                        "label": target_label(kind, url), "url": url or "", "body": text, "status": QUEUED,
                        "attempts": 0, "round": 1, "command_id": outcome.command_id or "",
                        "device_id": outcome.device_id or data.get("device_id") or "", "created_at": now_ms()})
    if not records:  # only the log line: no jobs to tie to the guard
        if client.set(guard, "1", nx=True, ex=defaults.NOTIFY_GUARD_TTL_S):
            _log_outcome(outcome, data, [])
        return []
    with client.pipeline() as pipe:
        try:
            pipe.watch(guard)
            if pipe.exists(guard):
                return []
            pipe.multi()
            pipe.set(guard, "1", ex=defaults.NOTIFY_GUARD_TTL_S)
            for record in records:
                key = keys.notification(record["id"])
                pipe.hset(key, mapping=record)
                pipe.expire(key, defaults.NOTIFY_GUARD_TTL_S)
                enqueue_send(client, record["id"], 1, 1, pipeline=pipe, timeout_s=settings.notify_timeout_s)
            pipe.execute()
        except WatchError:
            return []  # dispatched concurrently elsewhere: that copy enqueued them
    _log_outcome(outcome, data, [r["label"] for r in records])
    return [r["id"] for r in records]


def _log_outcome(outcome: Outcome, data: dict, targets: list[str]) -> None:
    """The log sink: one structured line per outcome."""
    latency = None
    if data.get("resolved_at") and data.get("created_at"):
        parse = datetime.fromisoformat
        latency = int((parse(data["resolved_at"]) - parse(data["created_at"])).total_seconds() * 1000)
    status = data.get("status")
    if outcome.type == LOCK_STATE_CHANGED and data.get("locked") is not None:
        status = "locked" if data["locked"] else "unlocked"
    log.info("%s", outcome.type, extra={
        "outcome": outcome.type, "command_id": outcome.command_id, "device_id": data.get("device_id"),
        "status": status, "error_code": data.get("error_code"), "latency_ms": latency,
        "target": ",".join(targets) or None})


@subscribe
def notify_outcome(connection, outcome: Outcome) -> None:
    """Outbox subscriber: idempotent on the outcome id (the guard), so a second dispatch does nothing."""
    enqueue_notifications(connection, get_settings(), outcome)


# -- sending (RQ jobs on queue `notifications`) ------------------------------------------------------------


@dataclass
class Attempt:
    """How one send went: delivered, or an error that may be retried (after `retry_after_s` if given)."""

    delivered: bool
    error: str | None = None
    status_code: int | None = None
    retryable: bool = False
    retry_after_s: float | None = None


def retry_delays(settings: Settings) -> list[float]:
    if settings.notify_retry_delays_s:
        delays = [float(x) for x in settings.notify_retry_delays_s.replace(" ", ",").split(",") if x]
        if delays:
            return delays
    return [float(x) for x in defaults.NOTIFY_RETRY_DELAYS_S]


def parse_retry_after(value: str | None) -> float | None:
    """`Retry-After` as seconds or an HTTP date; None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def _request(record: Notification, settings: Settings) -> tuple[str, dict[str, str]] | Attempt:
    """The URL and headers for this attempt, or an Attempt describing why it cannot be made."""
    headers = {"content-type": "application/json", "user-agent": USER_AGENT}
    if record.target == SLACK:
        if not settings.slack_webhook_url:
            return Attempt(False, "slack_not_configured")
        return settings.slack_webhook_url.get_secret_value(), headers
    if not record.url:
        return Attempt(False, "no_url")
    if record.target == CALLBACK:
        try:
            check_callback_url(record.url, settings)
        except CallbackUrlUnresolvable:
            return Attempt(False, "callback_url_unresolvable", retryable=True)
        except LockhookError as exc:
            return Attempt(False, f"callback_url_refused: {exc.message}")
    if not settings.notify_webhook_secret:
        return Attempt(False, "notify_webhook_secret_missing")
    headers.update(signature_headers(settings.notify_webhook_secret.get_secret_value(), record.id,
                                     record.body.encode(), prefix="webhook"))
    return record.url, headers


@functools.lru_cache(maxsize=4)
def _http(timeout_s: float) -> httpx.Client:
    """One client per worker process: reuses connections and TLS setup (building an SSL context costs ~20 ms)."""
    return httpx.Client(timeout=timeout_s, follow_redirects=False,
                        limits=httpx.Limits(max_connections=20, max_keepalive_connections=10, keepalive_expiry=4))


def deliver(record: Notification, settings: Settings) -> Attempt:
    """One HTTP attempt. Retryable: timeouts, connection errors, 408, 429 and 5xx; other 4xx/3xx are final."""
    prepared = _request(record, settings)
    if isinstance(prepared, Attempt):
        return prepared
    url, headers = prepared
    try:
        response = _http(settings.notify_timeout_s).post(url, content=record.body.encode(), headers=headers)
    except (httpx.TimeoutException, JobTimeoutException):  # the latter: RQ's hard limit (a trickling target)
        return Attempt(False, "timeout", retryable=True)
    except httpx.TransportError as exc:
        return Attempt(False, f"connection_error: {type(exc).__name__}", retryable=True)
    code = response.status_code
    if 200 <= code < 300:
        return Attempt(True, status_code=code)
    retryable = code >= 500 or code in RETRYABLE_STATUS
    after = parse_retry_after(response.headers.get("retry-after")) if retryable else None
    return Attempt(False, f"http_{code}", status_code=code, retryable=retryable, retry_after_s=after)


def send(client, settings: Settings, nid: str, round_: int, attempt: int) -> str:
    """Run one attempt of one notification and record it; returns the resulting status (or 'stale')."""
    store = NotificationStore(client)
    record = store.begin_attempt(nid, round_, attempt, settings.notify_timeout_s)
    if record is None:
        return "stale"
    started = time.monotonic()
    result = deliver(record, settings)
    elapsed_ms = int((time.monotonic() - started) * 1000)
    extra = {"outcome": record.outcome, "command_id": record.command_id, "device_id": record.device_id,
             "target": record.label, "attempt": attempt, "latency_ms": elapsed_ms}
    if result.delivered:
        store.finish(record, DELIVERED, status_code=result.status_code)
        log.info("notification delivered", extra={**extra, "status": DELIVERED})
        return DELIVERED
    if result.retryable and attempt < settings.notify_max_attempts:
        delays = retry_delays(settings)
        delay = delays[min(attempt - 1, len(delays) - 1)]
        if result.retry_after_s is not None:
            delay = min(result.retry_after_s, defaults.NOTIFY_RETRY_AFTER_MAX_S)
        store.finish(record, RETRYING, error=result.error, status_code=result.status_code, retry_in_s=delay,
                     timeout_s=settings.notify_timeout_s)
        log.warning("notification attempt failed (%s); retrying in %.1f s", result.error, delay,
                    extra={**extra, "status": RETRYING, "error_code": result.error})
        return RETRYING
    store.finish(record, FAILED, error=result.error, status_code=result.status_code)
    log.error("notification failed (%s) after %d attempt(s)", result.error, attempt,
              extra={**extra, "status": FAILED, "error_code": result.error})
    return FAILED


def resume_overdue(client, settings: Settings | None = None) -> int:
    """Maintenance hook: re-queue notification attempts whose job was lost (e.g. a worker killed mid-send)."""
    settings = settings or get_settings()
    resumed = NotificationStore(client).resume_overdue(settings.notify_timeout_s)
    if resumed:
        log.warning("re-queued %d notification attempt(s) whose job was lost", len(resumed))
    return len(resumed)
