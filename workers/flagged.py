"""The drain job's loop: work while a 'scheduled' flag is held, never strand an entry."""

from __future__ import annotations

import time
from collections.abc import Callable

from lockhook import defaults


def run_flagged(client, flag: str, step: Callable[[], int], hand_over: Callable[[], None],
                max_seconds: float = defaults.DRAIN_MAX_SECONDS) -> int:
    """Call `step` (returns how many entries it took) until it finds nothing; returns the total.

    The flag says "a job is queued or running" so producers enqueue at most one. It is refreshed every
    round, released before the last look (an entry stored in between is not stranded), and kept when the
    time is up: `hand_over` queues a fresh job so other jobs get a turn.
    """
    stop_at = time.monotonic() + max_seconds
    total = 0
    while True:
        client.expire(flag, defaults.DRAIN_FLAG_TTL_S)
        taken = step()
        if not taken:
            client.delete(flag)
            taken = step()
            if not taken:
                return total
            client.set(flag, "1", ex=defaults.DRAIN_FLAG_TTL_S)
        total += taken
        if time.monotonic() > stop_at:
            hand_over()
            return total
