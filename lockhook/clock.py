"""Time as lockhook stores it (epoch milliseconds) and shows it (ISO 8601 UTC, millisecond precision)."""

from __future__ import annotations

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
