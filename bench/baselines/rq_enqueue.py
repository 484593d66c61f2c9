"""Baseline (b): the typical receiver: svix verify, then RQ `Queue.enqueue` in a thread pool, then 202."""

from __future__ import annotations

import os

import redis
from rq import Queue
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from svix.webhooks import Webhook, WebhookVerificationError

_webhook = Webhook(os.environ["SEAM_WEBHOOK_SECRET"])
_queue = Queue("bench-deliveries", connection=redis.Redis.from_url(os.environ["REDIS_URL"]))


async def receive(request: Request) -> JSONResponse:
    body = await request.body()
    headers = dict(request.headers)
    try:
        _webhook.verify(body, headers)
    except (WebhookVerificationError, ValueError):
        return JSONResponse({"error": "invalid_signature"}, status_code=401)
    await run_in_threadpool(_queue.enqueue, "bench.baselines.rq_apply.process_delivery", "seam",
                            headers["svix-id"], headers, body)
    return JSONResponse({"status": "accepted", "delivery_id": headers["svix-id"]}, status_code=202)


app = Starlette(routes=[Route("/webhooks/seam", receive, methods=["POST"])])
