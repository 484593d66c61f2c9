"""Turn stored deliveries into applied events: parse, normalize, and run `apply_event` once per event."""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import dataclass

from lockhook import defaults, keys
from lockhook.ingest.bodies import parse_event_body
from lockhook.ingest.reconcile import SOURCE_HEADER
from lockhook.processing.events import SOURCE_RECONCILE, SOURCE_WEBHOOK, NormalizedEvent, normalize, parse_event
from lockhook.processing.lock_watch import LockWatch, schedule_checks
from lockhook.redis_client import text_hash
from lockhook.scripts import Scripts

log = logging.getLogger("lockhook.processing")

def prepare(fields: dict) -> tuple[NormalizedEvent | None, str | None]:
    """The normalized event for one inbox entry, or (None, reason) when it cannot be an event."""
    f = text_hash(fields)
    received = int(f.get("received_at") or time.time() * 1000)
    raw = fields.get(b"body", fields.get("body"))
    body = raw.encode() if isinstance(raw, str) else raw
    data = parse_event_body(body) if body is not None else None
    if data is None:
        return None, "not an event (not a JSON object with a string event_type)"
    event, problem = parse_event(data)
    # a reconciled event is Seam's JSON re-serialised: its bytes differ from the webhook's, its content not
    source = _source(f)
    digest = None if source == SOURCE_RECONCILE else hashlib.sha256(body).hexdigest()[:24]
    n = normalize(event, f.get("endpoint", "seam"), f.get("delivery_id", ""), received, problem, digest,
                  source=source)
    return n, problem


def _source(fields: dict) -> str:
    """`reconcile` for an entry whose stored headers say `lockhook-source: reconcile`, else `webhook`."""
    try:
        headers = json.loads(fields.get("headers") or "{}")
    except ValueError:
        return SOURCE_WEBHOOK
    if not isinstance(headers, dict):
        return SOURCE_WEBHOOK
    value = next((v for k, v in headers.items() if str(k).lower() == SOURCE_HEADER), None)
    return SOURCE_RECONCILE if value == SOURCE_RECONCILE else SOURCE_WEBHOOK


@dataclass(frozen=True)
class Rules:
    """What the operator configured about applying events (from Settings), handed to the script with each."""

    device_retention_s: int = defaults.DEVICE_RETENTION_S
    access_denied_alert_count: int = defaults.ACCESS_DENIED_ALERT_COUNT
    watch: LockWatch = LockWatch()
    """LEFT_UNLOCKED_AFTER_S / AUTO_RELOCK_AFTER_S: the checks an unlock sets (off unless configured)."""

    @classmethod
    def from_settings(cls, settings) -> Rules:
        return cls(settings.device_retention_s, settings.access_denied_alert_count, LockWatch.from_settings(settings))


def apply_entries(client, entries: list[tuple[bytes, dict]], rules: Rules = Rules()) -> list[bytes]:
    """Apply a batch of inbox entries in one pipeline; returns the stream ids that are finished.

    An entry that is not an event goes to the quarantine stream; one that cannot be prepared, or whose
    script fails INBOX_MAX_FAILURES times, goes to the dead-letter stream. Either way it is finished:
    one bad entry never holds the inbox.
    """
    scripts = Scripts(client)
    pipe = client.pipeline(transaction=False)
    now = int(time.time() * 1000)
    done: list[bytes] = []
    applied: list[tuple[bytes, dict, NormalizedEvent]] = []
    for stream_id, fields in entries:
        try:
            n, problem = prepare(fields)
            payload = n.payload() if n is not None else ""
        except Exception as exc:  # a bug or an input nobody foresaw: kept, listed, re-processable
            dead_letter(client, stream_id, fields, f"cannot be prepared ({type(exc).__name__})")
            done.append(stream_id)
            continue
        if n is None:
            log.warning("inbox entry quarantined: %s", problem,
                        extra={"delivery_id": text_hash(fields).get("delivery_id")})
            client.xadd(keys.QUARANTINE, {**fields, b"reason": problem})
            done.append(stream_id)
            continue
        if problem:
            log.warning("event kept as generic: %s", problem, extra={"event_id": n.key, "event_type": n.type})
        scripts.apply_event(args=Scripts.args(now, payload, rules.device_retention_s,
                                              rules.access_denied_alert_count, *rules.watch.script_args()),
                            client=pipe)
        applied.append((stream_id, fields, n))
    if applied:
        results = pipe.execute(raise_on_error=False)
        for (stream_id, fields, n), result in zip(applied, results, strict=True):
            if isinstance(result, Exception):
                log.error("event failed to apply: %s", type(result).__name__, extra={"event_id": n.key})
                if _count_failure(client, stream_id) >= defaults.INBOX_MAX_FAILURES:
                    dead_letter(client, stream_id, fields, f"failed {defaults.INBOX_MAX_FAILURES} times "
                                                           f"({type(result).__name__})")
                    done.append(stream_id)
                continue  # left pending: tried again when reclaimed
            done.append(stream_id)
            outcome = json.loads(result)
            _log_result(n, outcome)
            schedule_checks(client, outcome, n.key)
    return done


def _count_failure(client, stream_id) -> int:
    pipe = client.pipeline(transaction=False)
    pipe.hincrby(keys.INBOX_FAILURES, stream_id, 1)
    pipe.expire(keys.INBOX_FAILURES, defaults.INBOX_FAILURES_TTL_S)
    return pipe.execute()[0]


def dead_letter(client, stream_id, fields: dict, reason: str) -> None:
    """Move an inbox entry to the dead-letter stream (the caller acknowledges it in the inbox)."""
    log.error("inbox entry moved to the dead-letter stream: %s", reason,
              extra={"delivery_id": text_hash(fields).get("delivery_id")})
    pipe = client.pipeline(transaction=False)
    pipe.xadd(keys.INBOX_DEAD, {**fields, b"reason": reason, b"inbox_id": stream_id,
                                b"dead_at": str(int(time.time() * 1000))})
    pipe.hdel(keys.INBOX_FAILURES, stream_id)
    pipe.execute()


def _log_result(n: NormalizedEvent, result: dict) -> None:
    extra = {"event_id": n.key, "event_type": n.type, "device_id": n.device_id,
             "delivery_id": n.summary.delivery_id, "command_id": result.get("command_id"),
             "outcome": result.get("outcome")}
    if result.get("status") == "duplicate":
        log.info("event already processed", extra=extra)
        return
    if result.get("anomaly"):
        log.warning("anomaly: %s", result["anomaly"].get("kind"), extra=extra)
    if result.get("parked"):
        log.info("event parked until its command registers", extra=extra)
    if result.get("unlocked_without_command"):
        log.warning("unlock without a command", extra=extra)
    log.info("event applied", extra=extra)
