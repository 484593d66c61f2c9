"""Turn stored deliveries into applied events: parse, normalize, and run `apply_event` once per event."""

from __future__ import annotations

import json
import logging
import time

from lockhook.processing.events import NormalizedEvent, normalize, parse_event
from lockhook.redis_client import text_hash
from lockhook.scripts import Scripts

log = logging.getLogger("lockhook.processing")


def prepare(fields: dict) -> tuple[NormalizedEvent | None, str | None]:
    """The normalized event for one inbox entry, or (None, reason) when it cannot be an event."""
    f = text_hash(fields)
    received = int(f.get("received_at") or time.time() * 1000)
    try:
        data = json.loads(f["body"])
    except (ValueError, RecursionError, KeyError):
        return None, "body is not JSON"
    if not isinstance(data, dict) or not isinstance(data.get("event_type"), str):
        return None, "no event_type"
    event, problem = parse_event(data)
    return normalize(event, f.get("endpoint", "seam"), f.get("delivery_id", ""), received, problem), problem


def apply_entries(client, entries: list[tuple[bytes, dict]]) -> list[bytes]:
    """Apply a batch of inbox entries in one pipeline; returns the stream ids that are finished."""
    scripts = Scripts(client)
    pipe = client.pipeline(transaction=False)
    now = int(time.time() * 1000)
    done: list[bytes] = []
    applied: list[tuple[bytes, NormalizedEvent]] = []
    for stream_id, fields in entries:
        try:
            n, problem = prepare(fields)
            payload = n.payload() if n is not None else ""
        except Exception as exc:  # one malformed entry must not block its batch forever (it stays in the stream)
            n, problem = None, f"cannot be prepared ({type(exc).__name__})"
        if n is None:
            log.warning("inbox entry skipped: %s", problem, extra={"delivery_id": text_hash(fields).get("delivery_id")})
            done.append(stream_id)
            continue
        if problem:
            log.warning("event kept as generic: %s", problem, extra={"event_id": n.key, "event_type": n.type})
        scripts.apply_event(args=Scripts.args(now, payload), client=pipe)
        applied.append((stream_id, n))
    if applied:
        results = pipe.execute(raise_on_error=False)
        for (stream_id, n), result in zip(applied, results, strict=True):
            if isinstance(result, Exception):
                log.error("event failed to apply: %s", result, extra={"event_id": n.key})
                continue
            done.append(stream_id)
            _log_result(n, json.loads(result))
    return done


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
    log.info("event applied", extra=extra)
