"""Wakes `?wait=` long-polls when their command resolves: one PSUBSCRIBE per web process, a dict of waiters.

A connection per waiting request would exhaust the client's pool (100 by default) and starve the webhook
ack path that shares it; here every waiter shares one pattern subscription on all command channels. A
waiter is woken by the message the resolving Lua script publishes, then re-reads the command itself.
Every (re)subscription wakes every waiter, so a message published while no connection listened is not
missed: each re-reads its command.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from redis.exceptions import RedisError

from lockhook import defaults, keys
from lockhook.commands.store import Command, CommandStatus
from lockhook.redis_client import text

log = logging.getLogger("lockhook.resolutions")

LISTEN_TIMEOUT_S = 30.0
"""The listener's blocking read returns at least this often (then reads again)."""

WAIT_RECHECK_S = 5.0
"""A long-poll re-reads its command at least this often (safety net; the wake-up comes from pub/sub)."""

READ_CONCURRENCY = 32
"""Most command reads the API runs on Redis at once in one web process."""

_BEFORE_ID, _AFTER_ID = keys.COMMAND_CHANNELS.split("*")  # a message's channel names its command


def command_id_of(channel: str) -> str:
    return channel.removeprefix(_BEFORE_ID).removesuffix(_AFTER_ID)


class Resolutions:
    """The process's subscription and its waiters (command id -> events); runs on the app's event loop."""

    def __init__(self, redis) -> None:
        self.redis = redis
        self.waiters: dict[str, set[asyncio.Event]] = {}
        self.subscribed = asyncio.Event()  # set while Redis has confirmed the pattern subscription
        self.task: asyncio.Task | None = None
        self.closed = False
        self.stopping = False  # the web process is stopping: waiters answer with the command as it is
        # many waiters wake at once; their re-reads must not exhaust the client's connection pool (100),
        # which the webhook ack path shares
        self.reads = asyncio.Semaphore(READ_CONCURRENCY)

    @contextlib.asynccontextmanager
    async def watch(self, command_id: str) -> AsyncIterator[asyncio.Event]:
        """Yield an event set whenever the command may have changed, once the subscription is live.

        Read the command AFTER entering, so a resolution published before cannot be missed.
        """
        event = asyncio.Event()
        waiters = self.waiters.setdefault(command_id, set())
        waiters.add(event)
        try:
            if self.task is None:
                self.task = asyncio.create_task(self._listen(), name="lockhook-resolutions")
            await asyncio.wait_for(self.subscribed.wait(), timeout=defaults.REDIS_SOCKET_TIMEOUT_S)
            yield event
        finally:
            waiters.discard(event)
            if not waiters and self.waiters.get(command_id) is waiters:
                del self.waiters[command_id]

    async def _listen(self) -> None:
        backoff = 0.0  # the first resubscribe is immediate: waiters are held meanwhile
        while not self.closed:
            pubsub = self.redis.pubsub()
            try:
                await pubsub.psubscribe(keys.COMMAND_CHANNELS)
                while not self.closed:
                    message = await pubsub.get_message(timeout=LISTEN_TIMEOUT_S)
                    if message is None:
                        continue
                    if message["type"] == "psubscribe":  # also after the client reconnected by itself
                        backoff = 0.0
                        self.subscribed.set()
                        self._wake(self.waiters)
                    elif message["type"] == "pmessage":
                        self._wake([command_id_of(text(message["channel"]))])
            except (RedisError, OSError, RuntimeError) as exc:
                log.warning("resolution listener lost Redis (%s); resubscribing", type(exc).__name__)
                self.subscribed.clear()
                self._wake(self.waiters)  # each re-reads now: a 503 while Redis is down, not a silent wait
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()
            await asyncio.sleep(backoff)
            backoff = min(max(backoff * 2, 0.05), 5.0)

    def stop_waiting(self) -> None:
        """A graceful stop began: every open long-poll answers now (200, the command as it is), not at shutdown."""
        self.stopping = True
        self._wake(self.waiters)

    def _wake(self, command_ids) -> None:
        for command_id in list(command_ids):
            for event in self.waiters.get(command_id, ()):
                event.set()

    async def close(self) -> None:
        """Stop listening (app shutdown); the flag also ends a loop whose cancellation the client swallowed."""
        self.closed = True
        task, self.task = self.task, None
        if task is not None:
            task.cancel()
            await asyncio.wait({task}, timeout=defaults.REDIS_SOCKET_TIMEOUT_S)
        self.subscribed.clear()


async def read_command(state, command_id: str) -> Command | None:
    async with state.resolutions.reads:
        raw = await state.redis.hgetall(keys.command(command_id))
    return Command.from_hash(raw) if raw else None


async def await_command(state, command_id: str, wait_s: float) -> Command | None:
    """The command once it leaves `pending`, or as it is after `wait_s` seconds.

    Woken by the process's shared pub/sub subscription (this module), never by polling; a
    re-read every WAIT_RECHECK_S is only a safety net should a message be lost with a connection.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait_s
    async with state.resolutions.watch(command_id) as fired:
        command = await read_command(state, command_id)  # after subscribing: no resolution is missed
        while command is not None and command.status == CommandStatus.PENDING and not state.resolutions.stopping:
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(fired.wait(), timeout=min(remaining, WAIT_RECHECK_S))
            fired.clear()
            command = await read_command(state, command_id)
        return command
