"""Waits on observable state (a condition polled until it holds), never on a fixed sleep."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_for(predicate: Callable[[], T], timeout: float = 10.0, interval: float = 0.02,
             what: str = "condition") -> T:
    """Poll `predicate` until it returns something truthy (and return that); fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"{what} not met within {timeout:.1f} s")
        time.sleep(interval)


def holds_for(predicate: Callable[[], object], seconds: float, interval: float = 0.05,
              what: str = "condition") -> None:
    """Check that `predicate` stays truthy for `seconds` (for "nothing more happens"), failing at once if not."""
    deadline = time.monotonic() + seconds
    while True:
        assert predicate(), f"{what} stopped holding"
        if time.monotonic() >= deadline:
            return
        time.sleep(interval)
