"""GET /openapi.json: the OpenAPI 3.1 document, its schemas generated from the routes' pydantic models; needs the token.

Every served route has one entry in PATHS (tests/receiver compares the two), so a new route is documented
on purpose; a field added to a model appears here by itself.
"""

from __future__ import annotations

from functools import cache
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from lockhook import defaults
from lockhook.commands.store import Command
from receiver.auth import protected
from receiver.commands_api import IDEMPOTENCY_KEY, CommandRequest, Id, ListQuery, PageQuery

REF = "#/components/schemas/{model}"


# -- shapes of answers the routes build as plain dicts ---------------------------------------------

class FieldError(BaseModel):
    loc: list[str | int]
    msg: str
    type: str


class Error(BaseModel):
    error: str
    message: str | None = None
    errors: list[FieldError] | None = Field(None, description="field errors, on 422")


class CommandList(BaseModel):
    commands: list[Command]
    count: int
    next_cursor: str | None = Field(description="pass as `cursor` for the next page; null on the last page")


class Battery(BaseModel):
    level: float | None = None
    status: str | None = None


class LockState(BaseModel):
    model_config = ConfigDict(extra="allow")

    device_id: str
    locked: bool | None
    occurred_at: str | None = None
    method: str | None = None
    performed_via: str | None = None
    source_event: str | None = None
    event_type: str | None = None
    updated_at: str | None = None
    online: bool | None = None
    battery: Battery | None = None
    health_at: str | None = None
    unlocked_since: str | None = None
    issuer: str | None = None
    events: list[dict[str, Any]]


class Lock(BaseModel):
    model_config = ConfigDict(extra="allow")

    device_id: str
    locked: bool | None
    occurred_at: str | None = None
    method: str | None = None
    performed_via: str | None = None
    source_event: str | None = None
    event_type: str | None = None
    updated_at: str | None = None


class LockList(BaseModel):
    locks: list[Lock]
    count: int
    next_cursor: str | None = Field(description="pass as `cursor` for the next page; null on the last page")


class WebhookAnswer(BaseModel):
    status: Literal["accepted", "duplicate", "quarantined"]
    delivery_id: str


MODELS: tuple[type[BaseModel], ...] = (CommandRequest, Command, CommandList, LockState, Lock, LockList,
                                       WebhookAnswer, Error)


def schemas() -> dict[str, dict]:
    """Every model's JSON Schema, nested definitions (`$defs`) lifted into components/schemas."""
    found: dict[str, dict] = {}
    for model in MODELS:
        schema = model.model_json_schema(ref_template=REF, mode="serialization" if model is not CommandRequest
                                         else "validation")
        found.update(schema.pop("$defs", {}))
        found[model.__name__] = schema
    return found


def ref(model: type[BaseModel]) -> dict:
    return {"$ref": REF.format(model=model.__name__)}


def query_parameters(model: type[BaseModel]) -> list[dict]:
    """A query model's fields as OpenAPI parameters (an optional field is one that may be left out, not null)."""
    schema = model.model_json_schema(ref_template=REF)
    required = set(schema.get("required", ()))
    parameters = []
    for name, field in schema["properties"].items():
        choices = [c for c in field.get("anyOf", ()) if c != {"type": "null"}]
        if len(choices) == 1:
            field = {**choices[0], **{k: v for k, v in field.items() if k not in ("anyOf", "default")}}
        parameters.append({"name": name, "in": "query", "required": name in required, "schema": field})
    return parameters


def path_parameter(name: str, schema: dict | None = None) -> dict:
    return {"name": name, "in": "path", "required": True, "schema": schema or {"type": "string"}}


ID = TypeAdapter(Id).json_schema()


def error(*codes: str) -> dict:
    """The error body, its `error` limited to these codes."""
    if not codes:
        return ref(Error)
    return {"allOf": [ref(Error), {"properties": {"error": {"enum": list(codes)}}}]}


def answer(description: str, schema: dict | None = None, media_type: str = "application/json",
           headers: dict | None = None) -> dict:
    response: dict[str, Any] = {"description": description}
    if schema is not None:
        response["content"] = {media_type: {"schema": schema}}
    if headers:
        response["headers"] = headers
    return response


TEXT = {"type": "string"}
RETRY_AFTER = {"Retry-After": {"schema": {"type": "integer"}, "description": "seconds"}}
INVALID = answer("field errors (`errors`: loc, msg, type)", error())
NOT_FOUND = answer("unknown id", error("not_found"))
STORAGE = answer("Redis unavailable", error("storage_unavailable"), headers=RETRY_AFTER)
THROTTLED = answer("too many failed sign-ins or wrong tokens from this address (any token: retry after the header)",
                   error("too_many_attempts"), headers=RETRY_AFTER)
CROSS_ORIGIN = answer("Origin is null or another host, or a cross-site fetch without Origin",
                      error("cross_origin_refused"))
PROTECTED = {"401": answer("missing or wrong bearer token", error("unauthorized")), "429": THROTTLED,
             "503": answer("LOCKHOOK_API_TOKEN is not set: the API is off", error("api_disabled"))}
SEE_DASHBOARD = answer("to the dashboard", headers={"Location": {"schema": TEXT}})


def webhook(sender: str) -> dict:
    headers = [{"name": name, "in": "header", "required": False, "schema": TEXT,
                "description": f"Svix / Standard Webhooks header (`webhook-{name.split('-', 1)[1]}` also accepted)"}
               for name in ("svix-id", "svix-timestamp", "svix-signature")]
    return {"post": {
        "summary": f"Receive a signed {sender} delivery (verified on the raw body, stored once, then 2xx)",
        "tags": ["webhooks"], "security": [], "parameters": headers,
        "requestBody": {"required": True, "content": {"application/json": {
            "schema": {"type": "object", "additionalProperties": True}}}},
        "responses": {
            "202": answer("accepted (or quarantined: authentic but not an event)", ref(WebhookAnswer)),
            "200": answer("duplicate delivery id", ref(WebhookAnswer)),
            "401": answer("signature check failed",
                          error("missing_signature_headers", "timestamp_out_of_tolerance", "invalid_signature")),
            "404": answer("no secret configured for this endpoint", error("endpoint_disabled")),
            "408": answer("body not received in time", error("body_read_timeout")),
            "413": answer("body larger than MAX_BODY_BYTES", error("payload_too_large")),
            "422": INVALID,
            "503": STORAGE,
        }}}


def dashboard(summary: str, *, media_type: str = "text/html", params: tuple[str, ...] = (),
              public: bool = False, **responses: dict) -> dict:
    operation: dict[str, Any] = {
        "summary": summary, "tags": ["dashboard"],
        "responses": {"200": answer(media_type, TEXT, media_type), **responses, **PROTECTED}}
    if params:
        operation["parameters"] = [path_parameter(name) for name in params]
    if public:
        operation["security"] = []
    return operation


WAIT = {"name": "wait", "in": "query", "required": False,
        "schema": {"type": "number", "minimum": 0, "maximum": defaults.MAX_WAIT_S},
        "description": "hold the request until the command leaves pending, at most this many seconds"}

PATHS: dict[str, dict[str, dict]] = {
    "/webhooks/seam": webhook("Seam"),
    "/webhooks/device-cloud": webhook("device-cloud"),
    "/healthz": {"get": {"summary": "Liveness and Redis reachability", "tags": ["ops"], "security": [],
                         "responses": {"200": answer("Redis answers", {"type": "object"}),
                                       "503": answer("Redis unavailable", {"type": "object"})}}},
    "/commands": {
        "post": {
            "summary": "Issue (via seam / device_cloud) or register (via external) a lock/unlock command",
            "tags": ["commands"],
            "parameters": [{"name": "Idempotency-Key", "in": "header", "required": False,
                            "schema": IDEMPOTENCY_KEY.json_schema()}],
            "requestBody": {"required": True, "content": {"application/json": {"schema": ref(CommandRequest)}}},
            "responses": {
                "201": answer("created (status pending, or rejected by the remote)", ref(Command)),
                "200": answer("the existing command for this custom_id / Idempotency-Key", ref(Command)),
                "413": answer("body too large", error("payload_too_large")),
                "422": INVALID,
                "502": answer("Seam / device cloud unreachable; nothing kept", error("upstream_error")),
                **PROTECTED,
            }},
        "get": {
            "summary": "List commands, newest first, paged by `next_cursor` (a short page is not the last)",
        "tags": ["commands"],
            "parameters": query_parameters(ListQuery),
            "responses": {"200": answer("commands", ref(CommandList)), "422": INVALID, **PROTECTED}},
    },
    "/commands/{command_id}": {"get": {
        "summary": "One command; `?wait=N` long-polls until it is resolved", "tags": ["commands"],
        "parameters": [path_parameter("command_id", ID), WAIT],
        "responses": {"200": answer("the command", ref(Command)), "404": NOT_FOUND, "422": INVALID, **PROTECTED}}},
    "/locks": {"get": {
        "summary": "Every known lock (a device any event was seen for) with its state, most recent event first",
        "tags": ["locks"], "parameters": query_parameters(PageQuery),
        "responses": {"200": answer("locks, paged", ref(LockList)), "422": INVALID, **PROTECTED}}},
    "/locks/{device_id}": {"get": {
        "summary": "A lock's state (locked, occurred_at, method / performed_via) and last events", "tags": ["locks"],
        "parameters": [path_parameter("device_id", ID)],
        "responses": {"200": answer("state and events", ref(LockState)), "404": NOT_FOUND, **PROTECTED}}},
    "/metrics": {"get": {
        "summary": "Prometheus metrics", "tags": ["ops"],
        "responses": {"200": answer("Prometheus text format", TEXT, "text/plain"), **PROTECTED}}},
    "/openapi.json": {"get": {
        "summary": "This document", "tags": ["ops"],
        "responses": {"200": answer("OpenAPI 3.1 document", {"type": "object"}), **PROTECTED}}},
    "/": {"get": {"summary": "Leads to the dashboard", "tags": ["dashboard"], "security": [],
                  "responses": {"303": SEE_DASHBOARD}}},
    "/dashboard": {"get": dashboard("Live HTML dashboard (shows its login form without a token)")},
    "/dashboard/login": {"post": {
        "summary": "Sign in with the API token: sets the session cookie", "tags": ["dashboard"], "security": [],
        "requestBody": {"required": True, "content": {"application/x-www-form-urlencoded": {"schema": {
            "type": "object", "properties": {"token": TEXT}}}}},
        "responses": {"303": SEE_DASHBOARD, "401": answer("not the API token", TEXT, "text/html"),
                      "403": CROSS_ORIGIN, "408": answer("body not received in time", error("body_read_timeout")),
                      "413": answer("body too large", error("payload_too_large")), "422": INVALID,
                      "429": THROTTLED,
                      "503": answer("LOCKHOOK_API_TOKEN is not set (or Redis unavailable)", TEXT, "text/html")}}},
    "/dashboard/logout": {"post": {
        "summary": "Sign out: ends the session (its cookie stops working) and clears the cookie",
        "tags": ["dashboard"], "security": [],
        "responses": {"303": SEE_DASHBOARD, "403": CROSS_ORIGIN, "503": STORAGE}}},
    "/dashboard/events": {"get": dashboard(
        "Server-sent events: the page's sections, re-rendered whenever what they show has changed",
        media_type="text/event-stream")},
    "/dashboard/commands/{command_id}": {"get": dashboard("One command and its timeline", params=("command_id",),
                                                          **{"404": NOT_FOUND})},
    "/dashboard/notifications/{notification_id}/retry": {"post": dashboard(
        "Re-send a failed notification (same id and body, a new round of attempts)", media_type="application/json",
        params=("notification_id",),
        **{"202": answer("re-sent"), "303": SEE_DASHBOARD, "403": CROSS_ORIGIN, "404": NOT_FOUND})},
    "/dashboard/static/dashboard.js": {"get": dashboard("The dashboard's script", media_type="text/javascript")},
    "/dashboard/static/dashboard.css": {"get": dashboard("The dashboard's style sheet", media_type="text/css",
                                                         public=True)},
}


@cache
def document() -> dict:
    return {
        "openapi": "3.1.0",
        "info": {"title": "lockhook", "version": "0.1.0",
                 "description": "Confirms smart-lock commands from verified Seam / device-cloud webhooks."},
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "description": "LOCKHOOK_API_TOKEN"}},
            "schemas": schemas(),
        },
        "security": [{"bearer": []}],
        "paths": PATHS,
    }


async def openapi(request: Request) -> JSONResponse:
    return JSONResponse(document())


routes = [Route("/openapi.json", protected(openapi), methods=["GET"], name="openapi")]
