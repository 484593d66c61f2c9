"""What the per-device event log keeps of an event: its own fields (who, how) beside lockhook's summary, capped.

Attribution (`method`, `performed_via`, `access_code_id`, `user_identity_id`, `acs_*`) is why the log
exists: who opened the door. Any other field the sender added is kept too, as long as the entry stays under
`defaults.EVENT_LOG_ENTRY_MAX_BYTES`; past that the longest extra fields go first, attribution last, and
`dropped_fields` names what went.
"""

from __future__ import annotations

import json
from typing import Any

from lockhook import defaults

ATTRIBUTION = ("method", "performed_via", "access_code_id", "user_identity_id", "event_id")
"""Fields kept before any other (with every `acs_*` field)."""

RESERVED = frozenset({"command_id", "lock", "parked", "unlocked_without_command", "health", "dropped_fields",
                      "dropped_field_count"})
"""Names the processing script writes into the entry: a sender's field of the same name is not kept."""

DROPPED_NAMES_MAX = 20
"""At most this many dropped field names are listed."""


def is_attribution(name: str) -> bool:
    return name in ATTRIBUTION or name.startswith("acs_")


def _encoded(value: Any) -> str | None:
    """The value as JSON, or None when Lua's cjson could not take it (NaN, Infinity, non-JSON)."""
    try:
        return json.dumps(value, allow_nan=False, separators=(",", ":"))
    except (TypeError, ValueError, RecursionError):
        return None


def own_fields(event, summary: dict, typed: frozenset[str] = frozenset()) -> dict:
    """`summary` plus every other field of the (pydantic) event; the summary's names win on a clash, and a
    name in `typed` (the summary's own typed fields) is never taken from the event as it came (a `method`
    that is not a string stays out)."""
    sizes: dict[str, int] = {}
    fields: dict[str, Any] = {}
    for name, value in event.model_dump(mode="json", exclude_none=True).items():
        # None: also NaN / Infinity, which JSON mode turns into null
        if name in summary or name in typed or name in RESERVED or value is None:
            continue
        encoded = _encoded(value)
        if encoded is None:
            continue
        fields[name] = value
        sizes[name] = len(name) + len(encoded) + 4  # "name":value,
    entry = {**fields, **summary}
    budget = defaults.EVENT_LOG_ENTRY_MAX_BYTES - defaults.EVENT_LOG_ENTRY_RESERVE_BYTES
    total = len(_encoded(entry) or "")
    if total <= budget:
        return entry
    dropped: list[str] = []
    # extras before attribution; within each, the longest first
    for name in sorted(fields, key=lambda k: (is_attribution(k), -sizes[k])):
        del entry[name]
        dropped.append(name)
        total -= sizes[name]
        if total + 40 + sum(len(n) + 3 for n in dropped[:DROPPED_NAMES_MAX]) <= budget:
            break
    entry["dropped_fields"] = sorted(dropped)[:DROPPED_NAMES_MAX]
    if len(dropped) > DROPPED_NAMES_MAX:
        entry["dropped_field_count"] = len(dropped)
    return entry
