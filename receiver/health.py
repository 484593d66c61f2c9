"""GET /healthz: 200 when Redis answers, 503 when it does not (the one route open without a token)."""

from __future__ import annotations

import asyncio

from redis.exceptions import RedisError
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from lockhook import defaults
from lockhook.redis_client import eviction_warning


async def healthz(request: Request) -> JSONResponse:
    try:
        async with asyncio.timeout(defaults.REDIS_SOCKET_TIMEOUT_S):
            memory = await request.app.state.redis.info("memory")
    except (RedisError, OSError, TimeoutError):
        return JSONResponse({"status": "unavailable", "redis": "down"}, status_code=503,
                            headers={"Retry-After": str(defaults.RETRY_AFTER_S)})
    warning = eviction_warning(memory)
    return JSONResponse({"status": "ok", "redis": "up", **({"warnings": [warning]} if warning else {})})


routes = [Route("/healthz", healthz, methods=["GET"])]
