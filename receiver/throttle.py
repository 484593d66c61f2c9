"""Throttling of failed sign-ins and wrong bearer tokens per client address, counted in Redis.

A fixed window per address: its first failure starts a counter that expires `AUTH_FAILURE_WINDOW_S`
later. Once it holds `AUTH_FAILURES_MAX` failures, every token check from that address, right or
wrong, answers 429 `too_many_attempts` with `Retry-After` (the rest of the window) until it expires:
were a right token let through, 200 against 429 would tell an attacker which guess was right. Each
check is one atomic script call (decide, then count), so concurrent guesses cannot slip past the limit.
Other addresses are unaffected, signed-in dashboard sessions keep working, correct tokens are never
counted, and nothing ever sleeps. The counter lives in Redis so every web process shares it; a Redis
that does not answer fails open (no throttle: the token check itself stays), logged once a minute.

The address is the ASGI scope's client, which uvicorn rewrites from `X-Forwarded-For` only for peers in
`--forwarded-allow-ips` (default 127.0.0.1): behind a proxy, set it to the proxy's address, or every
caller shares the proxy's address and one attacker throttles them all.
"""

from __future__ import annotations

import logging
import time

from redis.exceptions import RedisError
from starlette.requests import Request

from lockhook import defaults
from lockhook.errors import TooManyAttempts
from lockhook.scripts import Scripts

log = logging.getLogger("lockhook.throttle")

_last_warning = 0.0


def client_address(request: Request) -> str:
    """The caller's address as uvicorn decided it (proxy headers only from trusted proxies)."""
    client = request.scope.get("client")
    return client[0] if client and client[0] else "unknown"


def _scripts(state) -> Scripts:
    scripts = getattr(state, "auth_scripts", None)
    if scripts is None:
        scripts = state.auth_scripts = Scripts(state.redis)
    return scripts


async def attempt(request: Request, correct: bool) -> None:
    """Let a token check answer, counting it when the token was wrong; TooManyAttempts (429) when throttled."""
    address = client_address(request)
    try:
        allowed, value = await _scripts(request.app.state).auth_attempt(
            args=Scripts.args(int(time.time() * 1000), address, int(correct)))
    except (RedisError, OSError) as exc:
        _storage_failed(exc)
        return
    if not allowed:
        raise TooManyAttempts(f"too many failed sign-ins or wrong tokens from this address; retry in {value} s",
                              retry_after_s=max(1, int(value)))
    if not correct and value == defaults.AUTH_FAILURES_MAX:
        log.warning("auth throttled: %d failed sign-ins or wrong tokens from %s within %d s",
                    value, address, defaults.AUTH_FAILURE_WINDOW_S)


def _storage_failed(exc: Exception) -> None:
    global _last_warning
    now = time.monotonic()
    if now - _last_warning >= 60:
        _last_warning = now
        log.warning("auth throttle not applied: Redis did not answer (%s)", type(exc).__name__)
