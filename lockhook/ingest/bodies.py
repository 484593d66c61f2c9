"""Whether a webhook body is an event, decided the same way by the receiver (202 accepted or quarantined)
and by the worker (applied), so nothing the receiver accepted as an event is dropped later.

UTF-8 with or without a byte-order mark; `NaN` and `Infinity` are not JSON (Lua's cjson refuses them);
deep nesting is refused; lone surrogate escapes (valid for Python's parser, not for cjson) become U+FFFD.
"""

from __future__ import annotations

import json
import re
from typing import Any

_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _load(body: bytes) -> Any:
    return json.loads(body, parse_constant=_no_constants)  # bytes: the BOM is detected, as utf-8-sig


def is_event_body(body: bytes) -> bool:
    """The receiver's verdict: a JSON object with a string `event_type` (anything else is quarantined)."""
    try:
        data = _load(body)
    except (ValueError, RecursionError):
        return False
    return isinstance(data, dict) and isinstance(data.get("event_type"), str)


def parse_event_body(body: bytes) -> dict | None:
    """The worker's event object for a body, or None when `is_event_body` says it is not one."""
    try:
        data = _load(body)
    except (ValueError, RecursionError):
        return None
    if not isinstance(data, dict) or not isinstance(data.get("event_type"), str):
        return None
    return _scrub(data)


def _scrub(value: Any) -> Any:
    if isinstance(value, str):
        return _LONE_SURROGATE.sub("\ufffd", value)
    if isinstance(value, dict):
        return {_scrub(k): _scrub(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_scrub(v) for v in value]
    return value
