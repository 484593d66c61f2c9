"""Baseline (d): one RQ job per event on a SimpleWorker, doing the same apply as lockhook's drain."""

from __future__ import annotations

import json
import time

from rq import get_current_job

from lockhook.processing.apply import apply_entries


def process_delivery(endpoint: str, delivery_id: str, headers: dict, body: bytes,
                     received_at: int | None = None) -> None:
    """Apply one delivery: parse, normalize and run `apply_event` (a pipeline of one)."""
    fields = {"endpoint": endpoint, "delivery_id": delivery_id, "headers": json.dumps(headers),
              "body": body, "received_at": str(received_at or int(time.time() * 1000))}
    apply_entries(get_current_job().connection, [(b"0-0", fields)])
