"""One Redis pub/sub connection per web process that wakes every `?wait=` long-poll when its command resolves.

A connection per waiting request would exhaust the client's pool (100 by default) and starve the webhook
ack path that shares it; here a thousand waiters cost one connection. A waiter is woken by the message
the resolving Lua script publishes, then re-reads the command itself. After a lost connection the
listener reconnects, subscribes again and wakes every waiter so nothing published meanwhile is missed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from collections.abc import AsyncIterator

from redis.exceptions import RedisError

from lockhook import defaults

log = logging.getLogger("lockhook.resolutions")

LISTEN_TIMEOUT_S = 30.0
"""The listener's blocking read returns at least this often (then reads again)."""


READ_CONCURRENCY = 32
"""Most command reads the API runs on Redis at once in one web process."""


class _Channel:
    __slots__ = ("ready", "waiters")

    def __init__(self) -> None:
        self.ready = asyncio.Event()  # set once Redis confirmed the subscription
        self.waiters: set[asyncio.Event] = set()


class ResolutionHub:
    """Shared subscriptions, reference-counted per channel; subscribe/unsubscribe are serialized."""

    def __init__(self, redis) -> None:
        self.redis = redis
        self.channels: dict[str, _Channel] = {}
        self.unconfirmed: Counter[str] = Counter()
        self.lock = asyncio.Lock()
        self.pubsub = None
        self.task: asyncio.Task | None = None
        # many waiters wake at once; their re-reads must not exhaust the client's connection pool (100),
        # which the webhook ack path shares
        self.reads = asyncio.Semaphore(READ_CONCURRENCY)

    @contextlib.asynccontextmanager
    async def watch(self, channel: str) -> AsyncIterator[asyncio.Event]:
        """Yield an event set on every message on `channel`, once the subscription is confirmed.

        Read the state you wait on AFTER entering, so a change published before cannot be missed.
        """
        event = asyncio.Event()
        async with self.lock:
            entry = self.channels.get(channel)
            if entry is None:
                entry = self.channels[channel] = _Channel()
                entry.waiters.add(event)
                try:
                    await self._send("subscribe", channel)
                except BaseException:
                    del self.channels[channel]
                    raise
            else:
                entry.waiters.add(event)
        try:
            await asyncio.wait_for(entry.ready.wait(), timeout=defaults.REDIS_SOCKET_TIMEOUT_S)
            yield event
        finally:
            entry.waiters.discard(event)
            if not entry.waiters:
                await self._release(channel, entry)

    async def _release(self, channel: str, entry: _Channel) -> None:
        async with self.lock:
            if entry.waiters or self.channels.get(channel) is not entry:
                return
            del self.channels[channel]
            if not self.channels:  # idle: hold no connection and no task (the app may be shutting down)
                await self._stop()
                return
            with contextlib.suppress(RedisError, OSError, RuntimeError):
                await self._send("unsubscribe", channel)

    async def _send(self, command: str, channel: str) -> None:
        if self.pubsub is None:
            self.pubsub = self.redis.pubsub()
        if command == "subscribe":
            self.unconfirmed[channel] += 1
            await self.pubsub.subscribe(channel)
            if self.task is None or self.task.done():
                self.task = asyncio.create_task(self._listen(), name="lockhook-resolutions")
        else:
            await self.pubsub.unsubscribe(channel)

    async def _listen(self) -> None:
        backoff = 0.0  # the first resubscribe is immediate: waiters are held meanwhile
        while True:
            try:
                message = await self.pubsub.get_message(timeout=LISTEN_TIMEOUT_S)
                backoff = 0.0
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError, RuntimeError) as exc:
                self._wake_all()
                if not self.channels:  # nobody waits: drop the connection, the next watch starts afresh
                    self.pubsub = None
                    return
                log.warning("resolution listener lost Redis (%s); resubscribing", type(exc).__name__)
                await asyncio.sleep(backoff)
                backoff = min(max(backoff * 2, 0.05), 5.0)
                await self._resubscribe()
                continue
            if message is not None:
                self._dispatch(message)

    def _dispatch(self, message: dict) -> None:
        channel = message.get("channel")
        channel = channel.decode() if isinstance(channel, bytes) else channel
        entry = self.channels.get(channel)
        if message.get("type") == "subscribe":
            self.unconfirmed[channel] -= 1
            if self.unconfirmed[channel] <= 0:
                del self.unconfirmed[channel]
                if entry is not None:
                    entry.ready.set()
                    # after a reconnect, a message may have been published while no connection listened:
                    # waiters re-read once the new subscription is live (a fresh waiter reads anyway)
                    for waiter in entry.waiters:
                        waiter.set()
        elif message.get("type") == "message" and entry is not None:
            for waiter in entry.waiters:
                waiter.set()

    def _wake_all(self) -> None:
        for entry in self.channels.values():
            entry.ready.set()
            for waiter in entry.waiters:
                waiter.set()

    async def _resubscribe(self) -> None:
        async with self.lock:
            old, self.pubsub = self.pubsub, self.redis.pubsub()
            with contextlib.suppress(Exception):
                await old.aclose()
            self.unconfirmed.clear()
            if self.channels:
                with contextlib.suppress(RedisError, OSError):
                    self.unconfirmed.update(self.channels.keys())
                    await self.pubsub.subscribe(*self.channels.keys())

    async def _stop(self) -> None:
        task, pubsub = self.task, self.pubsub
        self.task = self.pubsub = None
        self.unconfirmed.clear()
        if task is not None and task is not asyncio.current_task():
            task.cancel()
            with contextlib.suppress(BaseException):
                await task
        if pubsub is not None:
            with contextlib.suppress(Exception):
                await pubsub.aclose()


def hub(state) -> ResolutionHub:
    """The process's hub, created on first use (app.state holds it; one event loop per web process)."""
    found = getattr(state, "resolution_hub", None)
    if found is None or found.redis is not state.redis:
        found = state.resolution_hub = ResolutionHub(state.redis)
    return found
