"""Baseline (e): a plain BRPOP loop doing the same Redis work per event as lockhook (no RQ, no batching)."""

from __future__ import annotations

import json
import time

import redis

from lockhook.processing.apply import apply_entries

LIST = "bench:brpop"


def push(client: redis.Redis, entries: list[dict]) -> None:
    """Queue inbox-style field dicts (str values) on the list the loop pops."""
    pipe = client.pipeline(transaction=False)
    for fields in entries:
        pipe.lpush(LIST, json.dumps(fields))
    pipe.execute()


def run(client: redis.Redis, idle_timeout: float = 0.5) -> tuple[int, float]:
    """Pop and apply one event at a time until the list stays empty; (how many, time of the last one)."""
    count, last = 0, time.time()
    while True:
        item = client.brpop([LIST], timeout=idle_timeout)
        if item is None:
            return count, last
        apply_entries(client, [(b"0-0", json.loads(item[1]))])
        count += 1
        last = time.time()
