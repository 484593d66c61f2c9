"""Per-delivery observation on the webhook ack path: one log line, a counter or histogram update, no Redis."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import Response

from lockhook.errors import LockhookError
from lockhook.logs import LineBatcher
from lockhook.metrics import record_ack, record_rejection

log = logging.getLogger("lockhook.deliveries")
lines = LineBatcher("lockhook.deliveries")

Handler = Callable[[Request], Awaitable[Response]]
_ID_HEADERS = ("svix-id", "webhook-id")


def _delivery_id(request: Request) -> str | None:
    for name in _ID_HEADERS:
        value = request.headers.get(name)
        if value:
            return value[:200]
    return None


def observed(endpoint: str, handler: Handler) -> Handler:
    """Wrap a webhook handler: ack latency, error answers by code, and one structured line per delivery."""

    async def wrapper(request: Request) -> Response:
        started = time.perf_counter()
        try:
            response = await handler(request)
        except LockhookError as exc:
            elapsed = time.perf_counter() - started
            record_rejection(endpoint, exc.code, exc.status_code, elapsed)
            log.info("delivery rejected", extra={"endpoint": endpoint, "delivery_id": _delivery_id(request),
                                                 "outcome": exc.code, "status": exc.status_code,
                                                 "latency_ms": round(elapsed * 1000, 2)})
            raise
        except Exception:
            elapsed = time.perf_counter() - started
            record_rejection(endpoint, "internal_error", 500, elapsed)
            raise
        elapsed = time.perf_counter() - started
        record_ack(endpoint, elapsed)
        delivery_id, outcome = request.state.delivery  # set by the handler: no re-parsing of headers or body
        lines.info("delivery", endpoint=endpoint, delivery_id=delivery_id, outcome=outcome,
                   status=response.status_code, latency_ms=round(elapsed * 1000, 2))
        return response

    return wrapper
