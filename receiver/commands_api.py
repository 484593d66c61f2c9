"""The commands API: issue, register and await lock/unlock commands; read lock state.

POST /commands reserves the command in Redis (pending, idempotent on custom_id / Idempotency-Key)
BEFORE calling Seam or the device cloud, so a repeated request never reaches a device twice. The
remote's answer then attaches its ids (rejected on a refusal; discarded, 502, when unreachable).
Everything it would store is checked first: ids match lockhook.ids, no text holds a lone surrogate,
and a key or custom_id first used for another request is refused (422 idempotency_key_reused).
GET /commands/{id}?wait=N joins the process's subscription to command resolutions first, re-reads it,
then waits.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import math
from collections.abc import Callable
from typing import Annotated, Any, TypeVar

import anyio
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, field_validator
from redis.exceptions import RedisError
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from lockhook import defaults, jobs
from lockhook.commands import issuing
from lockhook.commands.store import (
    METADATA_MAX_DEPTH,
    Action,
    Command,
    CommandStatus,
    CommandStore,
    Via,
    has_lone_surrogate,
    json_depth,
)
from lockhook.errors import (
    CallbackUrlRefused,
    IdempotencyKeyReused,
    LockhookError,
    NotFound,
    StorageUnavailable,
    UpstreamError,
    ValidationFailed,
)
from lockhook.ids import ID_PATTERN, is_id
from lockhook.notifications.callback_policy import check_callback_url
from receiver.auth import protected
from receiver.body import read_body
from receiver.resolutions import await_command, read_command

log = logging.getLogger("lockhook.commands_api")

BODY_MAX_BYTES = 65_536
"""Largest POST /commands body."""

METADATA_MAX_BYTES = 8_192
"""Largest `metadata` object, JSON-encoded."""

MAX_TIMEOUT_S = 24 * 3600
"""Longest `timeout_s` a command may ask for."""

LIST_MAX = 500
"""Most commands one GET /commands returns."""

Id = Annotated[str, Field(pattern=ID_PATTERN)]
"""Device, custom, action and attempt ids (lockhook.ids)."""

IDEMPOTENCY_KEY = TypeAdapter(Annotated[str, Field(pattern=r"^[\x21-\x7e]{1,200}$")])
"""An Idempotency-Key: 1-200 printable ASCII characters, no spaces (the caller's choice, so wider than an id)."""

T = TypeVar("T")


class CommandRequest(BaseModel):
    """Body of POST /commands."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    device_id: Id
    action: Action
    via: Via = Field(description="seam: Seam SDK (SEAM_API_KEY); device_cloud: DEVICE_CLOUD_URL; "
                                 "external: already issued by the caller, who gives the ids")
    custom_id: Id | None = None
    action_id: Id | None = None
    action_attempt_id: Id | None = None
    timeout_s: float | None = Field(None, gt=0, le=MAX_TIMEOUT_S)
    callback_url: str | None = Field(None, min_length=1, max_length=2048,
                                     description="http(s); internal addresses refused unless in NOTIFY_ALLOWED_HOSTS")
    metadata: dict[str, Any] | None = None

    @field_validator("metadata")
    @classmethod
    def _small_metadata(cls, value: dict | None) -> dict | None:
        if value is not None and json_depth(value) > METADATA_MAX_DEPTH:
            raise ValueError(f"must nest at most {METADATA_MAX_DEPTH} levels deep")
        if value is not None and len(json.dumps(value)) > METADATA_MAX_BYTES:
            raise ValueError(f"must be at most {METADATA_MAX_BYTES} bytes as JSON")
        return value


def field_errors(exc: ValidationError, prefix: str) -> list[dict]:
    """Pydantic errors as `{loc, msg, type}` (no input echoed back, nothing unserialisable)."""
    return [{"loc": [prefix, *err["loc"]], "msg": err["msg"], "type": err["type"]} for err in exc.errors()]


def invalid(prefix: str, field: str | None, msg: str, kind: str = "value_error") -> ValidationFailed:
    loc = [prefix, field] if field else [prefix]
    return ValidationFailed(msg, errors=[{"loc": loc, "msg": msg, "type": kind}])


UNICODE_ERROR = {"msg": "must be valid Unicode text (no lone surrogate escapes)", "type": "string_unicode"}
FINITE_ERROR = {"msg": "must be a finite number", "type": "finite_number"}


def unstorable_errors(data: Any, prefix: str) -> list[dict]:
    """Field errors for values Python's JSON parser accepts but that cannot be stored and echoed back.

    A lone surrogate escape (`"\\ud800"`, in any string or object key, at any depth) cannot be encoded
    as UTF-8, and `1e400` parses as infinity, which JSON cannot say. Iterative: deep nesting is no risk.
    """
    errors, stack = [], [([prefix], data)]
    while stack:
        loc, value = stack.pop()
        problem = None
        if isinstance(value, str):
            problem = UNICODE_ERROR if has_lone_surrogate(value) else None
        elif isinstance(value, float):
            problem = None if math.isfinite(value) else FINITE_ERROR
        elif isinstance(value, dict):
            problem = UNICODE_ERROR if any(has_lone_surrogate(key) for key in value) else None
            stack.extend(([*loc, key], item) for key, item in value.items() if not has_lone_surrogate(key))
        elif isinstance(value, list):
            stack.extend(([*loc, n], item) for n, item in enumerate(value))
        if problem:
            errors.append({"loc": loc, **problem})
    return errors


def not_found_unless_id(value: str, what: str) -> str:
    """A path id outside the id pattern names nothing: 404 before any key is built from it."""
    if not is_id(value):
        raise NotFound(f"no {what} with that id")
    return value


async def in_thread(fn: Callable[..., T], *args, **kwargs) -> T:
    """Run a blocking call (Redis sync client, SDK, DNS) off the event loop; Redis failures become 503."""
    try:
        return await anyio.to_thread.run_sync(lambda: fn(*args, **kwargs))
    except (RedisError, ConnectionError) as exc:
        log.warning("redis unavailable in commands API: %s", type(exc).__name__)
        raise StorageUnavailable("command store unavailable; retry later") from None


def store(request: Request) -> CommandStore:
    state = request.app.state
    found = getattr(state, "command_store", None)
    if found is None or found.redis is not state.sync_redis:  # a new lifespan has new clients
        found = state.command_store = CommandStore(state.sync_redis)
    return found


def command_json(command: Command) -> dict:
    return command.model_dump(mode="json")


# -- POST /commands --------------------------------------------------------------------------------

async def _parse_command(request: Request) -> CommandRequest:
    raw = await read_body(request, BODY_MAX_BYTES)
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError):
        raise invalid("body", None, "body must be a JSON object", "json_invalid") from None
    if not isinstance(data, dict):
        raise invalid("body", None, "body must be a JSON object", "model_type")
    if errors := unstorable_errors(data, "body"):
        raise ValidationFailed("invalid command", errors=errors)
    try:
        return CommandRequest.model_validate(data)
    except ValidationError as exc:
        raise ValidationFailed("invalid command", errors=field_errors(exc, "body")) from None


def request_fingerprint(body: CommandRequest) -> str:
    """A digest of what was asked (omitted and null fields alike), kept with the command it created."""
    canonical = json.dumps(body.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def check_same_request(existing: Command, body: CommandRequest, idem: str | None, fingerprint: str) -> None:
    """Stripe's rule: a key names one request. The same Idempotency-Key with another body, or a
    custom_id (action_id, action_attempt_id) already used for another device, action or issuer, is 422."""
    if idem is not None and existing.idempotency_key == idem and existing.request_fingerprint:
        if existing.request_fingerprint != fingerprint:
            raise IdempotencyKeyReused(
                "this Idempotency-Key was used for a different request",
                errors=[{"loc": ["header", "Idempotency-Key"], "msg": "already used with a different body",
                         "type": "idempotency_key_reused"}])
        return
    if (existing.device_id, existing.action, existing.via) == (body.device_id, body.action, body.via):
        return
    field = next((f for f in ("custom_id", "action_id", "action_attempt_id")
                  if getattr(body, f) is not None and getattr(existing, f) == getattr(body, f)), None)
    loc = ["body", field] if field else ["header", "Idempotency-Key"]
    raise IdempotencyKeyReused(
        f"this {field or 'Idempotency-Key'} already names a command for another device, action or issuer",
        errors=[{"loc": loc, "msg": "already used for another device, action or issuer",
                 "type": "idempotency_key_reused"}])


def _idempotency_key(request: Request) -> str | None:
    value = request.headers.get("idempotency-key")
    if value is None:
        return None
    try:
        return IDEMPOTENCY_KEY.validate_python(value)
    except ValidationError:
        raise invalid("header", "Idempotency-Key", "must be 1-200 printable ASCII characters without spaces") from None


async def _check_callback(url: str, settings) -> None:
    """The SSRF policy (DNS included, so in a thread); its refusal becomes a field error on callback_url."""
    try:
        await anyio.to_thread.run_sync(check_callback_url, url, settings)
    except CallbackUrlRefused as exc:
        exc.details.setdefault("errors", [{"loc": ["body", "callback_url"], "msg": exc.message, "type": exc.code}])
        raise


def _check_issuer(settings, body: CommandRequest) -> None:
    if body.via == Via.SEAM and settings.seam_api_key is None:
        raise issuing.IssuerNotConfigured("seam", "SEAM_API_KEY")
    if body.via == Via.DEVICE_CLOUD and not settings.device_cloud_url:
        raise issuing.IssuerNotConfigured("device_cloud", "DEVICE_CLOUD_URL")


async def create_command(request: Request) -> JSONResponse:
    settings = request.app.state.settings
    idem = _idempotency_key(request)
    body = await _parse_command(request)
    _check_issuer(settings, body)
    if body.callback_url is not None:
        await _check_callback(body.callback_url, settings)
    fingerprint = request_fingerprint(body)
    custom_id = body.custom_id
    if body.via == Via.DEVICE_CLOUD and not custom_id:
        custom_id = issuing.new_custom_id()
    commands = store(request)
    command, created = await in_thread(
        commands.register, body.device_id, body.action.value, body.via.value, custom_id=custom_id,
        action_id=body.action_id, action_attempt_id=body.action_attempt_id,
        timeout_s=body.timeout_s or defaults.DEFAULT_COMMAND_TIMEOUT_S, callback_url=body.callback_url,
        metadata=body.metadata, idempotency_key=idem, request_fingerprint=fingerprint)
    if not created:
        check_same_request(command, body, idem, fingerprint)
        return JSONResponse(command_json(command), status_code=200)
    if body.via != Via.EXTERNAL and command.status == CommandStatus.PENDING:
        command = await _issue(request, commands, command)
    log.info("command created", extra={"command_id": command.command_id, "device_id": command.device_id,
                                       "status": command.status.value})
    return JSONResponse(command_json(command), status_code=201,
                        headers={"Location": f"/commands/{command.command_id}"})


async def _issue(request: Request, commands: CommandStore, command: Command) -> Command:
    """Call the remote for a reserved command; on no answer forget the reservation and raise 502."""
    settings = request.app.state.settings
    cid = command.command_id
    try:
        if command.via == Via.SEAM:
            issued = await anyio.to_thread.run_sync(issuing.issue_seam, settings, command.device_id,
                                                    command.action.value)
        else:
            issued = await anyio.to_thread.run_sync(issuing.issue_device_cloud, settings, command.device_id,
                                                    command.action.value, command.custom_id)
    except issuing.Refused as exc:
        log.info("command refused", extra={"command_id": cid, "error_code": exc.error_code})
        await in_thread(commands.reject, cid, exc.error_code, exc.message)
        return await in_thread(commands.get, cid) or command
    except BaseException as exc:
        await _discard_quietly(commands, cid)
        if isinstance(exc, LockhookError | asyncio.CancelledError | KeyboardInterrupt):
            raise
        log.error("issuing failed unexpectedly: %s", type(exc).__name__, extra={"command_id": cid})
        raise UpstreamError("the command could not be issued") from None
    updated = await in_thread(commands.attach_ids, cid, action_id=issued.action_id,
                              action_attempt_id=issued.action_attempt_id)
    if issued.status != "pending":
        await in_thread(commands.record_result, cid, issued.status == "succeeded", issued.error_code,
                        issued.error_message, resolved_by="issuer")
        updated = await in_thread(commands.get, cid)
    elif command.via == Via.SEAM:
        try:
            await in_thread(jobs.schedule_seam_poll, request.app.state.sync_redis, cid, settings.seam_poll_after_s)
        except StorageUnavailable:
            log.warning("could not schedule the Seam poll", extra={"command_id": cid})
    return updated or command


async def _discard_quietly(commands: CommandStore, command_id: str) -> None:
    try:
        await anyio.to_thread.run_sync(commands.discard, command_id)
    except Exception as exc:  # the deadline will time it out instead
        log.error("could not discard an unissued command: %s", type(exc).__name__, extra={"command_id": command_id})


# -- GET /commands/{id}[?wait=N] -------------------------------------------------------------------

def parse_wait(raw: str | None) -> float:
    """`wait` in seconds: a finite number 0..MAX_WAIT_S (422 otherwise; `nan`, `inf`, `-1`, `1e9` too)."""
    if raw is None or raw == "":
        return 0.0
    try:
        value = float(raw)
    except ValueError:
        raise invalid("query", "wait", "must be a number of seconds", "float_parsing") from None
    if not math.isfinite(value) or value < 0 or value > defaults.MAX_WAIT_S:
        raise invalid("query", "wait", f"must be between 0 and {defaults.MAX_WAIT_S}", "range")
    return value


async def get_command(request: Request) -> JSONResponse:
    command_id = not_found_unless_id(request.path_params["command_id"], "command")
    wait_s = parse_wait(request.query_params.get("wait"))
    try:
        if wait_s > 0:
            command = await await_command(request.app.state, command_id, wait_s)
        else:
            command = await read_command(request.app.state, command_id)
    except (RedisError, OSError, TimeoutError):
        raise StorageUnavailable("command store unavailable; retry later") from None
    if command is None:
        raise NotFound(f"no command {command_id!r}")
    return JSONResponse(command_json(command))


# -- GET /commands ---------------------------------------------------------------------------------

class ListQuery(BaseModel):
    model_config = ConfigDict(extra="ignore")

    device_id: Id | None = None
    status: CommandStatus | None = None
    limit: int = Field(50, ge=1, le=LIST_MAX)
    cursor: str | None = Field(None, max_length=512, description="`next_cursor` of the previous page")


class PageQuery(BaseModel):
    model_config = ConfigDict(extra="ignore")

    limit: int = Field(50, ge=1, le=LIST_MAX)
    cursor: str | None = Field(None, max_length=512, description="`next_cursor` of the previous page")


def parse_query(request: Request, model: type[BaseModel]):
    params = {k: v for k, v in request.query_params.items() if v != ""}
    try:
        return model.model_validate(params)
    except ValidationError as exc:
        raise ValidationFailed("invalid query", errors=field_errors(exc, "query")) from None


async def paged(fn, *args, **kwargs):
    from lockhook.paging import BadCursor

    try:
        return await in_thread(fn, *args, **kwargs)
    except BadCursor as exc:
        raise invalid("query", "cursor", str(exc)) from None


async def list_commands(request: Request) -> JSONResponse:
    """Newest first; a page with `next_cursor` null is the last (a shorter page is not)."""
    query = parse_query(request, ListQuery)
    found, next_cursor = await paged(store(request).page, device_id=query.device_id,
                                      status=query.status.value if query.status else None, limit=query.limit,
                                      cursor=query.cursor)
    return JSONResponse({"commands": [command_json(c) for c in found], "count": len(found),
                         "next_cursor": next_cursor})


routes = [
    Route("/commands", protected(create_command), methods=["POST"], name="create_command"),
    Route("/commands", protected(list_commands), methods=["GET"], name="list_commands"),
    Route("/commands/{command_id}", protected(get_command), methods=["GET"], name="get_command"),
]
