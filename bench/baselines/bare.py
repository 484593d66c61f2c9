"""Baseline (a): a bare Starlette endpoint that only verifies the svix signature and answers 202."""

from __future__ import annotations

import os

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from svix.webhooks import Webhook, WebhookVerificationError

_webhook = Webhook(os.environ["SEAM_WEBHOOK_SECRET"])


async def receive(request: Request) -> JSONResponse:
    body = await request.body()
    try:
        _webhook.verify(body, dict(request.headers))
    except (WebhookVerificationError, ValueError):
        return JSONResponse({"error": "invalid_signature"}, status_code=401)
    return JSONResponse({"status": "accepted", "delivery_id": request.headers["svix-id"]}, status_code=202)


app = Starlette(routes=[Route("/webhooks/seam", receive, methods=["POST"])])
