"""Notification records in Redis: one hash per (outcome, target), the failed set, and re-sending from the CLI.

A record holds what is needed to send again with the same `webhook-id` and the same bytes: target, URL
(for webhooks and callbacks; the Slack URL is a secret and is read from settings at send time), body,
status (queued, sending, retrying, delivered, failed), attempts of the current round, last error.
Each send is an RQ job on queue `notifications` whose id is derived from (notification, round, attempt).
Unfinished notifications sit in a zset scored by when they are overdue; the maintenance sweep re-queues
an attempt whose job was lost (a worker killed mid-send), so nothing waits forever.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from redis.exceptions import WatchError
from rq import Queue
from rq.exceptions import NoSuchJobError
from rq.job import Job, JobStatus
from rq.utils import now as rq_now

from lockhook import defaults, jobs, keys
from lockhook.clock import iso, now_ms
from lockhook.redis_client import text_hash

SEND_JOB = jobs.SEND_NOTIFICATION

QUEUED, SENDING, RETRYING, DELIVERED, FAILED = "queued", "sending", "retrying", "delivered", "failed"


def job_id(nid: str, round_: int, attempt: int) -> str:
    """Deterministic: enqueuing the same attempt twice names the same job."""
    return f"notify-{nid}-r{round_}-a{attempt}"


def queue(client) -> Queue:
    return Queue(defaults.QUEUE_NOTIFICATIONS, connection=client)


def job_timeout_s(timeout_s: float) -> int:
    """RQ's hard limit for one attempt (connect + send + read may each take up to the HTTP timeout)."""
    return math.ceil(timeout_s) * 3 + 5


def enqueue_send(client, nid: str, round_: int, attempt: int, *, pipeline, delay_s: float = 0,
                 timeout_s: float = 10.0) -> None:
    """Queue one send attempt (now or after a delay) inside the caller's transaction, and note when it is overdue."""
    options = dict(job_id=job_id(nid, round_, attempt), result_ttl=0, failure_ttl=7 * 24 * 3600,
                   job_timeout=job_timeout_s(timeout_s), pipeline=pipeline)
    due = time.time()
    if delay_s > 0:
        # RQ's scheduler keeps whole seconds (rounded down): round up so a Retry-After is never undercut
        due = math.ceil(due + delay_s)
        queue(client).enqueue_at(datetime.fromtimestamp(due, tz=UTC), SEND_JOB, nid, round_, attempt, **options)
    else:
        queue(client).enqueue(SEND_JOB, nid, round_, attempt, **options)
    pipeline.zadd(keys.NOTIFY_INFLIGHT, {nid: int((due + defaults.NOTIFY_RESUME_AFTER_S) * 1000)})


@dataclass
class Notification:
    """One (outcome, target) notification as stored."""

    id: str
    outcome: str
    outcome_id: str
    target: str
    label: str
    status: str
    attempts: int
    round: int
    body: str
    url: str | None = None
    command_id: str | None = None
    device_id: str | None = None
    last_error: str | None = None
    last_status_code: int | None = None
    created_at: str | None = None
    last_attempt_at: str | None = None
    delivered_at: str | None = None
    failed_at: str | None = None

    @classmethod
    def from_hash(cls, raw: dict) -> Notification:
        h = text_hash(raw)
        return cls(
            id=h["id"], outcome=h["outcome"], outcome_id=h.get("outcome_id", ""), target=h["target"],
            label=h.get("label", h["target"]), status=h.get("status", QUEUED), attempts=int(h.get("attempts") or 0),
            round=int(h.get("round") or 1), body=h.get("body", ""), url=h.get("url") or None,
            command_id=h.get("command_id") or None, device_id=h.get("device_id") or None,
            last_error=h.get("last_error") or None,
            last_status_code=int(h["last_status_code"]) if h.get("last_status_code") else None,
            created_at=iso(h.get("created_at")), last_attempt_at=iso(h.get("last_attempt_at")),
            delivered_at=iso(h.get("delivered_at")), failed_at=iso(h.get("failed_at")),
        )

    def public(self) -> dict:
        """What the CLI and dashboard show: never the URL (it may carry tokens), never the body."""
        return {k: getattr(self, k) for k in ("id", "outcome", "outcome_id", "target", "label", "status", "attempts",
                                              "round", "command_id", "device_id", "last_error", "last_status_code",
                                              "created_at", "last_attempt_at", "delivered_at", "failed_at")}


class NotificationStore:
    """Reads and writes notification records (sync client: workers and CLI)."""

    def __init__(self, client):
        self.redis = client

    def get(self, nid: str) -> Notification | None:
        raw = self.redis.hgetall(keys.notification(nid))
        return Notification.from_hash(raw) if raw else None

    def begin_attempt(self, nid: str, round_: int, attempt: int, timeout_s: float = 10.0) -> Notification | None:
        """Mark an attempt as sending; None when this job is stale (done, failed, or another round/attempt)."""
        key = keys.notification(nid)
        with self.redis.pipeline() as pipe:
            pipe.watch(key)
            raw = pipe.hgetall(key)
            if not raw:
                return None
            record = Notification.from_hash(raw)
            fresh = record.attempts == attempt - 1 and record.status in (QUEUED, RETRYING)
            rerun = record.attempts == attempt and record.status == SENDING  # its worker died mid-send
            if record.round != round_ or not (fresh or rerun):
                return None  # delivered, failed, or another round/attempt: this job is stale
            pipe.multi()
            pipe.hset(key, mapping={"status": SENDING, "attempts": attempt, "last_attempt_at": now_ms()})
            # past RQ's hard limit for this job, a record still `sending` means its worker died
            pipe.zadd(keys.NOTIFY_INFLIGHT, {nid: now_ms() + (job_timeout_s(timeout_s) + 5) * 1000})
            try:
                pipe.execute()
            except WatchError:  # a concurrent copy of this job got there first
                return None
        record.attempts, record.status = attempt, SENDING
        return record

    def finish(self, record: Notification, status: str, *, error: str | None = None, status_code: int | None = None,
               retry_in_s: float | None = None, timeout_s: float = 10.0) -> None:
        """Record an attempt's result (and queue the next attempt) in one transaction."""
        key = keys.notification(record.id)
        fields = {"status": status, "last_error": error or "", "last_status_code": status_code or ""}
        entry = {"kind": "notification", "notification_id": record.id, "type": record.outcome,
                 "target": record.label, "attempt": record.attempts, "round": record.round, "result": status,
                 "status_code": status_code, "error": error, "at": str(now_ms())}
        if retry_in_s is not None:
            entry["retry_in_s"] = round(retry_in_s, 3)
        with self.redis.pipeline(transaction=True) as pipe:
            pipe.multi()  # RQ's enqueue joins this transaction
            if status in (DELIVERED, FAILED):
                pipe.zrem(keys.NOTIFY_INFLIGHT, record.id)
            if status == DELIVERED:
                fields["delivered_at"] = now_ms()
                pipe.hincrby(keys.NOTIFY_STATS, "delivered", 1)
            elif status == FAILED:
                fields["failed_at"] = now_ms()
                pipe.zadd(keys.NOTIFY_FAILED, {record.id: now_ms()})
                pipe.hincrby(keys.NOTIFY_STATS, "failed", 1)
            elif status == RETRYING:
                pipe.hincrby(keys.NOTIFY_STATS, "retried", 1)
                enqueue_send(self.redis, record.id, record.round, record.attempts + 1, delay_s=retry_in_s or 0,
                             pipeline=pipe, timeout_s=timeout_s)
            pipe.hset(key, mapping=fields)
            if record.command_id:
                timeline = keys.command_timeline(record.command_id)
                pipe.rpush(timeline, json.dumps(entry))
                pipe.ltrim(timeline, -200, -1)
            pipe.execute()

    def failed(self, limit: int = 100) -> list[Notification]:
        """Failed notifications, newest first."""
        raw = self.redis.zrevrange(keys.NOTIFY_FAILED, 0, limit - 1)
        ids = [i.decode() if isinstance(i, bytes) else i for i in raw]
        return [n for n in map(self.get, ids) if n]

    def retry(self, nid: str, timeout_s: float = 10.0) -> bool:
        """Send a failed notification again (same id and body, a new round of attempts); False if not failed."""
        key = keys.notification(nid)
        with self.redis.pipeline() as pipe:
            pipe.watch(key)
            raw = pipe.hgetall(key)
            if not raw or Notification.from_hash(raw).status != FAILED:
                pipe.unwatch()
                if not raw:
                    self.redis.zrem(keys.NOTIFY_FAILED, nid)  # the record expired: nothing left to send
                return False
            round_ = Notification.from_hash(raw).round + 1
            pipe.multi()
            pipe.hset(key, mapping={"status": QUEUED, "attempts": 0, "round": round_})
            pipe.expire(key, defaults.NOTIFY_GUARD_TTL_S)
            pipe.zrem(keys.NOTIFY_FAILED, nid)
            enqueue_send(self.redis, nid, round_, 1, pipeline=pipe, timeout_s=timeout_s)
            try:
                pipe.execute()
            except WatchError:  # retried concurrently
                return False
        return True

    def retry_all(self, timeout_s: float = 10.0) -> list[str]:
        ids = [i.decode() if isinstance(i, bytes) else i for i in self.redis.zrange(keys.NOTIFY_FAILED, 0, -1)]
        return [nid for nid in ids if self.retry(nid, timeout_s)]

    def resume_overdue(self, timeout_s: float = 10.0, limit: int = 100) -> list[str]:
        """Re-queue attempts whose job was lost (worker killed mid-send, job failed, queue lost); returns their ids.

        A record still `sending` past its job's hard limit had its worker die: the same attempt runs again
        (same `webhook-id`). A queued attempt is re-queued only when RQ no longer has its job waiting.
        """
        overdue = self.redis.zrangebyscore(keys.NOTIFY_INFLIGHT, 0, now_ms(), start=0, num=limit)
        resumed = []
        for raw_id in overdue:
            nid = raw_id.decode() if isinstance(raw_id, bytes) else raw_id
            if self._resume(nid, timeout_s):
                resumed.append(nid)
        return resumed

    def _resume(self, nid: str, timeout_s: float) -> bool:
        key = keys.notification(nid)
        with self.redis.pipeline() as pipe:
            pipe.watch(key, keys.NOTIFY_INFLIGHT)
            raw = pipe.hgetall(key)
            score = pipe.zscore(keys.NOTIFY_INFLIGHT, nid)
            if score is None or score > now_ms():
                return False  # handled meanwhile
            record = Notification.from_hash(raw) if raw else None
            if record is None or record.status in (DELIVERED, FAILED):
                pipe.multi()
                pipe.zrem(keys.NOTIFY_INFLIGHT, nid)
                pipe.execute()
                return False
            attempt = record.attempts if record.status == SENDING else record.attempts + 1
            if record.status != SENDING and self._job_waiting(job_id(nid, record.round, attempt)):
                pipe.multi()  # a long queue, not a lost job: look again later
                pipe.zadd(keys.NOTIFY_INFLIGHT, {nid: now_ms() + defaults.NOTIFY_RESUME_AFTER_S * 1000})
                pipe.execute()
                return False
            pipe.multi()  # for a `sending` record, begin_attempt's rerun path sends this attempt again
            enqueue_send(self.redis, nid, record.round, attempt, pipeline=pipe, timeout_s=timeout_s)
            try:
                pipe.execute()
            except WatchError:
                return False
        return True

    def _job_waiting(self, jid: str) -> bool:
        try:
            job = Job.fetch(jid, connection=self.redis)
        except NoSuchJobError:
            return False
        status = job.get_status()
        if status == JobStatus.STARTED and job.started_at and job.timeout:
            # started longer ago than its hard limit: its worker lost it (e.g. a Redis outage cut the job off),
            # RQ only declares that later, when it cleans its registry
            return (rq_now() - job.started_at).total_seconds() <= job.timeout + 5
        return status in (JobStatus.QUEUED, JobStatus.SCHEDULED, JobStatus.DEFERRED, JobStatus.STARTED)
