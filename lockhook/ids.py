"""The one id pattern: every id in API paths, bodies and queries, and so in Redis key names, matches it.

Letters, digits and `_ - . ~` (URL-unreserved, so a path segment needs no escaping), 1-200 characters,
not starting with `.` (no `.` / `..` path segments). No `:`, so an id never reaches a key of another
type (`lh:cmd:<id>:timeline`), and no `/`, spaces or non-ASCII text.
"""

from __future__ import annotations

import re

ID_MAX_LENGTH = 200

ID_PATTERN = rf"^[A-Za-z0-9_~-][A-Za-z0-9_.~-]{{0,{ID_MAX_LENGTH - 1}}}$"
"""For pydantic `Field(pattern=...)` and the OpenAPI document."""

_ID = re.compile(ID_PATTERN)


def is_id(value: object) -> bool:
    """True when `value` is a string matching ID_PATTERN."""
    return isinstance(value, str) and _ID.fullmatch(value) is not None
