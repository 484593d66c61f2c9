"""Commands and their store in Redis: register, attach ids, look up, list, and non-event transitions.

Every state change is one Lua script (lockhook/lua), so a command leaves `pending` exactly once.
"""

from __future__ import annotations

import json
import logging
import re
import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, PrivateAttr

from lockhook import defaults, jobs, keys
from lockhook.clock import iso, now_ms
from lockhook.redis_client import text, text_hash
from lockhook.scripts import Scripts


class CommandStatus(StrEnum):
    PENDING = "pending"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    TIMED_OUT = "timed_out"
    REJECTED = "rejected"


class Action(StrEnum):
    LOCK = "lock"
    UNLOCK = "unlock"


class Via(StrEnum):
    SEAM = "seam"
    DEVICE_CLOUD = "device_cloud"
    EXTERNAL = "external"


ID_KINDS = ("custom_id", "action_id", "action_attempt_id")

log = logging.getLogger("lockhook.commands")

_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def has_lone_surrogate(value: str) -> bool:
    """True for text Python's JSON parser accepts (`"\\ud800"`) but UTF-8 cannot encode: never stored."""
    return _LONE_SURROGATE.search(value) is not None


def scrub(value: str) -> str:
    """Text with lone surrogates replaced by U+FFFD, so it can be encoded, stored and echoed."""
    return _LONE_SURROGATE.sub("\ufffd", value)


METADATA_MAX_DEPTH = 32
"""Deepest nesting of a command's `metadata` (the serialiser that renders a command stops at 255)."""


def json_depth(value: Any) -> int:
    """How deeply objects and arrays nest in a parsed JSON value (a scalar is 0); iterative."""
    deepest, stack = 0, [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            depth += 1
            deepest = max(deepest, depth)
            stack.extend((child, depth) for child in (item.values() if isinstance(item, dict) else item))
    return deepest


def stored_json(raw: str | None, command_id: str = "") -> Any:
    """A stored JSON field, read so that a bad record never makes a read route fail: unparseable or
    too deep reads as None, lone surrogates (which UTF-8 cannot encode) read as U+FFFD."""
    if not raw:
        return None
    try:
        value = json.loads(raw)
        rendered = json.dumps(value, ensure_ascii=False)
        readable = json_depth(value) <= METADATA_MAX_DEPTH
    except (ValueError, RecursionError):
        readable = False
    if not readable:
        log.warning("unreadable JSON in a stored command", extra={"command_id": command_id})
        return None
    return json.loads(scrub(rendered)) if has_lone_surrogate(rendered) else value


class ResolvedVia(StrEnum):
    """What confirmed (or refused) a command: its webhook, polling Seam, the issuer's own answer, or an event
    found later in Seam's event list."""

    WEBHOOK = "webhook"
    POLL = "poll"
    ISSUER = "issuer"
    RECONCILE = "reconcile"


def resolution(resolved_by: str | None, resolved_via: str | None) -> tuple[str | None, ResolvedVia | None]:
    """(resolved_by, resolved_via) as the API shows them, also for commands stored before `resolved_via`
    existed, whose `resolved_by` was "event:<id>" or "delivery:<endpoint>:<id>"."""
    by = resolved_by or None
    if by and by.startswith("event:"):
        by, resolved_via = by.removeprefix("event:"), resolved_via or ResolvedVia.WEBHOOK
    elif by and by.startswith("delivery:"):
        by, resolved_via = by.split(":", 2)[-1], resolved_via or ResolvedVia.WEBHOOK
    elif by in (ResolvedVia.POLL, ResolvedVia.ISSUER) and not resolved_via:
        resolved_via = by
    try:
        return by, ResolvedVia(resolved_via) if resolved_via else None
    except ValueError:
        return by, None


class Command(BaseModel):
    """A lock/unlock command as the API shows it."""

    command_id: str
    device_id: str
    action: Action
    via: Via
    status: CommandStatus
    custom_id: str | None = None
    action_id: str | None = None
    action_attempt_id: str | None = None
    error_code: str | None = None
    error_message: str | None = None
    performed_via: str | None = None
    method: str | None = None
    created_at: str
    deadline_at: str
    resolved_at: str | None = None
    resolved_by: str | None = None
    resolved_via: ResolvedVia | None = None
    late: bool = False
    metadata: dict[str, Any] | None = None
    callback_url: str | None = None

    # what the command was registered with; compared on a repeat, never shown
    _idempotency_key: str | None = PrivateAttr(None)
    _request_fingerprint: str | None = PrivateAttr(None)

    @property
    def idempotency_key(self) -> str | None:
        return self._idempotency_key

    @property
    def request_fingerprint(self) -> str | None:
        """A digest of the request that created it (None for commands not created by the API)."""
        return self._request_fingerprint

    @property
    def latency_ms(self) -> int | None:
        if not self.resolved_at:
            return None
        parse = datetime.fromisoformat
        return int((parse(self.resolved_at) - parse(self.created_at)).total_seconds() * 1000)

    @classmethod
    def from_hash(cls, raw: dict) -> Command:
        h = text_hash(raw)
        resolved_by, resolved_via = resolution(h.get("resolved_by"), h.get("resolved_via"))
        command = cls(
            command_id=h["command_id"], device_id=h["device_id"], action=h["action"], via=h["via"],
            status=h["status"],
            **{k: h.get(k) or None for k in (*ID_KINDS, "error_code", "error_message", "performed_via",
                                              "method", "callback_url")},
            resolved_by=resolved_by, resolved_via=resolved_via,
            created_at=iso(h["created_at"]), deadline_at=iso(h["deadline_at"]),
            resolved_at=iso(h.get("resolved_at")), late=h.get("late") == "1",
            metadata=stored_json(h.get("metadata"), h["command_id"]),
        )
        command._idempotency_key = h.get("idempotency_key") or None
        command._request_fingerprint = h.get("request_fingerprint") or None
        return command


class CommandStore:
    """The Python API over the command keys; sync (web handlers call it in a thread)."""

    def __init__(self, client):
        self.redis = client
        self.scripts = Scripts(client)

    # -- writes -------------------------------------------------------------------------------
    def register(self, device_id: str, action: str, via: str, custom_id: str | None = None,
                 action_id: str | None = None, action_attempt_id: str | None = None,
                 timeout_s: float = defaults.DEFAULT_COMMAND_TIMEOUT_S, callback_url: str | None = None,
                 metadata: dict | None = None, *, status: str = CommandStatus.PENDING,
                 error_code: str | None = None, error_message: str | None = None,
                 idempotency_key: str | None = None, request_fingerprint: str | None = None,
                 schedule_expiry: bool = True) -> tuple[Command, bool]:
        """Create a command (or return the existing one for the same custom_id / ids / key).

        Returns (command, created). A pending command whose events arrived first resolves at once.
        The key and `request_fingerprint` are kept with the command so a repeat can be compared.
        """
        created = now_ms()
        fields = {
            "command_id": "cmd_" + uuid.uuid4().hex, "device_id": device_id, "action": Action(action).value,
            "via": Via(via).value, "status": CommandStatus(status).value, "custom_id": custom_id,
            "action_id": action_id, "action_attempt_id": action_attempt_id, "created_at": created,
            "deadline_at": created + int(timeout_s * 1000), "callback_url": callback_url,
            "metadata": json.dumps(metadata) if metadata is not None else None,
            "error_code": error_code, "error_message": error_message, "late": "0",
            "idempotency_key": idempotency_key, "request_fingerprint": request_fingerprint,
        }
        if status != CommandStatus.PENDING:
            fields.update(resolved_at=created, resolved_by="issuer", resolved_via=ResolvedVia.ISSUER.value)
        body = json.dumps({k: str(v) for k, v in fields.items() if v not in (None, "")})
        kind, command_id, _ = self.scripts.register(
            args=Scripts.args(created, body, idempotency_key or ""))
        command_id, is_new = text(command_id), text(kind) == "created"
        command = self.get(command_id)
        if is_new and schedule_expiry and command.status == CommandStatus.PENDING:
            jobs.schedule_expiry(self.redis, command_id, fields["deadline_at"])
        return command, is_new

    def _transition(self, op: str, command_id: str, *rest) -> str:
        status, outcome = self.scripts.transition(args=Scripts.args(now_ms(), op, command_id, *rest))
        return text(outcome) if outcome else ""

    def attach_ids(self, command_id: str, action_id: str | None = None,
                   action_attempt_id: str | None = None, custom_id: str | None = None) -> Command | None:
        """Record ids learned after registration; events parked under them resolve the command now."""
        ids = {k: v for k, v in (("action_id", action_id), ("action_attempt_id", action_attempt_id),
                                  ("custom_id", custom_id)) if v}
        self._transition("attach", command_id, json.dumps(ids))
        return self.get(command_id)

    def expire(self, command_id: str) -> str:
        """Time out a pending command whose deadline has passed; returns the outcome or ''."""
        return self._transition("expire", command_id)

    def reject(self, command_id: str, error_code: str, message: str = "") -> str:
        return self._transition("reject", command_id, error_code, message)

    def record_result(self, command_id: str, succeeded: bool, error_code: str | None = None,
                      message: str | None = None, resolved_by: str = "poll", resolved_via: str | None = None) -> str:
        """Resolve from a source other than an event (e.g. polling Seam); loses cleanly to a webhook.

        `resolved_via` defaults to `resolved_by` when that is `poll` or `issuer`.
        """
        status = CommandStatus.SUCCEEDED if succeeded else CommandStatus.FAILED
        via = resolved_via or (resolved_by if resolved_by in (ResolvedVia.POLL, ResolvedVia.ISSUER) else "")
        return self._transition("result", command_id, status.value, error_code or "", message or "", resolved_by,
                                via)

    def discard(self, command_id: str) -> None:
        """Forget a pending command that was never issued (the issuer could not be reached)."""
        self._transition("discard", command_id)

    # -- reads --------------------------------------------------------------------------------
    def get(self, command_id: str) -> Command | None:
        raw = self.redis.hgetall(keys.command(command_id))
        return Command.from_hash(raw) if raw else None

    def _by_index(self, kind: str, value: str) -> Command | None:
        command_id = self.redis.get(keys.id_index(kind, value))
        return self.get(text(command_id)) if command_id else None

    def by_custom_id(self, value: str) -> Command | None:
        return self._by_index("custom_id", value)

    def by_action_attempt_id(self, value: str) -> Command | None:
        return self._by_index("action_attempt_id", value)

    def list(self, device_id: str | None = None, status: str | None = None, limit: int = 50) -> list[Command]:
        """Newest first, optionally filtered by device and status."""
        if status == CommandStatus.PENDING and device_id is None:
            ids = self.redis.zrange(keys.DEADLINES, 0, limit - 1)
            found = [c for c in map(self.get, (i.decode() for i in ids)) if c]
            return sorted(found, key=lambda c: c.created_at, reverse=True)
        index = keys.device_commands(device_id) if device_id else keys.COMMANDS
        found: list[Command] = []
        start, page = 0, max(limit, 100)
        while len(found) < limit:
            ids = self.redis.zrevrange(index, start, start + page - 1)
            if not ids:
                break
            pipe = self.redis.pipeline(transaction=False)
            for command_id in ids:
                pipe.hgetall(keys.command(command_id.decode()))
            for raw in pipe.execute():
                if raw:
                    command = Command.from_hash(raw)
                    if status is None or command.status == status:
                        found.append(command)
            start += page
            if start > 20_000:  # bound the scan for rare statuses
                break
        return found[:limit]

    def page(self, device_id: str | None = None, status: str | None = None, limit: int = 50,
             cursor: str | None = None) -> tuple[list[Command], str | None]:
        """Newest first, from `cursor` on; (commands, next cursor or None at the end). Raises BadCursor."""
        from lockhook.paging import page

        index = keys.device_commands(device_id) if device_id else keys.COMMANDS

        def keep(ids: list[str]) -> list[Command | None]:
            pipe = self.redis.pipeline(transaction=False)
            for command_id in ids:
                pipe.hgetall(keys.command(command_id))
            commands = [Command.from_hash(raw) if raw else None for raw in pipe.execute()]
            return [c if c is not None and (status is None or c.status == status) else None for c in commands]

        return page(self.redis, index, cursor, limit, keep)

    def timeline(self, command_id: str) -> list[dict]:
        return [json.loads(x) for x in self.redis.lrange(keys.command_timeline(command_id), 0, -1)]

    def overdue(self, now: int | None = None, limit: int = 500) -> list[str]:
        """Pending commands whose deadline has passed (for the sweep)."""
        ids = self.redis.zrangebyscore(keys.DEADLINES, 0, now or now_ms(), start=0, num=limit)
        return [i.decode() for i in ids]
