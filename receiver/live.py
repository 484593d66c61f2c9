"""The dashboard's live feeds: per web process, one poll and one render per change, shared by every open stream.

A feed exists per distinct view (overview with its filters, or one command) while at least one stream
watches it: it polls the view's fingerprint every DASHBOARD_POLL_S (so at most that many renders a
second), renders the sections once when it changed, and hands the same encoded message to each stream's
small queue; after the first, a message carries only the sections that changed. A stream whose
queue is full cannot keep up and is dropped (the browser reconnects), never buffered without bound.
With no stream open, nothing polls or renders.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable, Hashable

from redis.exceptions import RedisError

from lockhook import defaults
from lockhook.errors import StorageUnavailable

log = logging.getLogger("lockhook.dashboard")

Fingerprint = Callable[[], Awaitable[str]]
Render = Callable[[], Awaitable[dict[str, str] | None]]

DROPPED = ""
"""Put in a stream's queue (after emptying it) when it fell behind: the stream ends."""


class Feed:
    """One view's poll-render-fan-out loop; runs only while it has subscribers."""

    def __init__(self, key: Hashable, fingerprint: Fingerprint, render: Render, on_idle: Callable[[Hashable], None]):
        self.key = key
        self._fingerprint = fingerprint
        self._render = render
        self._on_idle = on_idle
        self.subscribers: set[asyncio.Queue] = set()
        self.latest: str | None = None  # every section, for a stream that joins now
        self._sections: dict[str, str] = {}
        self.renders = 0
        self._task: asyncio.Task | None = None

    def subscribe(self) -> asyncio.Queue:
        queue: asyncio.Queue = asyncio.Queue(maxsize=defaults.DASHBOARD_STREAM_QUEUE)
        if self.latest is not None:
            queue.put_nowait(self.latest)  # a new page gets the current sections at once, without a render
        self.subscribers.add(queue)
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run())
        return queue

    def unsubscribe(self, queue: asyncio.Queue) -> None:
        self.subscribers.discard(queue)
        if not self.subscribers:
            if self._task is not None:
                self._task.cancel()
            self._on_idle(self.key)

    def _publish(self, message: str) -> None:
        for queue in list(self.subscribers):
            try:
                queue.put_nowait(message)
            except asyncio.QueueFull:  # a reader that cannot keep up: end its stream
                self.subscribers.discard(queue)
                while not queue.empty():
                    queue.get_nowait()
                queue.put_nowait(DROPPED)

    async def _run(self) -> None:
        last = None
        while self.subscribers:
            try:
                current = await self._fingerprint()
                if current != last:
                    sections = await self._render()
                    self.renders += 1
                    if sections is not None:
                        changed = {k: v for k, v in sections.items() if self._sections.get(k) != v}
                        self._sections = sections
                        self.latest = _update(sections)
                        if changed:
                            self._publish(_update(changed))  # only what changed: a delta per change
                    last = current
            except (RedisError, OSError, StorageUnavailable) as exc:
                self._publish("event: unavailable\ndata: " + json.dumps({"error": type(exc).__name__}) + "\n\n")
            await asyncio.sleep(defaults.DASHBOARD_POLL_S)


def _update(sections: dict[str, str]) -> str:
    return "event: update\ndata: " + json.dumps({"sections": sections}) + "\n\n"


class LiveHub:
    """The process's feeds by view key."""

    def __init__(self):
        self.feeds: dict[Hashable, Feed] = {}

    def feed(self, key: Hashable, fingerprint: Fingerprint, render: Render) -> Feed:
        found = self.feeds.get(key)
        if found is None:
            found = self.feeds[key] = Feed(key, fingerprint, render, self._idle)
        return found

    def _idle(self, key: Hashable) -> None:
        feed = self.feeds.get(key)
        if feed is not None and not feed.subscribers:
            del self.feeds[key]
