"""Metric definitions: per-process counters (multiprocess-safe) and cluster-wide counts read from Redis at scrape.

Two sources, because lockhook runs as several web and worker processes:
- cluster-wide counts (deliveries, events, commands, notifications, queues, confirmation latency) are kept in
  Redis by the Lua scripts and workers, and read by `RedisCollector` when /metrics is scraped, so every web
  process reports the same totals (label `scope="cluster"` on deliveries);
- per-process answers that never reach Redis (401 reasons, 413, 408, 503, ...) and the ack latency histogram
  are prometheus_client metrics of the web process; with `PROMETHEUS_MULTIPROC_DIR` set they are summed over
  every process on the host (prometheus_client's multiprocess mode), label `scope="process"`.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterable, Iterator
from datetime import datetime

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from redis.exceptions import RedisError, ResponseError

from lockhook import defaults, keys
from lockhook.redis_client import int_hash, text

log = logging.getLogger("lockhook.metrics")

ACK_BUCKETS_S = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 15.0)
"""Webhook ack latency buckets: Svix counts only a 2xx within 15 s."""

DELIVERY_STATUS = {"accepted": 202, "duplicate": 200, "quarantined": 202}
RQ_QUEUES = (defaults.QUEUE_EVENTS, defaults.QUEUE_POLLS)
INBOX_SCAN_CAP = 1000
"""Without Redis 7's consumer-group `lag`, undelivered inbox entries are counted up to this many."""

# Per-process metrics (the web process). Folded into `lockhook_deliveries_total` at exposition.
WEBHOOK_REJECTIONS = Counter("lockhook_webhook_rejections", "Webhook deliveries answered with an error",
                             ["endpoint", "outcome", "status"])
ACK_LATENCY = Histogram("lockhook_ack_latency_seconds", "Time from request start to the webhook answer",
                        ["endpoint"], buckets=ACK_BUCKETS_S)
# Per-process metrics of the worker's notifier (summed over processes with PROMETHEUS_MULTIPROC_DIR).
NOTIFY_LATENCY = Histogram("lockhook_notification_send_seconds", "One notification send attempt, by target kind",
                           ["target"], buckets=ACK_BUCKETS_S)
NOTIFY_IN_FLIGHT = Gauge("lockhook_notifications_in_flight", "Notifications leased and not yet recorded",
                         multiprocess_mode="livesum")
CIRCUIT_STATES = {"closed": 0, "half_open": 1, "open": 2}

RECORDER_FAILURES = Counter("lockhook_recorder_failures", "Stored deliveries RECORD_DIR could not write as a fixture",
                            ["endpoint"])


def record_ack(endpoint: str, seconds: float) -> None:
    ACK_LATENCY.labels(endpoint).observe(seconds)


def record_rejection(endpoint: str, code: str, status: int, seconds: float) -> None:
    WEBHOOK_REJECTIONS.labels(endpoint, code, str(status)).inc()
    ACK_LATENCY.labels(endpoint).observe(seconds)




def circuit_state(raw) -> int:
    """A notifier's recorded circuit (JSON) as 0 closed, 1 half-open, 2 open (open past its cool-down: half-open)."""
    try:
        state = json.loads(raw)
    except ValueError:
        return 0
    name = state.get("state", "closed")
    if name != "closed" and (state.get("open_until") or 0) <= time.time() * 1000:
        name = "half_open"
    return CIRCUIT_STATES.get(name, 0)


def _stream_ms(stream_id) -> int:
    return int(text(stream_id).split("-", 1)[0])


def latency_histogram(raw: dict[str, int]) -> dict[str, tuple[list[tuple[str, float]], float]]:
    """Per `via`: cumulative (le, count) buckets in seconds and the sum, from the Lua's per-bucket fields."""
    by_via: dict[str, dict[str, int]] = {}
    for field, value in raw.items():
        via, _, name = field.rpartition(":")
        if via:
            by_via.setdefault(via, {})[name] = value
    out = {}
    for via, fields in by_via.items():
        bounds = sorted({*defaults.LATENCY_BUCKETS_MS, *(int(f[3:]) for f in fields
                                                         if f.startswith("le_") and f[3:].isdigit())})
        running, buckets = 0, []
        for bound in bounds:
            running += fields.get(f"le_{bound}", 0)
            buckets.append((_le(bound / 1000), running))
        buckets.append(("+Inf", fields.get("count", running + fields.get("le_inf", 0))))
        out[via] = (buckets, fields.get("sum_ms", 0) / 1000)
    return out


def _le(seconds: float) -> str:
    return repr(float(seconds))


class RedisCollector:
    """Cluster-wide metrics read from Redis at scrape time (identical from every web process)."""

    def __init__(self, client, process_rejections: list[tuple[dict, float]] = ()):
        self.client = client
        self.process_rejections = list(process_rejections)

    def describe(self) -> Iterable[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily("lockhook_redis_up", "1 when Redis answered this scrape")
        deliveries = CounterMetricFamily(
            "lockhook_deliveries", "Webhook deliveries by endpoint and outcome (accepted, duplicate, quarantined "
            "cluster-wide from Redis; error answers such as 401 reasons, 413, 408, 503 per process)",
            labels=["endpoint", "outcome", "status", "scope"])
        for labels, value in self.process_rejections:
            deliveries.add_metric([labels.get("endpoint", ""), labels.get("outcome", ""),
                                   labels.get("status", ""), "process"], value)
        try:
            families = list(self._cluster(deliveries))
        except (RedisError, OSError) as exc:
            log.warning("metrics: redis unavailable (%s)", type(exc).__name__)
            up.add_metric([], 0)
            yield up
            yield deliveries
            return
        up.add_metric([], 1)
        yield up
        yield deliveries
        yield from families

    def _cluster(self, deliveries: CounterMetricFamily) -> Iterator[Metric]:
        pipe = self.client.pipeline(transaction=False)
        for key in (keys.DELIVERY_STATS, keys.EVENT_STATS, keys.COMMAND_STATS, keys.NOTIFY_STATS,
                    keys.LATENCY_STATS):
            pipe.hgetall(key)
        pipe.zcard(keys.DEADLINES)
        pipe.type(keys.NOTIFY_FAILED)
        for name in RQ_QUEUES:
            pipe.llen(f"rq:queue:{name}")
            pipe.lindex(f"rq:queue:{name}", 0)
        pipe.xlen(keys.OUTBOX)
        pipe.hgetall(keys.NOTIFY_TARGET_STATS)
        pipe.hgetall(keys.NOTIFY_CIRCUITS)
        pipe.zrange(keys.NOTIFY_DUE, 0, -1, withscores=True)
        (delivery_raw, event_raw, command_raw, notify_raw, latency_raw, pending, failed_type, *rest, outbox_len,
         target_raw, circuits_raw, due_index) = pipe.execute()

        for field, value in sorted(int_hash(delivery_raw).items()):
            endpoint, _, outcome = field.rpartition(":")
            deliveries.add_metric([endpoint, outcome, str(DELIVERY_STATUS.get(outcome, "")), "cluster"], value)

        events = CounterMetricFamily("lockhook_events", "Events applied, by event type", labels=["event_type"])
        for event_type, value in sorted(int_hash(event_raw).items()):
            events.add_metric([event_type], value)
        yield events

        commands = CounterMetricFamily("lockhook_commands", "Command outcomes (succeeded, failed, timed_out, "
                                       "rejected, late_result)", labels=["outcome"])
        for outcome, value in sorted(int_hash(command_raw).items()):
            commands.add_metric([outcome], value)
        yield commands
        gauge = GaugeMetricFamily("lockhook_commands_pending", "Commands waiting for confirmation")
        gauge.add_metric([], pending)
        yield gauge

        yield from self._notifications(int_hash(notify_raw), text(failed_type))
        yield from self._notification_targets(int_hash(target_raw), circuits_raw, due_index)

        histogram = HistogramMetricFamily("lockhook_confirmation_latency_seconds",
                                          "Command created -> confirmed (succeeded/failed), by via",
                                          labels=["via"])
        for via, (buckets, total) in sorted(latency_histogram(int_hash(latency_raw)).items()):
            histogram.add_metric([via], buckets, total)
        yield histogram

        yield from self._queues(rest, outbox_len)
        yield self._reconciled()
        yield self._dead_letters()

    def _reconciled(self) -> Metric:
        family = CounterMetricFamily("lockhook_reconciled_events", "Seam events listed by reconcile, by result "
                                     "(stored: missed by the webhook or not yet seen; duplicate: reconciled before)",
                                     labels=["result"])
        stats = int_hash(self.client.hgetall(keys.RECONCILE_STATS))
        for result in ("stored", "duplicate"):
            family.add_metric([result], stats.get(result, 0))
        return family

    def _dead_letters(self) -> Metric:
        gauge = GaugeMetricFamily("lockhook_inbox_dead_letters", "Inbox entries whose processing kept failing, "
                                  "kept for `lockhook inbox retry`")
        gauge.add_metric([], self.client.xlen(keys.INBOX_DEAD))
        return gauge

    def _notifications(self, stats: dict[str, int], failed_type: str) -> Iterator[Metric]:
        outcomes = CounterMetricFamily("lockhook_notifications", "Notifications by outcome (delivered, failed, "
                                       "retried, ... as counted by the notifications worker)", labels=["outcome"])
        for field, value in sorted(stats.items()):
            outcomes.add_metric([field], value)
        yield outcomes
        # every send attempt ends as exactly one of these (notification_store.finish), so they count attempts
        attempts = CounterMetricFamily("lockhook_notification_attempts", "Notification send attempts by result "
                                       "(retried: failed, another attempt is scheduled)", labels=["result"])
        for result in ("delivered", "retried", "failed"):
            attempts.add_metric([result], stats.get(result, 0))
        yield attempts
        failed = GaugeMetricFamily("lockhook_notifications_failed", "Notifications kept as failed (re-sendable)")
        failed.add_metric([], self._size(keys.NOTIFY_FAILED, failed_type))
        yield failed

    def _notification_targets(self, stats: dict[str, int], circuits: dict, due_index: list) -> Iterator[Metric]:
        """Per target: attempts by result, circuit state, due-set depth and the age of its oldest due record."""
        attempts = CounterMetricFamily("lockhook_notification_target_attempts", "Notification send attempts by "
                                       "target and result (delivered, retrying, failed)", labels=["target", "result"])
        for field, value in sorted(stats.items()):
            target, _, result = field.rpartition("|")
            attempts.add_metric([target, result], value)
        yield attempts
        circuit = GaugeMetricFamily("lockhook_notification_circuit", "Circuit breaker per target (0 closed, "
                                    "1 half-open, 2 open; as last recorded by a notifier)", labels=["target"])
        for label, raw in sorted(circuits.items()):
            circuit.add_metric([text(label)], circuit_state(raw))
        yield circuit
        now_ms = time.time() * 1000
        pipe = self.client.pipeline(transaction=False)
        for label, _ in due_index:
            pipe.zcount(keys.notify_due(text(label)), "-inf", now_ms)
        counts = pipe.execute() if due_index else []
        depth = GaugeMetricFamily("lockhook_notifications_due", "Notification records due now (not leased), by target",
                                  labels=["target"])
        age = GaugeMetricFamily("lockhook_notifications_due_oldest_age_seconds", "How long the oldest due record "
                                "of a target has waited (0 when none)", labels=["target"])
        for (label, score), count in zip(due_index, counts, strict=True):
            depth.add_metric([text(label)], count)
            age.add_metric([text(label)], max(0.0, (now_ms - score) / 1000) if count else 0.0)
        yield depth
        yield age

    def _size(self, key: str, kind: str) -> int:
        sizes = {"zset": self.client.zcard, "list": self.client.llen, "set": self.client.scard,
                 "hash": self.client.hlen, "stream": self.client.xlen}
        return sizes[kind](key) if kind in sizes else 0

    def _queues(self, rq_replies: list, outbox_len: int) -> Iterator[Metric]:
        now = time.time()
        depth = GaugeMetricFamily("lockhook_queue_depth", "Work waiting: RQ queues, the inbox stream "
                                  "(undelivered + unacknowledged), the outbox stream", labels=["queue"])
        age = GaugeMetricFamily("lockhook_queue_oldest_age_seconds", "Age of the oldest waiting job or entry "
                                "(0 when empty)", labels=["queue"])
        for i, name in enumerate(RQ_QUEUES):
            length, head = rq_replies[2 * i], rq_replies[2 * i + 1]
            depth.add_metric([name], length)
            age.add_metric([name], self._job_age(head, now) if head else 0.0)
        lag, pending, oldest_ms = self._inbox()
        depth.add_metric(["inbox"], lag + pending)
        age.add_metric(["inbox"], max(0.0, now - oldest_ms / 1000) if oldest_ms else 0.0)
        depth.add_metric(["outbox"], outbox_len)
        yield depth
        yield age
        lag_gauge = GaugeMetricFamily("lockhook_inbox_lag", "Inbox entries not yet read by any drain job")
        lag_gauge.add_metric([], lag)
        yield lag_gauge
        pending_gauge = GaugeMetricFamily("lockhook_inbox_pending", "Inbox entries read but not yet acknowledged")
        pending_gauge.add_metric([], pending)
        yield pending_gauge

    def _job_age(self, job_id, now: float) -> float:
        raw = self.client.hget(f"rq:job:{text(job_id)}", "enqueued_at")
        if not raw:
            return 0.0
        try:
            enqueued = datetime.fromisoformat(text(raw)).timestamp()
        except ValueError:
            return 0.0
        return max(0.0, now - enqueued)

    def _inbox(self) -> tuple[int, int, int | None]:
        """(lag, pending, oldest waiting entry ms) of the inbox consumer group."""
        try:
            groups = self.client.xinfo_groups(keys.INBOX)
        except ResponseError:  # no stream yet
            return 0, 0, None
        group = next((g for g in groups if text(g["name"]) == keys.INBOX_GROUP), None)
        if group is None:
            first = self.client.xrange(keys.INBOX, count=INBOX_SCAN_CAP)
            return len(first), 0, _stream_ms(first[0][0]) if first else None
        pending = int(group.get("pending") or 0)
        oldest: list[int] = []
        if pending:
            summary = self.client.xpending(keys.INBOX, keys.INBOX_GROUP)
            if summary.get("min"):
                oldest.append(_stream_ms(summary["min"]))
        last = text(group.get("last-delivered-id") or "0-0")
        lag = group.get("lag")
        if lag == 0:
            return 0, pending, min(oldest, default=None)
        undelivered = self.client.xrange(keys.INBOX, min="(" + last, count=INBOX_SCAN_CAP if lag is None else 1)
        if undelivered:
            oldest.append(_stream_ms(undelivered[0][0]))
        return (len(undelivered) if lag is None else int(lag)), pending, min(oldest, default=None)


def exposition_registry(client, multiproc_dir: str | None) -> CollectorRegistry:
    """A registry for one scrape: this process's (or, with a multiprocess dir, the host's) metrics + Redis's."""
    if multiproc_dir:
        from prometheus_client.multiprocess import MultiProcessCollector

        source = CollectorRegistry(auto_describe=False)
        MultiProcessCollector(source, path=multiproc_dir)
    else:
        source = REGISTRY
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Scrape(source, client))
    return registry


class _Scrape:
    """Process metrics first (the rejection counts are folded into `lockhook_deliveries`), then Redis's."""

    def __init__(self, source, client):
        self.source = source
        self.client = client

    def describe(self) -> Iterable[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        rejections: list[tuple[dict, float]] = []
        for family in self.source.collect():
            if family.name == "lockhook_webhook_rejections":
                rejections = [(s.labels, s.value) for s in family.samples if s.name.endswith("_total")]
                continue
            yield family
        yield from RedisCollector(self.client, rejections).collect()
