"""POST /webhooks/seam and /webhooks/device-cloud: verify on the raw body, store once, answer fast.

The ack path is a raw ASGI app (no Starlette Request, no response object): it reads the few headers it
needs from the ASGI scope in one pass, the body with the same cap and timeout as every other route, and
answers with pre-encoded JSON. Everything else in the receiver is ordinary Starlette.
"""

from __future__ import annotations

import json
import logging
import time

from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from lockhook import defaults
from lockhook.errors import EndpointDisabled, LockhookError, StorageUnavailable
from lockhook.ingest.bodies import is_event_body
from lockhook.ingest.inbox import Delivery
from lockhook.ingest.signatures import check_unambiguous, verify
from lockhook.logs import LineBatcher
from lockhook.metrics import RECORDER_FAILURES, record_ack, record_rejection
from receiver.body import read_asgi_body

log = logging.getLogger("lockhook.receiver")
lines = LineBatcher("lockhook.deliveries")  # one line per delivery: accepted ones batched, rejected ones direct

ENDPOINTS = ("seam", "device-cloud")
_KEPT_HEADERS = (b"svix-", b"webhook-", b"content-type", b"user-agent")
_JSON_HEADERS = [(b"content-type", b"application/json")]


def _json(content: dict) -> bytes:
    return json.dumps(content, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode()


async def answer(send: Send, status: int, body: bytes, extra_headers: list | None = None) -> None:
    headers = [*_JSON_HEADERS, (b"content-length", str(len(body)).encode()), *(extra_headers or ())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _record(recorder, delivery: Delivery) -> None:
    """The delivery is stored already: a recorder failure is logged and counted, never the sender's problem."""
    try:
        recorder(delivery)
    except Exception as exc:
        RECORDER_FAILURES.labels(delivery.endpoint).inc()
        log.warning("could not record the delivery as a fixture: %s", type(exc).__name__,
                    extra={"delivery_id": delivery.delivery_id})


class WebhookEndpoint:
    """The ASGI app behind one sender's route, each sender with its own secrets."""

    def __init__(self, endpoint: str):
        self.endpoint = endpoint

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        raw_headers = scope["headers"]
        headers = {name.decode("latin-1"): value.decode("latin-1") for name, value in raw_headers}
        try:
            status, delivery_id = await self._store(scope["app"].state, raw_headers, headers, receive)
        except LockhookError as exc:
            elapsed = time.perf_counter() - started
            record_rejection(self.endpoint, exc.code, exc.status_code, elapsed)
            lines.logger.info("delivery rejected", extra={"endpoint": self.endpoint, "outcome": exc.code,
                                                 "delivery_id": (headers.get("svix-id") or headers.get("webhook-id")
                                                                 or "")[:200] or None,
                                                 "status": exc.status_code, "latency_ms": round(elapsed * 1000, 2)})
            retry = [(b"retry-after", str(defaults.RETRY_AFTER_S).encode())] if isinstance(exc, StorageUnavailable) \
                else None
            await answer(send, exc.status_code, _json(exc.to_json()), retry)
            return
        except Exception:
            record_rejection(self.endpoint, "internal_error", 500, time.perf_counter() - started)
            raise  # the app's error handler answers 500 internal_error and logs it
        code = 200 if status == "duplicate" else 202
        await answer(send, code, _json({"status": status, "delivery_id": delivery_id}))
        elapsed = time.perf_counter() - started
        record_ack(self.endpoint, elapsed)
        lines.info("delivery", endpoint=self.endpoint, delivery_id=delivery_id, outcome=status, status=code,
                   latency_ms=round(elapsed * 1000, 2))

    async def _store(self, state, raw_headers, headers: dict[str, str], receive: Receive) -> tuple[str, str]:
        secrets = state.webhook_secrets[self.endpoint]
        if not secrets:
            raise EndpointDisabled(f"no secret is configured for /webhooks/{self.endpoint}")
        check_unambiguous(raw_headers)
        body = await read_asgi_body(receive, headers.get("content-length"), state.settings.max_body_bytes)
        delivery_id = verify(secrets, headers, body)
        kept = {name.decode("latin-1"): value.decode("latin-1") for name, value in raw_headers
                if name.startswith(_KEPT_HEADERS)}
        delivery = Delivery(self.endpoint, delivery_id, kept, body, quarantine=not is_event_body(body))
        if not await state.inbox.put(delivery):
            return "duplicate", delivery_id
        if state.recorder is not None:
            _record(state.recorder, delivery)
        return ("quarantined" if delivery.quarantine else "accepted"), delivery_id


routes = [Route(f"/webhooks/{endpoint}", WebhookEndpoint(endpoint), methods=["POST"], name=f"webhook_{endpoint}")
          for endpoint in ENDPOINTS]
