"""Bearer-token check for the commands API, OpenAPI, metrics and dashboard: never open by default, throttled."""

from __future__ import annotations

import functools
import hmac
from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import Response

from lockhook.errors import ApiDisabled, Unauthorized
from receiver import throttle

Handler = Callable[[Request], Awaitable[Response]]


def bearer_token(request: Request) -> str | None:
    """The token of an `Authorization: Bearer <token>` header (scheme case-insensitive), else None."""
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer":
        return None
    return value.strip() or None


def is_correct_token(given: str, expected: str) -> bool:
    """Constant-time comparison; bytes, because compare_digest refuses non-ASCII str (headers are latin-1)."""
    return hmac.compare_digest(given.encode("utf-8", "surrogateescape"), expected.encode("utf-8"))


async def check_bearer(request: Request) -> bool:
    """True for the configured bearer token, False for none or a wrong one (counted by the throttle).

    TooManyAttempts (429) when the caller's address is throttled, whatever the token; a request without
    a token is no guess and touches nothing.
    """
    expected = request.app.state.settings.api_token
    given = bearer_token(request)
    if not expected or given is None:
        return False
    correct = is_correct_token(given, expected)
    await throttle.attempt(request, correct)
    return correct


async def require_token(request: Request) -> None:
    """Raise ApiDisabled (503) when no token is configured, Unauthorized (401) when it is not presented."""
    if not request.app.state.settings.api_token:
        raise ApiDisabled("LOCKHOOK_API_TOKEN is not set: the API is disabled")
    if not await check_bearer(request):
        raise Unauthorized("a valid bearer token is required (Authorization: Bearer <LOCKHOOK_API_TOKEN>)")


def protected(handler: Handler) -> Handler:
    """Decorate a route handler so it runs only for requests with the API token."""

    @functools.wraps(handler)
    async def wrapper(request: Request) -> Response:
        await require_token(request)
        return await handler(request)

    return wrapper
