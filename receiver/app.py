"""The Starlette application factory: routes, error handlers, and the Redis-backed state they share."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys

import anyio
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Match

from lockhook import defaults, jobs
from lockhook.errors import (
    ConfigError,
    LockhookError,
    MethodNotAllowed,
    NotFound,
    StorageUnavailable,
    TooManyAttempts,
)
from lockhook.ingest.fixtures import write_fixture
from lockhook.ingest.inbox import Inbox
from lockhook.ingest.signatures import check_secrets
from lockhook.logs import configure_logging
from lockhook.redis_client import async_client, sync_client
from lockhook.settings import Settings, get_settings
from receiver import commands_api, dashboard, health, http_protocol, locks_api, metrics, openapi, webhooks
from receiver.resolutions import Resolutions

log = logging.getLogger("lockhook.receiver")


async def _lockhook_error(request: Request, exc: LockhookError) -> JSONResponse:
    headers = {"Retry-After": str(defaults.RETRY_AFTER_S)} if isinstance(exc, StorageUnavailable) else None
    if isinstance(exc, TooManyAttempts):
        headers = {"Retry-After": str(exc.retry_after_s)}
    return JSONResponse(exc.to_json(), status_code=exc.status_code, headers=headers)


async def _http_error(request: Request, exc: HTTPException) -> JSONResponse:
    """Starlette's own refusals (no such route, wrong method) in the same JSON shape as ours."""
    headers = dict(exc.headers or {})
    if exc.status_code == 404:
        error: LockhookError = NotFound("no such route")
    elif exc.status_code == 405:
        error = MethodNotAllowed(f"{request.method} is not allowed here")
        headers["Allow"] = _allowed_methods(request) or headers.get("Allow", "")
    else:
        error = LockhookError(exc.detail)
        error.status_code, error.code = exc.status_code, "http_error"
    return JSONResponse(error.to_json(), status_code=exc.status_code, headers=headers)


def _allowed_methods(request: Request) -> str:
    """Every method the path is served with (one path may have a route per method; Starlette names one)."""
    methods: set[str] = set()
    for route in request.app.router.routes:
        match, _ = route.matches(request.scope)
        if match is Match.PARTIAL:
            methods |= set(getattr(route, "methods", None) or ())
    return ", ".join(sorted(methods))


async def _unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    log.error("unhandled %s on %s %s", type(exc).__name__, request.method, request.url.path)
    return JSONResponse({"error": "internal_error", "message": "internal error"}, status_code=500)


class Receiver:
    """The ASGI app: `POST /webhooks/*` goes straight to its raw handler, everything else to Starlette.

    The ack path skips Starlette's middleware and router (a Request per call, two send wrappers, a route
    scan): a sixth of its CPU. Its answers are the same; Starlette still lists the routes (405, OpenAPI).
    """

    def __init__(self, app: Starlette):
        self.app = app
        self.fast = {route.path: route.app for route in webhooks.routes}

    async def __call__(self, scope, receive, send) -> None:
        handler = self.fast.get(scope.get("path")) if scope["type"] == "http" and scope["method"] == "POST" else None
        if handler is None:
            await self.app(scope, receive, send)
            return
        scope["app"] = self.app
        try:
            await handler(scope, receive, send)
        except Exception as exc:  # what Starlette's error middleware would do: one line, a JSON 500
            log.error("unhandled %s on POST %s", type(exc).__name__, scope["path"])
            await webhooks.answer(send, 500, b'{"error":"internal_error","message":"internal error"}')

    def __getattr__(self, name: str):
        return getattr(self.app, name)  # state, routes, url_path_for, ...


def build_app(settings: Settings) -> Receiver:
    """Build the app for these settings; raises ConfigError when it must not start."""
    settings.require_webhook_secret()
    check_secrets(settings.webhook_secrets("seam") + settings.webhook_secrets("device-cloud"))

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette):
        state = app.state
        state.redis = async_client(settings)
        state.sync_redis = sync_client(settings, socket_timeout=defaults.REDIS_SOCKET_TIMEOUT_S)
        background: set[asyncio.Task] = set()

        def schedule_drain() -> None:
            task = asyncio.create_task(anyio.to_thread.run_sync(_enqueue_drain, state.sync_redis))
            background.add(task)
            task.add_done_callback(background.discard)

        state.inbox = Inbox(state.redis, settings.dedupe_ttl_seconds, schedule_drain)
        state.resolutions = Resolutions(state.redis)
        http_protocol.on_graceful_stop(state.resolutions.stop_waiting)
        try:
            yield
        finally:
            await state.resolutions.close()
            if background:
                await asyncio.wait(background, timeout=5)
            await state.redis.aclose()
            state.sync_redis.close()

    routes = [*webhooks.routes, *health.routes, *commands_api.routes, *locks_api.routes, *metrics.routes,
              *dashboard.routes,
              *openapi.routes]
    app = Starlette(routes=routes, lifespan=lifespan,
                    exception_handlers={LockhookError: _lockhook_error, HTTPException: _http_error,
                                        Exception: _unexpected_error})
    app.state.settings = settings
    app.state.webhook_secrets = {endpoint: settings.webhook_secrets(endpoint) for endpoint in webhooks.ENDPOINTS}
    app.state.recorder = (lambda d: write_fixture(settings.record_dir, d)) if settings.record_dir else None
    return Receiver(app)


def _enqueue_drain(connection) -> None:
    try:
        jobs.enqueue_drain(connection)
    except Exception as exc:  # the maintenance sweep drains anyway; the delivery is already stored
        log.warning("could not enqueue a drain job: %s", type(exc).__name__)


def create_app() -> Receiver:
    """uvicorn factory (`uvicorn --factory receiver.app:create_app`): exits with one line on bad config."""
    settings = get_settings()
    configure_logging(settings)
    try:
        return build_app(settings)
    except ConfigError as exc:
        print(f"lockhook: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
