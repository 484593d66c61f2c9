"""Recover what the webhook never delivered: Seam's `events.list` since a watermark, put through the inbox.

Each listed event becomes an inbox delivery exactly like a webhook's (endpoint `seam`, the same drain, the
same per-event dedupe), under the delivery id `reconcile_<event_id>`: an event the webhook already brought
is a duplicate when applied and changes nothing; one reconciled before is a duplicate at the inbox; a
missed one is applied, correlated and notified as if delivered late, its entry marked
`lockhook-source: reconcile`.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from lockhook import defaults, jobs, keys
from lockhook.clock import iso
from lockhook.ingest.inbox import Delivery, put_sync
from lockhook.processing.locks import record_reading
from lockhook.redis_client import text

log = logging.getLogger("lockhook.reconcile")

SOURCE_HEADER = "lockhook-source"
"""Stored with each reconciled delivery, so processing knows how the event arrived."""


@dataclass
class ReconcileResult:
    since_ms: int
    locks_read: int = 0
    locks_corrected: int = 0
    listed: int = 0
    stored: int = 0
    duplicate: int = 0
    pages: int = 0
    complete: bool = True
    watermark_ms: int | None = None
    errors: list[str] = field(default_factory=list)


def _ms(value) -> int | None:
    if not isinstance(value, str):
        return None
    try:
        return int(datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp() * 1000)
    except ValueError:
        return None


def event_dict(event) -> dict:
    """The event as a webhook would carry it (the SDK's dataclass or, for types it does not know, its dict)."""
    if dataclasses.is_dataclass(event):  # not asdict(): its nested dicts are the SDK's own type
        raw = {f.name: getattr(event, f.name) for f in dataclasses.fields(event)}
    else:
        raw = dict(event)
    return json.loads(json.dumps({k: v for k, v in raw.items() if v is not None}, default=str))


def since_for_run(client, since_ms: int | None, now_ms: int) -> int:
    """`since_ms` when asked; else the watermark minus the overlap; else RECONCILE_FIRST_SINCE_S ago."""
    if since_ms is not None:
        return since_ms
    mark = client.get(keys.RECONCILE_WATERMARK)
    if mark:
        return int(mark) - defaults.RECONCILE_OVERLAP_S * 1000
    return now_ms - defaults.RECONCILE_FIRST_SINCE_S * 1000


def reconcile(client, seam, dedupe_ttl_s: int, since_ms: int | None = None,
              progress: Callable[[ReconcileResult], None] | None = None) -> ReconcileResult:
    """List Seam events from `since_ms` (or the watermark), page by page, and store every one in the inbox."""
    now_ms = int(time.time() * 1000)
    result = ReconcileResult(since_for_run(client, since_ms, now_ms))
    cursor = result.since_ms
    seen: set[str] = set()
    newest = None
    while True:
        if result.pages >= defaults.RECONCILE_MAX_PAGES:
            result.complete = False
            break
        page = [event_dict(e) for e in seam.events.list(since=iso(cursor), limit=defaults.RECONCILE_PAGE)]
        result.pages += 1
        fresh = [e for e in page if isinstance(e.get("event_id"), str) and e["event_id"] not in seen]
        for event in fresh:
            seen.add(event["event_id"])
        _store(client, fresh, dedupe_ttl_s, result)
        stamps = [s for s in (_ms(e.get("created_at")) for e in page) if s is not None]
        if stamps:
            newest = max(newest or 0, *stamps)
        if progress is not None:
            progress(result)
        if len(page) < defaults.RECONCILE_PAGE or not fresh or not stamps or max(stamps) <= cursor:
            break
        cursor = max(stamps)
    if newest is not None:
        _advance_watermark(client, newest)
        result.watermark_ms = newest
    return result


def _store(client, events: list[dict], dedupe_ttl_s: int, result: ReconcileResult) -> None:
    if not events:
        return
    deliveries = [Delivery("seam", f"reconcile_{e['event_id']}",
                           {SOURCE_HEADER: "reconcile", "content-type": "application/json"},
                           json.dumps(e, separators=(",", ":")).encode()) for e in events]
    stored, drain_due = put_sync(client, deliveries, dedupe_ttl_s)
    added = sum(stored)
    result.listed += len(events)
    result.stored += added
    result.duplicate += len(events) - added
    pipe = client.pipeline(transaction=False)
    if added:
        pipe.hincrby(keys.RECONCILE_STATS, "stored", added)
    if len(events) - added:
        pipe.hincrby(keys.RECONCILE_STATS, "duplicate", len(events) - added)
    pipe.execute()
    if drain_due:
        jobs.enqueue_drain(client)


def _advance_watermark(client, newest_ms: int) -> None:
    """The watermark only moves forward (a `--since` far back does not rewind the periodic runs)."""
    current = client.get(keys.RECONCILE_WATERMARK)
    if current is None or int(current) < newest_ms:
        client.set(keys.RECONCILE_WATERMARK, newest_ms)


def refresh_locks(client, seam, device_retention_s: int, result: ReconcileResult) -> None:
    """Seam's `locks.list`: the state of every lock lockhook has seen within the retention, corrected where
    events drifted (a lock that re-locked itself and never said so)."""
    now_ms = int(time.time() * 1000)
    known = {text(d) for d in client.zrangebyscore(keys.DEVICES, now_ms - device_retention_s * 1000, "+inf")}
    for lock in seam.locks.list():
        device_id = getattr(lock, "device_id", None)
        locked = getattr(getattr(lock, "properties", None), "locked", None)
        if device_id not in known or not isinstance(locked, bool):
            continue
        result.locks_read += 1
        if record_reading(client, device_id, locked, now_ms, device_retention_s) == "applied":
            result.locks_corrected += 1
