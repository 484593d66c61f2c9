"""GET /dashboard: the operations dashboard (login cookie or bearer token), its live stream and re-send action."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
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
from lockhook.errors import ApiDisabled, NotFound, StorageUnavailable, Unauthorized, ValidationFailed
from lockhook.ids import is_id
from lockhook.notifications.store import NotificationStore
from receiver import dashboard_data as data
from receiver import live, templating
from receiver.auth import is_authorized
from receiver.templating import templates

log = logging.getLogger("lockhook.dashboard")

COOKIE = "lockhook_session"
COOKIE_MAX_AGE_S = 7 * 24 * 3600
LOGIN_BODY_MAX = 4096
LOGIN_FIELDS = ("token", "api_token", "password")  # the form sends `token`; scripts may use the others
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
                               "img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
}


def session_value(token: str) -> str:
    """The cookie holds a value derived from the token, not the token: a leaked cookie is not an API key."""
    return hmac.new(token.encode(), b"lockhook dashboard session v1", hashlib.sha256).hexdigest()


def _signed_in(request: Request) -> bool:
    token = request.app.state.settings.api_token
    if not token:
        return False
    cookie = request.cookies.get(COOKIE)
    if cookie and hmac.compare_digest(cookie.encode("utf-8", "surrogateescape"), session_value(token).encode()):
        return True
    return is_authorized(request)


def require_session(request: Request) -> None:
    """503 api_disabled without a configured token, 401 unauthorized without the cookie or bearer token."""
    if not request.app.state.settings.api_token:
        raise ApiDisabled("LOCKHOOK_API_TOKEN is not set: the dashboard is disabled")
    if not _signed_in(request):
        raise Unauthorized("sign in at /dashboard or send Authorization: Bearer <LOCKHOOK_API_TOKEN>")


def _same_origin(request: Request) -> None:
    """State-changing posts must come from this site (the cookie is SameSite=Strict too)."""
    origin = request.headers.get("origin")
    if origin and origin != "null" and origin.split("://", 1)[-1] != request.headers.get("host", ""):
        raise Unauthorized("cross-site request refused")


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
    if not request.app.state.settings.api_token or not _signed_in(request):
        return _login_page(request)
    filters = data.Filters.from_query(request.query_params)
    overview = await _read(data.overview, request.app.state.sync_redis, filters)
    return _page(request, "overview.html", templating.overview_context(overview, filters))


async def login(request: Request) -> Response:
    settings = request.app.state.settings
    if not settings.api_token:
        return _login_page(request)
    _same_origin(request)
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > LOGIN_BODY_MAX:
            raise ValidationFailed("login form too large")
    try:
        form = parse_qs(body.decode("utf-8"), max_num_fields=5)
        token = next((form[k][0] for k in LOGIN_FIELDS if form.get(k)), "").strip()
    except (UnicodeDecodeError, ValueError):
        token = ""
    if not token or not hmac.compare_digest(token.encode(), settings.api_token.encode()):
        log.info("dashboard sign-in refused")
        return _login_page(request, "That is not the API token.", 401)
    response = RedirectResponse("/dashboard", status_code=303, headers=SECURITY_HEADERS)
    response.set_cookie(COOKIE, session_value(settings.api_token), max_age=COOKIE_MAX_AGE_S, path="/dashboard",
                        httponly=True, samesite="strict", secure=_https(request))
    return response


def _https(request: Request) -> bool:
    """Behind a PaaS router TLS ends at the proxy, which says so in X-Forwarded-Proto."""
    forwarded = request.headers.get("x-forwarded-proto", "").split(",")[0].strip().lower()
    return request.url.scheme == "https" or forwarded == "https"


async def logout(request: Request) -> Response:
    response = RedirectResponse("/dashboard", status_code=303, headers=SECURITY_HEADERS)
    response.delete_cookie(COOKIE, path="/dashboard", httponly=True, samesite="strict")
    return response


async def command(request: Request) -> Response:
    require_session(request)
    command_id = request.path_params["command_id"]
    if not is_id(command_id):  # would name a key of another type
        raise NotFound("no such command")
    found, timeline = await _read(data.command_detail, request.app.state.sync_redis, command_id)
    if found is None:
        raise NotFound("no such command")
    return _page(request, "command.html", templating.command_context(found, timeline))


async def resend(request: Request) -> Response:
    """Re-send a failed notification (same id and body, a new round of attempts) via the notifications store."""
    require_session(request)
    _same_origin(request)
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
    require_session(request)
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
        try:
            while (left := stop_at - time.monotonic()) > 0:
                try:
                    message = await asyncio.wait_for(queue.get(), timeout=min(15.0, left))
                except TimeoutError:
                    yield ": keep-alive\n\n"
                    continue
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
    require_session(request)
    return Response(_asset("dashboard.js"), media_type="text/javascript",
                    headers={**SECURITY_HEADERS, "Cache-Control": "private, max-age=300"})


async def stylesheet(request: Request) -> Response:
    """Open to all: the sign-in form uses it too."""
    return Response(_asset("dashboard.css"), media_type="text/css",
                    headers={**SECURITY_HEADERS, "Cache-Control": "max-age=300"})


routes = [
    Route("/dashboard", dashboard, methods=["GET"]),
    Route("/dashboard/login", login, methods=["POST"]),
    Route("/dashboard/logout", logout, methods=["POST"]),
    Route("/dashboard/events", events, methods=["GET"]),
    Route("/dashboard/commands/{command_id}", command, methods=["GET"]),
    Route("/dashboard/notifications/{notification_id}/retry", resend, methods=["POST"]),
    Route("/dashboard/static/dashboard.js", script, methods=["GET"]),
    Route("/dashboard/static/dashboard.css", stylesheet, methods=["GET"]),
]
