"""GET /dashboard: the operations dashboard (login cookie or bearer token), its live stream and re-send action."""

from __future__ import annotations

import asyncio
import logging
import time
from functools import cache
from importlib.resources import files
from urllib.parse import parse_qs

import anyio
from redis.exceptions import RedisError
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response, StreamingResponse
from starlette.routing import Route

from lockhook import defaults
from lockhook.errors import ApiDisabled, NotFound, StorageUnavailable, TooManyAttempts, Unauthorized
from lockhook.ids import is_id
from lockhook.notifications.store import NotificationStore
from receiver import dashboard_data as data
from receiver import live, sessions, templating, throttle
from receiver.auth import bearer_token, check_bearer, is_correct_token
from receiver.body import read_body
from receiver.origin import require_same_origin
from receiver.sessions import COOKIE  # noqa: F401  (the cookie's name, for tests and tools)
from receiver.templating import templates

log = logging.getLogger("lockhook.dashboard")

LOGIN_BODY_MAX = 4096  # a form with one token: 413 past this, 408 when not sent within BODY_READ_TIMEOUT_S
LOGIN_FIELDS = ("token", "api_token", "password")  # the form sends `token`; scripts may use the others
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
                               "img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",  # not no-referrer: with it browsers post `Origin: null`
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
}


async def _signed_in(request: Request) -> bool:
    """A bearer token (checked first: it needs no Redis) or a live session cookie."""
    if not request.app.state.settings.api_token:
        return False
    return await check_bearer(request) or await sessions.is_valid(request)


async def require_session(request: Request) -> None:
    """503 api_disabled without a configured token, 401 unauthorized without the cookie or bearer token."""
    if not request.app.state.settings.api_token:
        raise ApiDisabled("LOCKHOOK_API_TOKEN is not set: the dashboard is disabled")
    if not await _signed_in(request):
        raise Unauthorized("sign in at /dashboard or send Authorization: Bearer <LOCKHOOK_API_TOKEN>")


def _page(request: Request, template: str, context: dict, status_code: int = 200) -> HTMLResponse:
    return templates.TemplateResponse(request, template, context, status_code=status_code, headers=SECURITY_HEADERS)


def _login_page(request: Request, error: str | None = None, status_code: int = 200) -> HTMLResponse:
    disabled = not request.app.state.settings.api_token
    return _page(request, "login.html", {"error": error, "disabled": disabled}, 503 if disabled else status_code)


async def _read(fn, *args):
    """Run a sync Redis read in a thread; a Redis failure is a 503, not a 500."""
    try:
        return await anyio.to_thread.run_sync(fn, *args)
    except (RedisError, OSError):
        raise StorageUnavailable("storage is unavailable") from None


async def dashboard(request: Request) -> Response:
    if not request.app.state.settings.api_token or not await _signed_in(request):
        return _login_page(request)
    filters = data.Filters.from_query(request.query_params)
    overview = await _read(data.overview, request.app.state.sync_redis, filters)
    return _page(request, "overview.html", templating.overview_context(overview, filters))


async def login(request: Request) -> Response:
    settings = request.app.state.settings
    if not settings.api_token:
        return _login_page(request)
    require_same_origin(request)
    body = await read_body(request, LOGIN_BODY_MAX)
    try:
        form = parse_qs(body.decode("utf-8"), max_num_fields=5)
        token = next((form[k][0] for k in LOGIN_FIELDS if form.get(k)), "").strip()
    except (UnicodeDecodeError, ValueError):
        token = ""
    correct = bool(token) and is_correct_token(token, settings.api_token)
    if token:
        try:
            await throttle.attempt(request, correct)  # 429 from a throttled address, right token or not
        except TooManyAttempts as refused:
            if "text/html" not in request.headers.get("accept", ""):
                raise
            page = _login_page(request, f"Too many failed sign-ins from this address: try again in "
                                        f"{refused.retry_after_s} s.", 429)
            page.headers["Retry-After"] = str(refused.retry_after_s)
            return page
    if not correct:
        log.info("dashboard sign-in refused")
        return _login_page(request, "That is not the API token.", 401)
    response = RedirectResponse("/dashboard", status_code=303, headers=SECURITY_HEADERS)
    sessions.set_cookie(request, response, await sessions.create(request))
    return response


async def logout(request: Request) -> Response:
    """End the session in Redis (the cookie stops working everywhere), then clear it in this browser."""
    require_same_origin(request)
    await sessions.revoke(request)
    response = RedirectResponse("/dashboard", status_code=303, headers=SECURITY_HEADERS)
    sessions.clear_cookie(response)
    return response


async def command(request: Request) -> Response:
    await require_session(request)
    command_id = request.path_params["command_id"]
    if not is_id(command_id):  # would name a key of another type
        raise NotFound("no such command")
    found, timeline = await _read(data.command_detail, request.app.state.sync_redis, command_id)
    if found is None:
        raise NotFound("no such command")
    return _page(request, "command.html", templating.command_context(found, timeline))


async def resend(request: Request) -> Response:
    """Re-send a failed notification (same id and body, a new round of attempts) via the notifications store."""
    require_same_origin(request)
    await require_session(request)
    nid = request.path_params["notification_id"]
    if not is_id(nid):
        raise NotFound("no such notification")
    store = NotificationStore(request.app.state.sync_redis)
    record = await _read(store.get, nid)
    if record is None:
        raise NotFound("no such notification")
    resent = await _read(store.retry, nid)
    current = await _read(store.get, nid)
    status = current.status if current else record.status
    log.info("notification re-sent from the dashboard" if resent else "notification not re-sent: not failed",
             extra={"command_id": record.command_id, "device_id": record.device_id, "target": record.label,
                    "status": status})
    if "application/json" in request.headers.get("accept", ""):
        return JSONResponse({"id": nid, "resent": resent, "status": status}, status_code=202 if resent else 200)
    return RedirectResponse("/dashboard#failed-notifications", status_code=303)


async def _sections(client, view: str, filters: data.Filters, command_id: str | None) -> dict[str, str] | None:
    if view == "command" and command_id:
        found, timeline = await _read(data.command_detail, client, command_id)
        return {"command": templating.command_section(found, timeline)} if found else None
    overview = await _read(data.overview, client, filters)
    return templating.overview_sections(overview, filters)


def _hub(state) -> live.LiveHub:
    hub = getattr(state, "live", None)
    if hub is None:
        hub = state.live = live.LiveHub()
    return hub


async def events(request: Request) -> Response:
    """Server-sent events: the page's sections, re-rendered whenever what they show has changed."""
    await require_session(request)
    by_session = bearer_token(request) is None  # then the session is checked again: a sign-out ends the stream
    state = request.app.state
    view = "command" if request.query_params.get("view") == "command" else "overview"
    command_id = request.query_params.get("id")
    filters = data.Filters.from_query(request.query_params)

    key = (view, command_id, None, None) if view == "command" else (view, None, filters.device, filters.status)
    feed = _hub(state).feed(key, lambda: data.fingerprint(state.redis, view, command_id),
                            lambda: _sections(state.sync_redis, view, filters, command_id))

    async def stream():
        yield f"retry: {int(defaults.DASHBOARD_POLL_S * 2000)}\n\n"
        queue = feed.subscribe()
        stop_at = time.monotonic() + defaults.DASHBOARD_STREAM_MAX_S
        tick = min(15.0, defaults.DASHBOARD_SESSION_RECHECK_S) if by_session else 15.0
        recheck_at = time.monotonic() + defaults.DASHBOARD_SESSION_RECHECK_S
        try:
            while (left := stop_at - time.monotonic()) > 0:
                try:
                    message = await asyncio.wait_for(queue.get(), timeout=min(tick, left))
                except TimeoutError:
                    message = ": keep-alive\n\n"
                if by_session and time.monotonic() >= recheck_at:
                    if not await sessions.still_valid(request):
                        return
                    recheck_at = time.monotonic() + defaults.DASHBOARD_SESSION_RECHECK_S
                if message == live.DROPPED:
                    return
                yield message
        finally:
            feed.unsubscribe(queue)

    headers = {**SECURITY_HEADERS, "X-Accel-Buffering": "no"}
    return StreamingResponse(stream(), media_type="text/event-stream", headers=headers)


@cache
def _asset(name: str) -> bytes:
    return (files("receiver") / "static" / name).read_bytes()


async def script(request: Request) -> Response:
    await require_session(request)
    return Response(_asset("dashboard.js"), media_type="text/javascript",
                    headers={**SECURITY_HEADERS, "Cache-Control": "private, max-age=300"})


async def stylesheet(request: Request) -> Response:
    """Open to all: the sign-in form uses it too."""
    return Response(_asset("dashboard.css"), media_type="text/css",
                    headers={**SECURITY_HEADERS, "Cache-Control": "max-age=300"})


async def home(request: Request) -> Response:
    """`GET /` in a browser leads to the dashboard (which asks for the token when there is no session)."""
    return RedirectResponse("/dashboard", status_code=303)


routes = [
    Route("/", home, methods=["GET"]),
    Route("/dashboard", dashboard, methods=["GET"]),
    Route("/dashboard/login", login, methods=["POST"]),
    Route("/dashboard/logout", logout, methods=["POST"]),
    Route("/dashboard/events", events, methods=["GET"]),
    Route("/dashboard/commands/{command_id}", command, methods=["GET"]),
    Route("/dashboard/notifications/{notification_id}/retry", resend, methods=["POST"]),
    Route("/dashboard/static/dashboard.js", script, methods=["GET"]),
    Route("/dashboard/static/dashboard.css", stylesheet, methods=["GET"]),
]
