"""The durable inbox: dedupe + store + enqueue of deliveries in one Lua call, batched across requests.

Concurrent requests share one script call (each answered only after its batch is written), so the
ack path costs one Redis round trip per batch rather than one per delivery.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from lockhook import defaults
from lockhook.errors import StorageUnavailable
from lockhook.scripts import Scripts

log = logging.getLogger("lockhook.inbox")


@dataclass(slots=True)
class Delivery:
    """One verified webhook delivery as received: the unit that is deduplicated and stored."""

    endpoint: str
    delivery_id: str
    headers: dict[str, str]
    body: bytes
    quarantine: bool = False


def retention_min_id(now_ms: int, retention_s: int) -> str:
    """Stream entries older than the dedupe window are trimmed (XADD MINID)."""
    return f"{max(0, now_ms - retention_s * 1000)}-0"


def ingest_argv(deliveries: list[Delivery], dedupe_ttl_s: int, now_ms: int) -> list:
    """ARGV of the `ingest` script for a batch (after the clock Scripts.args puts first)."""
    argv: list = [dedupe_ttl_s, retention_min_id(now_ms, dedupe_ttl_s), len(deliveries)]
    for d in deliveries:
        argv += [d.endpoint, d.delivery_id, "quarantine" if d.quarantine else "event",
                 json.dumps(d.headers, separators=(",", ":")), d.body]
    return argv


def put_sync(client, deliveries: list[Delivery], dedupe_ttl_s: int) -> tuple[list[bool], bool]:
    """Store deliveries from a synchronous caller (reconcile, tools): which were new, and whether a drain is due."""
    now_ms = int(time.time() * 1000)
    result = Scripts(client).ingest(args=Scripts.args(now_ms, *ingest_argv(deliveries, dedupe_ttl_s, now_ms)))
    return [bool(stored) for stored in result[:-1]], bool(result[-1])


class Inbox:
    """Writes deliveries through the `ingest` script, batching concurrent callers."""

    def __init__(self, client, dedupe_ttl_s: int, schedule_drain: Callable[[], object]):
        self._scripts = Scripts(client)
        self._ttl = dedupe_ttl_s
        self._schedule_drain = schedule_drain
        self._pending: list[tuple[Delivery, asyncio.Future]] = []
        self._flusher: asyncio.Task | None = None

    async def put(self, delivery: Delivery) -> bool:
        """Store a delivery; True when new, False for a duplicate; StorageUnavailable if Redis failed."""
        future = asyncio.get_running_loop().create_future()
        self._pending.append((delivery, future))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush())
        return await future

    async def _flush(self) -> None:
        while self._pending:
            batch = self._pending[: defaults.INBOX_BATCH_MAX]
            del self._pending[: len(batch)]
            now_ms = int(time.time() * 1000)
            argv = ingest_argv([d for d, _ in batch], self._ttl, now_ms)
            try:
                result = await self._scripts.ingest(args=Scripts.args(now_ms, *argv))
            except Exception as exc:  # Redis down, timeout, anything: nothing is acknowledged, the sender retries
                log.warning("inbox write failed: %s", type(exc).__name__)
                for _, future in batch:
                    if not future.done():
                        future.set_exception(StorageUnavailable("event storage is unavailable"))
                continue
            for (_, future), stored in zip(batch, result, strict=False):
                if not future.done():
                    future.set_result(bool(stored))
            if result[-1]:
                self._schedule_drain()

