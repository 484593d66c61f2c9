"""The notifier: one process, one asyncio loop, that turns outcomes into notifications and sends them.

    lh:outbox (stream; the Lua step that resolves a command writes the outcome)
        |  consumer thread: XREADGROUP BLOCK (group "dispatch"); entries a dead notifier left
        |  unacknowledged are claimed after OUTBOX_RECLAIM_IDLE_MS
        v
    create script, once per (outcome, target): id = hash(outcome id, target); EXISTS -> nothing,
        |  else HSET lh:ntf:<id> + ZADD NX lh:notifications:due:<target>      then XACK + XDEL
        v
    lh:notifications:due:<target>  id -> when to send        lh:notifications:due  target -> earliest
        |  lease script: up to the free slots (NOTIFY_CONCURRENCY overall, NOTIFY_TARGET_CONCURRENCY per
        |  target, 0 while its circuit is open, 1 probe when half-open) of due records;
        |  score := now + NOTIFY_TIMEOUT_S + margin (the lease: a dead sender's records come back)
        v
    send (aiohttp; callbacks through a resolver that returns only checked addresses)
        |  2xx                 -> delivered
        |  timeout, transport, -> due again after the retry schedule or Retry-After (failed after the
        |  408, 429, 5xx          last attempt); counts towards the target's circuit breaker
        |  anything else       -> failed (kept in lh:notifications:failed, re-sendable)
        v
    finish script (batched per pipeline; ignored when the lease was lost): record, due set, failed list,
    counters, command timeline, in one step.

    circuit per target: closed --N consecutive failures--> open --cool-down--> half-open (one probe)
                        half-open --probe delivered--> closed; --probe failed--> open again
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import signal
import socket
import sys
import threading
import time
from dataclasses import dataclass

import aiohttp
from aiohttp.abc import AbstractResolver
from redis.exceptions import RedisError, ResponseError

from lockhook import defaults, keys, metrics
from lockhook.clock import now_ms, seconds_until
from lockhook.errors import LockhookError
from lockhook.ingest.signatures import signature_headers
from lockhook.logs import configure_logging
from lockhook.notifications import payloads, store
from lockhook.notifications.callback_policy import CallbackUrlUnresolvable, callback_target, check_addresses, trusted
from lockhook.notifications.payloads import CALLBACK, SLACK
from lockhook.outcomes import LOCK_STATE_CHANGED, Outcome
from lockhook.redis_client import async_client, sync_client, text
from lockhook.settings import Settings
from lockhook.streams import consumer_name, ensure_group

log = logging.getLogger("lockhook.notifications")

USER_AGENT = "lockhook-notifications/0.2"
RETRYABLE_STATUS = {408, 429}



def create_notifications(client, settings: Settings, entries: list) -> list[str]:
    """Create the records of a batch of outbox entries (each once), log each outcome once, acknowledge.

    Returns the ids this call created (none for an entry read a second time: its records exist)."""
    script, pipe, plan, outcomes = client.register_script(store.CREATE), client.pipeline(transaction=False), [], []
    for stream_id, fields in entries:
        try:
            outcomes.append(Outcome.from_stream(stream_id, fields))
        except Exception as exc:  # one bad (or deleted) entry must not hold up the others: logged, acknowledged
            log.error("outbox entry %s skipped (%s)", text(stream_id), type(exc).__name__)
    for outcome, data in zip(outcomes, payloads.outcomes_data(client, outcomes), strict=True):
        found = [(k, url, payloads.target_label(k, url)) for k, url in payloads.targets(settings, outcome, data)]
        ids = [payloads.notification_id(outcome, f"{kind}:{url}" if url else kind) for kind, url, _ in found]
        for (kind, url, label), nid in zip(found, ids, strict=True):
            store.create(script, pipe, {
                "id": nid, "outcome": outcome.type, "outcome_id": outcome.id, "target": kind, "label": label,
                "url": url or "", "status": store.QUEUED, "attempts": 0, "round": 1, "created_at": now_ms(),
                "command_id": outcome.command_id or "", "device_id": outcome.device_id or data.get("device_id") or "",
                "body": payloads.slack_body(outcome, data) if kind == SLACK else payloads.body(outcome, nid, data)})
        if not found:  # only the log line, once
            pipe.set(keys.notification_guard(outcome.id), "1", nx=True, ex=defaults.NOTIFY_GUARD_TTL_S)
        plan.append((outcome, data, [label for *_, label in found], ids))
    replies, created = pipe.execute() if plan else [], []
    for outcome, data, labels, ids in plan:
        new, replies = replies[:len(ids) or 1], replies[len(ids) or 1:]
        if any(new):
            _log_outcome(outcome, data, labels)
        created += [nid for nid, fresh in zip(ids, new, strict=False) if fresh == 1]
    if entries:
        done = [sid for sid, _ in entries]
        client.pipeline(transaction=False).xack(keys.OUTBOX, keys.OUTBOX_GROUP, *done).xdel(keys.OUTBOX, *done) \
            .execute()
    return created


def _log_outcome(outcome: Outcome, data: dict, labels: list[str]) -> None:
    """The log sink: one structured line per outcome."""
    locked = data.get("locked") if outcome.type == LOCK_STATE_CHANGED else None
    status = data.get("status") if locked is None else ("locked" if locked else "unlocked")
    log.info("%s", outcome.type, extra={
        "outcome": outcome.type, "command_id": outcome.command_id, "device_id": data.get("device_id"),
        "status": status, "error_code": data.get("error_code"), "latency_ms": payloads.latency_ms(data),
        "target": ",".join(labels) or None})


def consume(settings: Settings, stop: threading.Event, on_created=lambda: None) -> None:
    """Turn outbox entries into records until `stop`: new ones (XREADGROUP BLOCK 1 s) and, every 1 s, those a
    dead notifier left unacknowledged. After any error the same batch goes again (creation is idempotent)."""
    client = sync_client(settings, socket_timeout=10)
    consumer, entries, claim_at, backoff = consumer_name(), [], 0.0, 0.1
    while not stop.is_set():
        try:
            if not entries and time.monotonic() >= claim_at:
                if not claim_at:  # unfinished records of an older release join their target's due set
                    for nid in (text(i) for i in client.zrange(keys.NOTIFY_INFLIGHT, 0, -1)):
                        if label := client.hget(keys.notification(nid), "label"):
                            store.make_due(client, nid, text(label))
                    client.delete(keys.NOTIFY_INFLIGHT)
                claim_at = time.monotonic() + 1
                entries = client.xautoclaim(keys.OUTBOX, keys.OUTBOX_GROUP, consumer, defaults.OUTBOX_RECLAIM_IDLE_MS,
                                            count=defaults.OUTBOX_BATCH)[1]
            if not entries:
                reply = client.xreadgroup(keys.OUTBOX_GROUP, consumer, {keys.OUTBOX: ">"},
                                          count=defaults.OUTBOX_BATCH, block=1000)
                entries = reply[0][1] if reply else []
            if entries:
                create_notifications(client, settings, entries)
                entries = []
                on_created()
            backoff = 0.1
        except Exception as exc:  # Redis unavailable, or its restart lost the group: never a dead thread
            log.warning("outbox: batch not done (%s); retrying in %.1f s", type(exc).__name__, backoff)
            if isinstance(exc, ResponseError) and "NOGROUP" in str(exc):
                ensure_group(client, keys.OUTBOX, keys.OUTBOX_GROUP)
            stop.wait(backoff)
            backoff = min(backoff * 2, 2.0)


@dataclass
class Attempt:
    """How one send went: delivered, or an error that may be retried (after `retry_after_s` if given)."""

    delivered: bool
    error: str | None = None
    status_code: int | None = None
    retryable: bool = False
    retry_after_s: float | None = None


class CheckedResolver(AbstractResolver):
    """Resolve once, check every address, return only those: aiohttp connects to exactly what was checked
    (keeping the URL's host, the client's IDNA 2008 ASCII name, for the Host header and the TLS server name)."""

    def __init__(self, settings: Settings, lookup=None):
        self.settings = settings
        self.lookup = lookup or (lambda host, port: [i[4][0] for i in socket.getaddrinfo(host, port, type=1)])

    async def resolve(self, host: str, port: int = 0, family: int = socket.AF_INET) -> list:
        addresses = await asyncio.to_thread(self.lookup, host, port)
        if not trusted(host, port, self.settings):
            check_addresses(addresses)  # raises CallbackUrlRefused: not an OSError, so aiohttp passes it on
        if not addresses:
            raise OSError(f"{host} does not resolve")
        return [{"hostname": host, "host": a, "port": port, "proto": 0, "flags": socket.AI_NUMERICHOST,
                 "family": socket.AF_INET6 if ":" in a else socket.AF_INET} for a in addresses]

    async def close(self) -> None:
        pass


class Circuit:
    """One target's breaker (per process): closed; open after `threshold` consecutive failures; after the
    cool-down half-open, where one probe may go; its result closes or re-opens the circuit."""

    def __init__(self, threshold: int, cooldown_s: float):
        self.threshold, self.cooldown_s = threshold, cooldown_s
        self.failures, self.open_until, self.probing = 0, 0.0, False

    def state(self) -> str:
        if self.failures < self.threshold:
            return "closed"
        return "half_open" if time.monotonic() >= self.open_until else "open"

    def free(self, cap: int, busy: int) -> int:
        """How many of its records may be leased now."""
        state = self.state()
        return cap - busy if state == "closed" else int(state == "half_open" and not self.probing and not busy)

    def record(self, failed: bool) -> bool:
        """Count one result; True when the state changed."""
        before, self.probing = self.state(), False
        self.failures = self.failures + 1 if failed else 0
        if failed and self.failures >= self.threshold:
            self.open_until = time.monotonic() + self.cooldown_s
        return self.state() != before

    def public(self) -> str:
        until = now_ms() + int(max(0.0, self.open_until - time.monotonic()) * 1000) if self.failures else 0
        return json.dumps({"state": self.state(), "failures": self.failures, "open_until": until})


class Sender:
    """Leases due records, sends them concurrently (bounded overall and per target), records each result."""

    def __init__(self, settings: Settings, redis, *, resolve=None, concurrency: int = defaults.NOTIFY_CONCURRENCY,
                 target_cap: int = defaults.NOTIFY_TARGET_CONCURRENCY,
                 circuit_failures: int = defaults.NOTIFY_CIRCUIT_FAILURES,
                 cooldown_s: float = defaults.NOTIFY_CIRCUIT_COOLDOWN_S):
        self.settings, self.redis, self.resolve, self.concurrency, self.target_cap = \
            settings, redis, resolve, concurrency, target_cap
        self.new_circuit = lambda: Circuit(circuit_failures, cooldown_s)
        self.token = f"{consumer_name()}:{secrets.token_hex(4)}"  # whose lease a record is under
        self.lease, self.finish = redis.register_script(store.LEASE), redis.register_script(store.FINISH)
        self.busy: dict[str, str] = {}  # id -> target label, from its lease until its result is recorded
        self.tasks: set[asyncio.Task] = set()
        self.results: list[tuple] = []
        self.circuits: dict[str, Circuit] = {}
        self.changed: set[str] = set()
        self.wake, self.flushing = asyncio.Event(), asyncio.Lock()

    def circuit(self, label: str) -> Circuit:
        return self.circuits.setdefault(label, self.new_circuit())

    def caps(self) -> dict[str, int]:
        """Free slots of each target that is busy or not closed (the others get `target_cap`)."""
        busy = {label: list(self.busy.values()).count(label) for label in set(self.busy.values())}
        return {label: max(0, self.circuit(label).free(self.target_cap, busy.get(label, 0)))
                for label in {*busy, *self.circuits} if label in busy or self.circuit(label).state() != "closed"}

    async def __aenter__(self) -> Sender:
        """Two kept sessions: operator-configured targets, and callbacks (only through the checking resolver)."""
        timeout = aiohttp.ClientTimeout(total=self.settings.notify_timeout_s)  # the whole attempt, trickling included
        checked = aiohttp.TCPConnector(limit=self.concurrency, use_dns_cache=False,
                                       resolver=CheckedResolver(self.settings, self.resolve))
        self.session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=self.concurrency), timeout=timeout)
        self.callbacks = aiohttp.ClientSession(connector=checked, timeout=timeout)
        return self

    async def __aexit__(self, *exc) -> None:
        await self.session.close()
        await self.callbacks.close()

    async def run(self, stop: asyncio.Event) -> None:
        """Lease and send until `stop`; then let in-flight sends end (the HTTP timeout bounds them), record them."""
        async with self:
            await self._lease_loop(stop)
            if self.tasks:  # if Redis stays away their results are lost: the leases run out, they go again
                await asyncio.wait(set(self.tasks), timeout=self.settings.notify_timeout_s + 10)

    async def _lease_loop(self, stop: asyncio.Event) -> None:
        backoff, lost = 0.1, False
        while not stop.is_set():
            self.wake.clear()
            free, taken, now = self.concurrency - len(self.busy), 0, now_ms()
            lease_until = now + int((self.settings.notify_timeout_s + defaults.NOTIFY_LEASE_MARGIN_S) * 1000)
            try:
                replies = await self.lease(keys=[keys.NOTIFY_DUE], args=store.lease_args(
                    now, lease_until, free, self.token, self.caps(), self.target_cap, lost)) if free > 0 else []
                backoff, lost = 0.1, False
            except (RedisError, OSError) as exc:  # it may have leased records all the same: take them back next
                lost = True
                log.warning("notifier: redis unavailable (%s); retrying in %.1f s", type(exc).__name__, backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 2.0)
                continue
            for record in map(store.Notification.from_hash, replies):
                if record.id in self.busy:
                    continue  # our own send of it is still being recorded
                taken += 1
                self.busy[record.id] = record.label
                self.circuit(record.label).probing |= self.circuit(record.label).state() == "half_open"
                task = asyncio.create_task(self._send(record))
                self.tasks.add(task)
                task.add_done_callback(self.tasks.discard)
            metrics.NOTIFY_IN_FLIGHT.set(len(self.busy))
            if not (taken and taken == free):  # else more may be due at once
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.wake.wait(), defaults.NOTIFY_POLL_S)

    async def _send(self, record: store.Notification) -> None:
        started = time.monotonic()
        try:
            result = await self.deliver(record)
        except Exception as exc:  # no exception leaves a record unfinished
            result = Attempt(False, f"unsendable: {type(exc).__name__}")
        elapsed = time.monotonic() - started
        metrics.NOTIFY_LATENCY.labels(record.target).observe(elapsed)
        attempt, delay, status = record.attempts + 1, None, store.DELIVERED if result.delivered else store.FAILED
        if self.circuit(record.label).record(not result.delivered and result.retryable):
            self.changed.add(record.label)
        if result.retryable and attempt < self.settings.notify_max_attempts:
            delays = self.settings.notify_retry_delays
            delay = delays[min(attempt - 1, len(delays) - 1)]
            if result.retry_after_s is not None:
                delay = min(result.retry_after_s, defaults.NOTIFY_RETRY_AFTER_MAX_S)
            status = store.RETRYING
        level = {store.DELIVERED: logging.INFO, store.RETRYING: logging.WARNING}.get(status, logging.ERROR)
        log.log(level, "notification %s (attempt %d%s%s)", status, attempt, f", {result.error}" if result.error else "",
                f", again in {delay:.1f} s" if delay is not None else "", extra={
                    "outcome": record.outcome, "command_id": record.command_id, "device_id": record.device_id,
                    "target": record.label, "attempt": attempt, "latency_ms": int(elapsed * 1000), "status": status,
                    "error_code": result.error})
        self.results.append((status, record, attempt, result, delay))
        backoff = 0.1
        while record.id in self.busy:  # recorded by this flush or by another send's (one pipeline for all)
            try:
                await self._flush()
            except (RedisError, OSError) as exc:  # the result stays until Redis answers again
                log.warning("notifier: recording failed (%s); retrying in %.1f s", type(exc).__name__, backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 2.0)

    async def _flush(self) -> None:
        """Record every waiting result (and changed circuit) in one pipeline; they stay listed until it worked."""
        async with self.flushing:
            batch, changed, pipe = self.results[:], set(self.changed), self.redis.pipeline(transaction=False)
            if not batch and not changed:
                return
            for status, record, attempt, result, delay in batch:
                await store.finish(self.finish, pipe, self.token, record, status, attempt=attempt, error=result.error,
                                   status_code=result.status_code, retry_in_s=delay)
            for label in changed:
                pipe.hset(keys.NOTIFY_CIRCUITS, label, self.circuits[label].public())
            await pipe.execute()
            self.changed -= changed
            del self.results[:len(batch)]
            for _, record, *_ in batch:
                self.busy.pop(record.id, None)
            self.wake.set()

    def _request(self, record: store.Notification) -> tuple[str, dict[str, str]] | Attempt:
        """The URL and headers for this attempt, or an Attempt describing why it cannot be made."""
        headers = {"content-type": "application/json", "user-agent": USER_AGENT}
        if record.target == SLACK:
            slack = self.settings.slack_webhook_url
            return (slack.get_secret_value(), headers) if slack else Attempt(False, "slack_not_configured")
        if not record.url:
            return Attempt(False, "no_url")
        if record.target == CALLBACK:
            try:
                callback_target(record.url, self.settings)
            except LockhookError as exc:
                return Attempt(False, f"callback_url_refused: {exc.message}")
        if not self.settings.notify_webhook_secret:
            return Attempt(False, "notify_webhook_secret_missing")
        headers.update(signature_headers(self.settings.notify_webhook_secret.get_secret_value(), record.id,
                                         record.body.encode(), prefix="webhook"))
        return record.url, headers

    async def deliver(self, record: store.Notification) -> Attempt:
        """One HTTP attempt. Retryable: timeouts, transport errors, 408, 429 and 5xx; anything else is final."""
        prepared = self._request(record)
        if isinstance(prepared, Attempt):
            return prepared
        session = self.callbacks if record.target == CALLBACK else self.session
        try:
            async with session.post(prepared[0], data=record.body.encode(), headers=prepared[1],
                                    allow_redirects=False) as resp:
                code, retry_after = resp.status, resp.headers.get("retry-after")
        except CallbackUrlUnresolvable:
            return Attempt(False, "callback_url_unresolvable", retryable=True)
        except LockhookError as exc:  # the resolver's check: an internal address
            return Attempt(False, f"callback_url_refused: {exc.message}")
        except TimeoutError:
            return Attempt(False, "timeout", retryable=True)
        except (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError, aiohttp.ClientResponseError,
                OSError) as exc:
            return Attempt(False, f"connection_error: {type(exc).__name__}", retryable=True)
        except (aiohttp.InvalidURL, ValueError) as exc:
            return Attempt(False, f"invalid_url: {type(exc).__name__}")
        if 200 <= code < 300:
            return Attempt(True, status_code=code)
        retryable = code >= 500 or code in RETRYABLE_STATUS
        return Attempt(False, f"http_{code}", status_code=code, retryable=retryable,
                       retry_after_s=seconds_until(retry_after) if retryable else None)



async def serve(settings: Settings, stop: asyncio.Event, **sender_options) -> None:
    """Run the consumer thread and the sender until `stop` is set."""
    loop, redis = asyncio.get_running_loop(), async_client(settings)
    sender, halt = Sender(settings, redis, **sender_options), threading.Event()
    consumer = threading.Thread(target=consume, name="lockhook-outbox", daemon=True,
                                args=(settings, halt, lambda: loop.call_soon_threadsafe(sender.wake.set)))
    consumer.start()
    try:
        await sender.run(stop)
    finally:
        halt.set()
        await asyncio.to_thread(consumer.join, 5)
        await redis.aclose()


def run(settings: Settings) -> None:
    """The worker's notifier process. SIGTERM/SIGINT: stop leasing, finish in-flight sends, exit."""
    configure_logging(settings)
    sys.setswitchinterval(0.001)  # the consumer thread must not hold the GIL for 5 ms while sends wait

    async def main() -> None:
        stop = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):  # the worker's SIGTERM (its death is a SIGKILL)
            asyncio.get_running_loop().add_signal_handler(sig, stop.set)
        await serve(settings, stop)

    asyncio.run(main())
