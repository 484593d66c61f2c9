"""POST /webhooks/seam and /webhooks/device-cloud: verify on the raw body, store once, answer fast."""

from __future__ import annotations

import json
import logging

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from lockhook.errors import EndpointDisabled
from lockhook.ingest.inbox import Delivery
from lockhook.ingest.signatures import check_unambiguous, verify
from lockhook.metrics import RECORDER_FAILURES
from receiver.body import read_body
from receiver.observe import observed

log = logging.getLogger("lockhook.receiver")

ENDPOINTS = ("seam", "device-cloud")
_KEPT_HEADERS = (b"svix-", b"webhook-", b"content-type", b"user-agent")


def is_event(body: bytes) -> bool:
    """A processable delivery is a JSON object with a string `event_type`; anything else is quarantined."""
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):
        return False
    return isinstance(data, dict) and isinstance(data.get("event_type"), str)


def _kept_headers(request: Request) -> dict[str, str]:
    """What a replay needs (signature headers, content type, sender); never cookies or credentials."""
    return {k.decode("latin-1"): v.decode("latin-1") for k, v in request.headers.raw if k.startswith(_KEPT_HEADERS)}


def _record(recorder, delivery: Delivery) -> None:
    """The delivery is stored already: a recorder failure is logged and counted, never the sender's problem."""
    try:
        recorder(delivery)
    except Exception as exc:
        RECORDER_FAILURES.labels(delivery.endpoint).inc()
        log.warning("could not record the delivery as a fixture: %s", type(exc).__name__,
                    extra={"delivery_id": delivery.delivery_id})


def webhook_route(endpoint: str) -> Route:
    """One route per sender, each with its own secrets."""

    async def receive(request: Request) -> JSONResponse:
        state = request.app.state
        secrets = state.webhook_secrets[endpoint]
        if not secrets:
            raise EndpointDisabled(f"no secret is configured for /webhooks/{endpoint}")
        check_unambiguous(request.headers.raw)
        body = await read_body(request, state.settings.max_body_bytes)
        delivery_id = verify(secrets, request.headers, body)
        delivery = Delivery(endpoint, delivery_id, _kept_headers(request), body, quarantine=not is_event(body))
        if await state.inbox.put(delivery):
            status = "quarantined" if delivery.quarantine else "accepted"
            if state.recorder is not None:
                _record(state.recorder, delivery)
        else:
            status = "duplicate"
        request.state.delivery = (delivery_id, status)  # for the per-delivery log line (receiver/observe.py)
        return JSONResponse({"status": status, "delivery_id": delivery_id},
                            status_code=200 if status == "duplicate" else 202)

    return Route(f"/webhooks/{endpoint}", observed(endpoint, receive), methods=["POST"], name=f"webhook_{endpoint}")


routes = [webhook_route(endpoint) for endpoint in ENDPOINTS]
