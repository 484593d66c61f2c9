"""Throttling of failed sign-ins and wrong bearer tokens per client address, counted in Redis.

A fixed window per address: its first failure starts a counter that expires `AUTH_FAILURE_WINDOW_S`
later. Once it holds `AUTH_FAILURES_MAX` failures, every token check from that address, right or
wrong, answers 429 `too_many_attempts` with `Retry-After` (the rest of the window) until it expires:
were a right token let through, 200 against 429 would tell an attacker which guess was right. Each
check is one atomic script call (decide, then count), so concurrent guesses cannot slip past the limit.
Other addresses are unaffected, signed-in dashboard sessions keep working, correct tokens are never
counted, and nothing ever sleeps. The counter lives in Redis so every web process shares it; a Redis
that does not answer fails open (no throttle: the token check itself stays), logged once a minute.

Behind a PaaS router or load balancer, TRUSTED_PROXY_HOPS (1 for one router, as on Heroku and Render)
takes the address the router saw from `X-Forwarded-For`; without it every caller would share the router's
address and one attacker would throttle them all.
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
    """The caller's address: with TRUSTED_PROXY_HOPS = n, the n-th `X-Forwarded-For` entry from the right
    (what the outermost of n proxies saw: entries further left are the client's to choose); else the peer
    as uvicorn decided it (it rewrites from proxy headers only for `--forwarded-allow-ips`)."""
    hops = request.app.state.settings.trusted_proxy_hops
    if hops:
        forwarded = [a.strip() for h in request.headers.getlist("x-forwarded-for") for a in h.split(",") if a.strip()]
        if len(forwarded) >= hops:
            return forwarded[-hops]
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
