"""GET /locks and GET /locks/{device_id}: every known lock with its state, and one lock with its event log."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from lockhook.errors import NotFound
from lockhook.processing.locks import device_events, lock_page, lock_state
from receiver.auth import protected
from receiver.commands_api import PageQuery, in_thread, not_found_unless_id, paged, parse_query

# -- GET /locks ------------------------------------------------------------------------------------

async def list_locks(request: Request) -> JSONResponse:
    """Every device an event was seen for, most recent first, with its state."""
    query = parse_query(request, PageQuery)
    found, next_cursor = await paged(lock_page, request.app.state.sync_redis, limit=query.limit,
                                      cursor=query.cursor)
    return JSONResponse({"locks": found, "count": len(found), "next_cursor": next_cursor})


# -- GET /locks/{device_id} ------------------------------------------------------------------------

async def get_lock(request: Request) -> JSONResponse:
    device_id = not_found_unless_id(request.path_params["device_id"], "lock state or events for a device")
    client = request.app.state.sync_redis

    def read() -> tuple[dict | None, list[dict]]:
        return lock_state(client, device_id), device_events(client, device_id, limit=20)

    state, events = await in_thread(read)
    if state is None and not events:
        raise NotFound(f"no lock state or events for device {device_id!r}")
    body = state or {"device_id": device_id, "locked": None, "occurred_at": None, "method": None,
                     "performed_via": None, "online": None, "battery": None}
    body["events"] = events
    return JSONResponse(body)


routes = [
    Route("/locks", protected(list_locks), methods=["GET"], name="list_locks"),
    Route("/locks/{device_id}", protected(get_lock), methods=["GET"], name="get_lock"),
]
