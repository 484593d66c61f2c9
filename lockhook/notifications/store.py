"""Notification records in Redis and the four scripts that move them: create, lease, finish, retry.

A record `lh:ntf:<id>` holds what is needed to send again with the same `webhook-id` and bytes: target,
URL (the Slack URL is a secret, read from settings at send time), body, status, attempts of the current
round, last error. Each target has a due set (id -> when to send) and the index `lh:notifications:due`
(target -> its earliest score), so the sender takes work per target without scanning another's backlog.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields

from lockhook import defaults, keys
from lockhook.clock import iso, now_ms
from lockhook.redis_client import text, text_hash

QUEUED, SENDING, RETRYING, DELIVERED, FAILED = "queued", "sending", "retrying", "delivered", "failed"

CREATE = """-- KEYS: record, due set, index; ARGV: id, ttl, now, label, field, value, ...
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV, 5))
redis.call('EXPIRE', KEYS[1], ARGV[2])
redis.call('ZADD', KEYS[2], 'NX', ARGV[3], ARGV[1])
redis.call('ZADD', KEYS[3], 'LT', ARGV[3], ARGV[4])
return 1"""

LEASE = """-- KEYS: index (a target's score is at most its earliest record's; made exact here);
-- ARGV: now, lease until, limit, token, default cap, record prefix, due prefix, reclaim, then label, free, ...
local now, limit, free, out = tonumber(ARGV[1]), tonumber(ARGV[3]), {}, {}
for i = 9, #ARGV, 2 do free[ARGV[i]] = tonumber(ARGV[i + 1]) end
if ARGV[8] == '1' then  -- a lease reply was lost: what this token holds comes back to it
  for _, label in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
    for _, id in ipairs(redis.call('ZRANGEBYSCORE', ARGV[7] .. label, '(' .. now, '+inf')) do
      local key = ARGV[6] .. id
      if redis.call('HGET', key, 'lease') == ARGV[4] then out[#out + 1] = redis.call('HGETALL', key) end
    end
  end
end
for _, label in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, 1000)) do
  local n = math.min(free[label] or tonumber(ARGV[5]), limit - #out)
  if n > 0 then
    local due = ARGV[7] .. label
    for _, id in ipairs(redis.call('ZRANGEBYSCORE', due, '-inf', now, 'LIMIT', 0, n)) do
      local key = ARGV[6] .. id
      local status = redis.call('HGET', key, 'status')
      if status == false or status == 'delivered' or status == 'failed' then
        redis.call('ZREM', due, id)
      else
        redis.call('ZADD', due, ARGV[2], id)
        redis.call('HSET', key, 'status', 'sending', 'lease', ARGV[4])
        out[#out + 1] = redis.call('HGETALL', key)
      end
    end
    local first = redis.call('ZRANGE', due, 0, 0, 'WITHSCORES')
    if first[1] then redis.call('ZADD', KEYS[1], first[2], label) else redis.call('ZREM', KEYS[1], label) end
  end
  if #out >= limit then break end
end
return out"""

FINISH = """-- KEYS: record, due set, index, failed, stats, target stats, timeline or '';
-- ARGV: token, id, status, now, next due, error, status code, label, stats field, timeline entry
if redis.call('HGET', KEYS[1], 'lease') ~= ARGV[1] then return 0 end
redis.call('HINCRBY', KEYS[1], 'attempts', 1)
redis.call('HSET', KEYS[1], 'status', ARGV[3], 'lease', '', 'last_attempt_at', ARGV[4], 'last_error', ARGV[6],
           'last_status_code', ARGV[7])
if ARGV[3] == 'retrying' then
  redis.call('ZADD', KEYS[2], ARGV[5], ARGV[2])
  redis.call('ZADD', KEYS[3], 'LT', ARGV[5], ARGV[8])
else
  redis.call('ZREM', KEYS[2], ARGV[2])
  redis.call('HSET', KEYS[1], ARGV[3] .. '_at', ARGV[4])
  if ARGV[3] == 'failed' then redis.call('ZADD', KEYS[4], ARGV[4], ARGV[2]) end
end
redis.call('HINCRBY', KEYS[5], ARGV[9], 1)
redis.call('HINCRBY', KEYS[6], ARGV[8] .. '|' .. ARGV[3], 1)
if KEYS[7] ~= '' then
  redis.call('RPUSH', KEYS[7], ARGV[10])
  redis.call('LTRIM', KEYS[7], -200, -1)
end
return 1"""

RETRY = """-- KEYS: record, failed, index, due prefix; ARGV: id, now, ttl
local label, status = unpack(redis.call('HMGET', KEYS[1], 'label', 'status'))
if not status then redis.call('ZREM', KEYS[2], ARGV[1]) return 0 end
if status ~= 'failed' then return 0 end
redis.call('HINCRBY', KEYS[1], 'round', 1)
redis.call('HSET', KEYS[1], 'status', 'queued', 'attempts', 0, 'lease', '')
redis.call('EXPIRE', KEYS[1], ARGV[3])
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('ZADD', KEYS[4] .. label, ARGV[2], ARGV[1])
redis.call('ZADD', KEYS[3], 'LT', ARGV[2], label)
return 1"""


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
    def from_hash(cls, raw: dict | list) -> Notification:
        """From HGETALL (or a script's flat field, value, ... reply)."""
        h = text_hash(dict(zip(raw[::2], raw[1::2], strict=True)) if isinstance(raw, list) else raw)
        values = {f.name: h.get(f.name) or None for f in fields(cls)}
        for name in ("attempts", "round", "last_status_code"):
            values[name] = int(values[name]) if values[name] else None
        for name in ("created_at", "last_attempt_at", "delivered_at", "failed_at"):
            values[name] = iso(values[name])
        return cls(**{**values, "outcome_id": values["outcome_id"] or "", "label": values["label"] or h["target"],
                      "status": values["status"] or QUEUED, "attempts": values["attempts"] or 0,
                      "round": values["round"] or 1, "body": values["body"] or ""})

    def public(self) -> dict:
        """What the CLI and dashboard show: never the URL (it may carry tokens), never the body."""
        return {k: v for k, v in asdict(self).items() if k not in ("url", "body")}


def create(script, pipe, record: dict) -> None:
    """Queue the creation of one record on a pipeline: a no-op when the record exists (the guard)."""
    fields = [x for pair in record.items() for x in pair]
    script(keys=[keys.notification(record["id"]), keys.notify_due(record["label"]), keys.NOTIFY_DUE],
           args=[record["id"], defaults.NOTIFY_GUARD_TTL_S, now_ms(), record["label"], *fields], client=pipe)


def lease_args(now: int, lease_until: int, limit: int, token: str, caps: dict[str, int],
               default_cap: int = defaults.NOTIFY_TARGET_CONCURRENCY, reclaim: bool = False) -> list:
    """LEASE's arguments: at most `limit` records, per target its `caps` entry or else `default_cap`; with
    `reclaim`, also the records already leased under `token` (after a call whose reply was lost)."""
    flat = [x for pair in caps.items() for x in pair]
    return [now, lease_until, limit, token, default_cap, keys.notification(""), keys.notify_due(""), int(reclaim),
            *flat]


def make_due(client, nid: str, label: str) -> None:
    """Put a record in its target's due set now (if it is not there yet)."""
    client.zadd(keys.notify_due(label), {nid: now_ms()}, nx=True)
    client.zadd(keys.NOTIFY_DUE, {label: now_ms()}, lt=True)


def finish(script, pipe, token: str, record: Notification, status: str, *, attempt: int,
           error: str | None = None, status_code: int | None = None, retry_in_s: float | None = None):
    """Queue the result of one attempt on a pipeline (ignored if the lease was lost to another sender)."""
    now = now_ms()
    next_due = now + int((retry_in_s or 0) * 1000)
    entry = {"kind": "notification", "notification_id": record.id, "type": record.outcome, "target": record.label,
             "attempt": attempt, "round": record.round, "result": status, "status_code": status_code,
             "error": error, "at": str(now)}
    if retry_in_s is not None:
        entry["retry_in_s"] = round(retry_in_s, 3)
    stat = {DELIVERED: "delivered", FAILED: "failed"}.get(status, "retried")
    timeline = keys.command_timeline(record.command_id) if record.command_id else ""
    return script(keys=[keys.notification(record.id), keys.notify_due(record.label), keys.NOTIFY_DUE,
                        keys.NOTIFY_FAILED, keys.NOTIFY_STATS, keys.NOTIFY_TARGET_STATS, timeline],
                  args=[token, record.id, status, now, next_due, error or "", status_code or "", record.label,
                        stat, json.dumps(entry)], client=pipe)


class NotificationStore:
    """Reads failed records and re-sends them (sync client: CLI and dashboard)."""

    def __init__(self, client):
        self.redis = client

    def get(self, nid: str) -> Notification | None:
        raw = self.redis.hgetall(keys.notification(nid))
        return Notification.from_hash(raw) if raw else None

    def failed(self, limit: int = 100) -> list[Notification]:
        """Failed notifications, newest first."""
        ids = [text(i) for i in self.redis.zrevrange(keys.NOTIFY_FAILED, 0, limit - 1)]
        return [n for n in map(self.get, ids) if n]

    def retry(self, nid: str) -> bool:
        """Send a failed notification again (same id and body, a new round of attempts); False if not failed."""
        script = self.redis.register_script(RETRY)
        return bool(script(keys=[keys.notification(nid), keys.NOTIFY_FAILED, keys.NOTIFY_DUE, keys.notify_due("")],
                           args=[nid, now_ms(), defaults.NOTIFY_GUARD_TTL_S]))

    def retry_all(self) -> list[str]:
        return [nid for nid in (text(i) for i in self.redis.zrange(keys.NOTIFY_FAILED, 0, -1)) if self.retry(nid)]
