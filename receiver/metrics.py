"""GET /metrics: Prometheus text, behind the API token; cluster counts from Redis, answers from this process."""

from __future__ import annotations

import anyio
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from lockhook.metrics import exposition_registry
from receiver.auth import protected


@protected
async def metrics(request: Request) -> Response:
    state = request.app.state
    registry = exposition_registry(state.sync_redis, state.settings.prometheus_multiproc_dir)
    body = await anyio.to_thread.run_sync(generate_latest, registry)
    return Response(body, media_type=CONTENT_TYPE_LATEST, headers={"Cache-Control": "no-store"})


routes = [Route("/metrics", metrics, methods=["GET"])]
