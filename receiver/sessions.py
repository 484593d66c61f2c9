"""Dashboard sessions: a random id in the cookie, the session itself in Redis (revocable, expiring).

The cookie holds only `secrets.token_urlsafe(32)`; Redis keeps, under the SHA-256 of that id (a Redis dump
holds no usable cookie), a digest of the API token the session was made with. A session is valid while its
key lives (`DASHBOARD_SESSION_TTL_S`) and its digest matches the token configured now, so logging out
(the key is deleted) and rotating `LOCKHOOK_API_TOKEN` (the digest no longer matches) both end it.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets

from redis.exceptions import RedisError
from starlette.requests import Request
from starlette.responses import Response

from lockhook import defaults, keys
from lockhook.errors import StorageUnavailable

COOKIE = "lockhook_session"
COOKIE_PATH = "/dashboard"
_SESSION_ID = re.compile(r"[A-Za-z0-9_-]{32,128}")


def _token_digest(token: str) -> str:
    return hashlib.sha256(b"lockhook dashboard session token\0" + token.encode()).hexdigest()


def _key(session_id: str) -> str:
    return keys.dashboard_session(hashlib.sha256(session_id.encode()).hexdigest())


def _cookie_id(request: Request) -> str | None:
    value = request.cookies.get(COOKIE)
    return value if value and _SESSION_ID.fullmatch(value) else None


async def create(request: Request) -> str:
    """Store a new session for the configured token; returns its id (for the cookie only)."""
    session_id = secrets.token_urlsafe(32)
    try:
        await request.app.state.redis.set(_key(session_id), _token_digest(request.app.state.settings.api_token),
                                          ex=defaults.DASHBOARD_SESSION_TTL_S)
    except (RedisError, OSError):
        raise StorageUnavailable("storage is unavailable: cannot sign in") from None
    return session_id


async def is_valid(request: Request) -> bool:
    """True when the request's cookie names a live session made with the token configured now."""
    session_id = _cookie_id(request)
    if session_id is None:
        return False
    redis = request.app.state.redis
    try:
        stored = await redis.get(_key(session_id))
        if stored is None:
            return False
        if hmac.compare_digest(stored, _token_digest(request.app.state.settings.api_token).encode()):
            return True
        await redis.delete(_key(session_id))  # made under a token that has been rotated away
    except (RedisError, OSError):
        raise StorageUnavailable("storage is unavailable") from None
    return False


async def still_valid(request: Request) -> bool:
    """For a long-lived response (the live stream): False once the session ended; a Redis hiccup is no sign-out."""
    try:
        return await is_valid(request)
    except StorageUnavailable:
        return True


async def revoke(request: Request) -> None:
    """Delete the request's session (logging out): its cookie stops working at once, wherever it was copied."""
    session_id = _cookie_id(request)
    if session_id is None:
        return
    try:
        await request.app.state.redis.delete(_key(session_id))
    except (RedisError, OSError):
        raise StorageUnavailable("storage is unavailable: the session was not ended, retry") from None


def set_cookie(request: Request, response: Response, session_id: str) -> None:
    """HttpOnly, SameSite=Strict, scoped to the dashboard, Secure when the browser reached us over https."""
    response.set_cookie(COOKIE, session_id, max_age=defaults.DASHBOARD_SESSION_TTL_S, path=COOKIE_PATH,
                        httponly=True, samesite="strict", secure=_https(request))


def clear_cookie(response: Response) -> None:
    response.delete_cookie(COOKIE, path=COOKIE_PATH, httponly=True, samesite="strict")


def _https(request: Request) -> bool:
    """Behind a PaaS router TLS ends at the proxy, which says so in X-Forwarded-Proto."""
    forwarded = request.headers.get("x-forwarded-proto", "").split(",")[0].strip().lower()
    return request.url.scheme == "https" or forwarded == "https"
