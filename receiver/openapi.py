"""GET /openapi.json: the OpenAPI 3.0 description of every route (webhooks included); needs the token."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from lockhook import defaults
from lockhook.commands.store import Action, CommandStatus, Via
from receiver.auth import protected

ID = {"type": "string", "pattern": r"^[\x21-\x7e]{1,200}$", "minLength": 1, "maxLength": 200}
NULLABLE_STRING = {"type": "string", "nullable": True}


def _error(*codes: str) -> dict:
    return {"type": "object", "required": ["error"],
            "properties": {"error": {"type": "string", "enum": list(codes)} if codes else {"type": "string"},
                           "message": {"type": "string"},
                           "errors": {"type": "array", "items": {"$ref": "#/components/schemas/FieldError"}}}}


def _json(schema: dict, description: str, headers: dict | None = None) -> dict:
    response: dict[str, Any] = {"description": description, "content": {"application/json": {"schema": schema}}}
    if headers:
        response["headers"] = headers
    return response


def _ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


RETRY_AFTER = {"Retry-After": {"schema": {"type": "integer"}, "description": "seconds"}}
UNAUTHORIZED = _json(_error("unauthorized"), "missing or wrong bearer token")
DISABLED = _json(_error("api_disabled"), "LOCKHOOK_API_TOKEN is not set: the API is off")
INVALID = _json(_error(), "field errors (`errors`: loc, msg, type)")
NOT_FOUND = _json(_error("not_found"), "unknown id")
STORAGE = _json(_error("storage_unavailable"), "Redis unavailable", RETRY_AFTER)
PROTECTED = {"401": UNAUTHORIZED, "503": DISABLED}

SCHEMAS: dict[str, dict] = {
    "FieldError": {"type": "object", "properties": {
        "loc": {"type": "array", "items": {"oneOf": [{"type": "string"}, {"type": "integer"}]}},
        "msg": {"type": "string"}, "type": {"type": "string"}}},
    "Command": {
        "type": "object",
        "required": ["command_id", "device_id", "action", "via", "status", "created_at", "deadline_at", "late"],
        "properties": {
            "command_id": {"type": "string"}, "device_id": {"type": "string"},
            "action": {"type": "string", "enum": [a.value for a in Action]},
            "via": {"type": "string", "enum": [v.value for v in Via]},
            "status": {"type": "string", "enum": [s.value for s in CommandStatus]},
            **{name: NULLABLE_STRING for name in (
                "custom_id", "action_id", "action_attempt_id", "error_code", "error_message", "performed_via",
                "method", "resolved_at", "resolved_by", "callback_url")},
            "created_at": {"type": "string", "format": "date-time"},
            "deadline_at": {"type": "string", "format": "date-time"},
            "late": {"type": "boolean"},
            "metadata": {"type": "object", "nullable": True, "additionalProperties": True},
        },
    },
    "CommandRequest": {
        "type": "object",
        "required": ["device_id", "action", "via"],
        "additionalProperties": False,
        "properties": {
            "device_id": ID,
            "action": {"type": "string", "enum": [a.value for a in Action]},
            "via": {"type": "string", "enum": [v.value for v in Via],
                    "description": "seam: Seam SDK (SEAM_API_KEY); device_cloud: DEVICE_CLOUD_URL; "
                                   "external: already issued by the caller, who gives the ids"},
            "custom_id": {**ID, "nullable": True},
            "action_id": {**ID, "nullable": True},
            "action_attempt_id": {**ID, "nullable": True},
            "timeout_s": {"type": "number", "exclusiveMinimum": True, "minimum": 0, "maximum": 86400,
                          "nullable": True},
            "callback_url": {"type": "string", "format": "uri", "maxLength": 2048, "nullable": True,
                             "description": "http(s); internal addresses refused unless in NOTIFY_ALLOWED_HOSTS"},
            "metadata": {"type": "object", "nullable": True, "additionalProperties": True},
        },
    },
    "CommandList": {"type": "object", "properties": {
        "commands": {"type": "array", "items": _ref("Command")}, "count": {"type": "integer"}}},
    "LockState": {"type": "object", "required": ["device_id", "locked", "events"], "properties": {
        "device_id": {"type": "string"}, "locked": {"type": "boolean", "nullable": True},
        "occurred_at": NULLABLE_STRING, "method": NULLABLE_STRING, "performed_via": NULLABLE_STRING,
        "source_event": NULLABLE_STRING, "event_type": NULLABLE_STRING, "updated_at": NULLABLE_STRING,
        "events": {"type": "array", "items": {"type": "object", "additionalProperties": True}}}},
    "WebhookAnswer": {"type": "object", "required": ["status"], "properties": {
        "status": {"type": "string", "enum": ["accepted", "duplicate", "quarantined"]},
        "delivery_id": {"type": "string"}}},
}


def _webhook(sender: str) -> dict:
    headers = [{"name": name, "in": "header", "required": False, "schema": {"type": "string"},
                "description": f"Svix / Standard Webhooks header (`webhook-{name.split('-', 1)[1]}` also accepted)"}
               for name in ("svix-id", "svix-timestamp", "svix-signature")]
    return {"post": {
        "summary": f"Receive a signed {sender} delivery (verified on the raw body, stored once, then 2xx)",
        "tags": ["webhooks"], "security": [],
        "parameters": headers,
        "requestBody": {"required": True, "content": {"application/json": {
            "schema": {"type": "object", "additionalProperties": True}}}},
        "responses": {
            "202": _json(_ref("WebhookAnswer"), "accepted (or quarantined: authentic but not an event)"),
            "200": _json(_ref("WebhookAnswer"), "duplicate delivery id"),
            "401": _json(_error("missing_signature_headers", "timestamp_out_of_tolerance", "invalid_signature"),
                         "signature check failed"),
            "404": _json(_error("endpoint_disabled"), "no secret configured for this endpoint"),
            "408": _json(_error("body_read_timeout"), "body not received in time"),
            "413": _json(_error("payload_too_large"), "body larger than MAX_BODY_BYTES"),
            "422": INVALID,
            "503": STORAGE,
        }}}


def spec() -> dict:
    """The hand-written part of the document (every route this project defines on purpose)."""
    wait = {"name": "wait", "in": "query", "required": False,
            "schema": {"type": "number", "minimum": 0, "maximum": defaults.MAX_WAIT_S},
            "description": "hold the request until the command leaves pending, at most this many seconds"}
    return {
        "openapi": "3.0.3",
        "info": {"title": "lockhook", "version": "0.1.0",
                 "description": "Confirms smart-lock commands from verified Seam / device-cloud webhooks."},
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer",
                                           "description": "LOCKHOOK_API_TOKEN"}},
            "schemas": SCHEMAS,
        },
        "security": [{"bearer": []}],
        "paths": {
            "/webhooks/seam": _webhook("Seam"),
            "/webhooks/device-cloud": _webhook("device-cloud"),
            "/healthz": {"get": {"summary": "Liveness and Redis reachability", "tags": ["ops"], "security": [],
                                 "responses": {"200": _json({"type": "object"}, "Redis answers"),
                                               "503": _json({"type": "object"}, "Redis unavailable")}}},
            "/commands": {
                "post": {
                    "summary": "Issue (via seam / device_cloud) or register (via external) a lock/unlock command",
                    "tags": ["commands"],
                    "parameters": [{"name": "Idempotency-Key", "in": "header", "required": False,
                                    "schema": {"type": "string", "pattern": r"^[\x21-\x7e]{1,200}$"}}],
                    "requestBody": {"required": True,
                                    "content": {"application/json": {"schema": _ref("CommandRequest")}}},
                    "responses": {
                        "201": _json(_ref("Command"), "created (status pending, or rejected by the remote)"),
                        "200": _json(_ref("Command"), "the existing command for this custom_id / Idempotency-Key"),
                        "413": _json(_error("payload_too_large"), "body too large"),
                        "422": INVALID,
                        "502": _json(_error("upstream_error"), "Seam / device cloud unreachable; nothing kept"),
                        **PROTECTED,
                    }},
                "get": {
                    "summary": "List commands, newest first", "tags": ["commands"],
                    "parameters": [
                        {"name": "device_id", "in": "query", "required": False, "schema": ID},
                        {"name": "status", "in": "query", "required": False,
                         "schema": {"type": "string", "enum": [s.value for s in CommandStatus]}},
                        {"name": "limit", "in": "query", "required": False,
                         "schema": {"type": "integer", "minimum": 1, "maximum": 500, "default": 50}}],
                    "responses": {"200": _json(_ref("CommandList"), "commands"), "422": INVALID, **PROTECTED}},
            },
            "/commands/{command_id}": {"get": {
                "summary": "One command; `?wait=N` long-polls until it is resolved", "tags": ["commands"],
                "parameters": [{"name": "command_id", "in": "path", "required": True, "schema": {"type": "string"}},
                               wait],
                "responses": {"200": _json(_ref("Command"), "the command"), "404": NOT_FOUND, "422": INVALID,
                              **PROTECTED}}},
            "/locks/{device_id}": {"get": {
                "summary": "A lock's state (locked, occurred_at, method / performed_via) and last events",
                "tags": ["locks"],
                "parameters": [{"name": "device_id", "in": "path", "required": True, "schema": {"type": "string"}}],
                "responses": {"200": _json(_ref("LockState"), "state and events"), "404": NOT_FOUND, **PROTECTED}}},
            "/metrics": {"get": {
                "summary": "Prometheus metrics", "tags": ["ops"],
                "responses": {"200": {"description": "Prometheus text format",
                                      "content": {"text/plain": {"schema": {"type": "string"}}}}, **PROTECTED}}},
            "/dashboard": {"get": {
                "summary": "Live HTML dashboard (shows its login form without a token)", "tags": ["ops"],
                "responses": {"200": {"description": "HTML", "content": {"text/html": {"schema": {"type": "string"}}}},
                              **PROTECTED}}},
            "/openapi.json": {"get": {
                "summary": "This document", "tags": ["ops"],
                "responses": {"200": _json({"type": "object"}, "OpenAPI 3.0 document"), **PROTECTED}}},
        },
    }


def _generic(route: Route, method: str) -> dict:
    """An operation for a route the static part does not describe yet (added by a feature module)."""
    doc = (route.endpoint.__doc__ or route.name or "").strip().splitlines()
    params = [{"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
              for name in route.param_convertors]
    ok: dict[str, Any] = {"description": "OK"}
    if "server-sent events" in (route.endpoint.__doc__ or "").lower():
        ok["content"] = {"text/event-stream": {"schema": {"type": "string"}}}
    operation: dict[str, Any] = {"summary": doc[0] if doc else route.path, "tags": ["other"],
                                 "responses": {"200": ok, **PROTECTED}}
    if params:
        operation["parameters"] = params
    return operation


def spec_for(routes) -> dict:
    """The static document plus a generic operation for every other route the app serves."""
    document = spec()
    paths = document["paths"]
    for route in routes:
        if not isinstance(route, Route) or not route.methods:
            continue
        for method in sorted(route.methods - {"HEAD"}):
            paths.setdefault(route.path, {}).setdefault(method.lower(), _generic(route, method))
    return document


async def openapi(request: Request) -> JSONResponse:
    return JSONResponse(spec_for(request.app.routes))


routes = [Route("/openapi.json", protected(openapi), methods=["GET"], name="openapi")]
