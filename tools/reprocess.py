"""Re-run stored deliveries (the lh:inbox stream) through processing again, past the event dedupe.

For use after a bug fix: each event's `processed` mark is removed and the entry applied again by
lockhook.processing.apply.apply_entries. Commands already resolved stay resolved and notify nothing (the
resolve script is a no-op for them), and lock.state_changed fires only on a real change of state.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from lockhook import keys
from lockhook.errors import ConfigError

BATCH = 200
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)$")
_UNIT_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}


def parse_since(value: str, now_ms: int | None = None) -> int:
    """A start time in ms: a duration ago (`90s`, `15m`, `2h`, `1d`), ISO 8601, epoch s/ms, or a stream id."""
    now = int(time.time() * 1000) if now_ms is None else now_ms
    text = value.strip()
    match = _DURATION.match(text)
    if match:
        return now - int(float(match.group(1)) * _UNIT_MS[match.group(2)])
    stream_id = re.match(r"^(\d+)-\d+$", text)
    if stream_id:
        return int(stream_id.group(1))
    if text.isdigit():
        number = int(text)
        return number if number > 10_000_000_000 else number * 1000
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise ConfigError(f"--since {value!r}: use a duration (15m, 2h, 1d), ISO 8601 time or epoch") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


@dataclass
class ReprocessReport:
    read: int = 0
    applied: int = 0
    skipped: int = 0  # entries that are not events (no JSON / no event_type)


def reprocess(client, since_ms: int, until_ms: int | None = None, endpoint: str | None = None,
              batch: int = BATCH) -> ReprocessReport:
    """Apply every inbox entry received in [since, until] again, in stream order."""
    from lockhook.processing.apply import apply_entries, prepare

    report = ReprocessReport()
    start = f"{since_ms}-0"
    end = f"{until_ms}-18446744073709551615" if until_ms is not None else "+"
    while True:
        entries = client.xrange(keys.INBOX, min=start, max=end, count=batch)
        if not entries:
            break
        chosen = []
        for stream_id, fields in entries:
            if endpoint and _text(fields.get(b"endpoint", fields.get("endpoint"))) != endpoint:
                continue
            event, _ = prepare(fields)
            if event is None:
                report.skipped += 1
                continue
            chosen.append((stream_id, fields, keys.processed(event.endpoint, event.key)))
        report.read += len(entries)
        if chosen:
            client.delete(*{mark for _, _, mark in chosen})
            done = apply_entries(client, [(sid, f) for sid, f, _ in chosen])
            report.applied += len(done)
        last = _text(entries[-1][0])
        ms, seq = last.split("-")
        start = f"{ms}-{int(seq) + 1}"
        if len(entries) < batch:
            break
    return report


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else (value or "")
