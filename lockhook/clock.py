"""Time as lockhook stores it (epoch milliseconds) and shows it (ISO 8601 UTC, millisecond precision)."""

from __future__ import annotations

import email.utils
import time
from datetime import UTC, datetime


def now_ms() -> int:
    """Epoch milliseconds: the unit of every time lockhook keeps in Redis."""
    return int(time.time() * 1000)


def iso(ms: str | int | None) -> str | None:
    """A stored epoch-ms value as the API shows it (`2026-01-02T03:04:05.678Z`); None when absent."""
    if ms in (None, ""):
        return None
    return datetime.fromtimestamp(int(ms) / 1000, tz=UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def seconds_until(value: str | None) -> float | None:
    """An HTTP delay (`Retry-After`: seconds or an HTTP date) in seconds; None when absent or unreadable."""
    value = (value or "").strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, (when.replace(tzinfo=when.tzinfo or UTC) - datetime.now(UTC)).total_seconds())
