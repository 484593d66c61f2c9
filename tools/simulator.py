"""A device cloud on localhost that can also play Seam, confirming actions by signed webhooks.

Device cloud: `POST /locks/{lock_id}/actions {action, custom_id}` answers `pending` with an
`action_id` (or `DEVICE_OFFLINE` at once for offline locks), then after a delay posts a signed
`lock.action_completed` to the receiver's /webhooks/device-cloud.
Seam: `POST /locks/lock_door|unlock_door {device_id}` answers a pending `action_attempt`, then posts
signed `action_attempt.*` and `lock.locked|unlocked` events to /webhooks/seam;
`POST /action_attempts/get` answers the attempt's current state (for polling).
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import random
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from lockhook.ingest.signatures import signature_headers

log = logging.getLogger("lockhook.simulator")

ACTIONS = ("lock", "unlock")
FAILURE_MESSAGES = {
    "LOCK_JAMMED": "The deadbolt could not retract.",
    "BOLT_OBSTRUCTED": "The lock mechanism is obstructed.",
    "BOLT_NOT_FULLY_EXTENDED": "The bolt did not fully extend.",
    "MECHANISM_ERROR": "The lock mechanism reported an error.",
}
DELIVERY_ATTEMPTS = 5
OFFLINE_PREFIX = "offline"  # lock ids that are always offline, for tests without flags
JAMMED_PREFIX = "jammed"    # lock ids whose actions always fail (LOCK_JAMMED unless --failure-code)


@dataclass
class SimulatorConfig:
    """Behaviour of the simulated device cloud; every field is a `lockhook simulate` flag."""

    receiver_url: str = "http://127.0.0.1:8000"
    secret: str | None = None          # signs /webhooks/device-cloud deliveries
    seam_secret: str | None = None     # signs /webhooks/seam deliveries (default: secret)
    delay_s: float = 0.5               # completion delay, drawn uniformly from [delay_s, delay_max_s]
    delay_max_s: float | None = None
    failure_rate: float = 0.0          # share of actions that complete with status failed
    failure_code: str = "LOCK_JAMMED"
    offline: frozenset[str] = frozenset()  # locks that answer DEVICE_OFFLINE at once (also ids "offline*")
    performed_via: str = "remote_api"
    duplicate_rate: float = 0.0        # share of webhooks delivered twice with the same id (like Svix retries)
    api_key: str | None = None         # when set, requests must carry it (Bearer or X-API-Key)
    seam_lock_events: bool = True      # Seam mode also sends lock.locked / lock.unlocked
    seed: int | None = None


@dataclass
class SimState:
    config: SimulatorConfig
    rng: random.Random
    actions: dict[str, dict] = field(default_factory=dict)   # action_id -> what happened
    attempts: dict[str, dict] = field(default_factory=dict)  # action_attempt_id -> Seam attempt
    tasks: set = field(default_factory=set)
    client: httpx.AsyncClient | None = None

    def delay(self) -> float:
        high = max(self.config.delay_max_s or self.config.delay_s, self.config.delay_s)
        return self.rng.uniform(self.config.delay_s, high)

    def fails(self, lock_id: str) -> bool:
        """Lock ids starting with "jammed" always fail; others at the configured rate."""
        return lock_id.startswith(JAMMED_PREFIX) or self.rng.random() < self.config.failure_rate

    def offline(self, lock_id: str) -> bool:
        return lock_id in self.config.offline or lock_id.startswith(OFFLINE_PREFIX)

    def spawn(self, coro) -> None:
        task = asyncio.create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)


def _now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _authorized(request: Request, config: SimulatorConfig) -> bool:
    if not config.api_key:
        return True
    auth = request.headers.get("authorization", "")
    offered = auth[7:] if auth.lower().startswith("bearer ") else request.headers.get("x-api-key", "")
    return hmac.compare_digest(offered.encode(), config.api_key.encode())


async def _json(request: Request) -> dict | None:
    try:
        data = json.loads(await request.body() or b"{}")
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


async def deliver(state: SimState, endpoint: str, event: dict) -> int | None:
    """POST a signed event to the receiver, retrying like Svix (same id) until a 2xx; returns the status."""
    secret = state.config.secret if endpoint == "device-cloud" else (state.config.seam_secret or state.config.secret)
    url = f"{state.config.receiver_url.rstrip('/')}/webhooks/{endpoint}"
    body = json.dumps(event).encode()
    delivery_id = "msg_" + uuid.uuid4().hex
    times = 2 if state.rng.random() < state.config.duplicate_rate else 1
    status = None
    for _ in range(times):
        for attempt in range(DELIVERY_ATTEMPTS):
            headers = signature_headers(secret, delivery_id, body)
            headers["content-type"] = "application/json"
            try:
                response = await state.client.post(url, content=body, headers=headers)
                status = response.status_code
                if response.is_success:
                    break
            except httpx.HTTPError as exc:
                log.warning("webhook to %s failed: %s", url, type(exc).__name__)
            await asyncio.sleep(min(0.2 * 2 ** attempt, 2.0))
    return status


async def _complete_device_action(state: SimState, record: dict) -> None:
    await asyncio.sleep(record["delay_s"])
    event = {"event_type": "lock.action_completed", "device_id": record["lock_id"],
             "action_id": record["action_id"], "custom_id": record["custom_id"], "action": record["action"]}
    if record["outcome"] == "success":
        event.update(status="success", performed_via=state.config.performed_via)
    else:
        event.update(status="failed", error_code=record["error_code"],
                     message=FAILURE_MESSAGES.get(record["error_code"], "The action failed."))
    event["timestamp"] = _now_iso()
    record["webhook_status"] = await deliver(state, "device-cloud", event)
    record["completed_at"] = event["timestamp"]


async def device_action(request: Request) -> JSONResponse:
    """`POST /locks/{lock_id}/actions`: accept a lock/unlock, answer pending now, confirm later by webhook."""
    state: SimState = request.app.state.sim
    if not _authorized(request, state.config):
        return JSONResponse({"error_code": "UNAUTHORIZED", "message": "missing or wrong API key"}, status_code=401)
    lock_id = request.path_params["lock_id"]
    data = await _json(request)
    if data is None or data.get("action") not in ACTIONS:
        return JSONResponse({"error_code": "INVALID_REQUEST", "message": "action must be lock or unlock"},
                            status_code=400)
    if state.offline(lock_id):
        return JSONResponse({"error_code": "DEVICE_OFFLINE",
                             "message": "The device is currently offline and cannot accept commands."},
                            status_code=409)
    custom_id = data.get("custom_id") if isinstance(data.get("custom_id"), str) else None
    action_id = "act_" + uuid.uuid4().hex[:16]
    failed = state.fails(lock_id)
    record = {"action_id": action_id, "custom_id": custom_id, "lock_id": lock_id, "action": data["action"],
              "outcome": "failed" if failed else "success", "error_code": state.config.failure_code if failed else None,
              "delay_s": state.delay()}
    state.actions[action_id] = record
    state.spawn(_complete_device_action(state, record))
    return JSONResponse({"action_id": action_id, "custom_id": custom_id, "status": "pending", "lock_id": lock_id,
                         "action": data["action"]})


def _attempt_view(attempt: dict) -> dict:
    return {k: attempt[k] for k in ("action_attempt_id", "action_type", "status", "result", "error")}


async def _complete_seam_attempt(state: SimState, attempt: dict) -> None:
    await asyncio.sleep(attempt["delay_s"])
    succeeded = attempt["planned"] == "success"
    verb = "lock_door" if attempt["action_type"] == "LOCK_DOOR" else "unlock_door"
    now = _now_iso()
    attempt.update(status="success" if succeeded else "error", result={} if succeeded else None,
                   error=None if succeeded else {"type": state.config.failure_code,
                                                 "message": FAILURE_MESSAGES.get(state.config.failure_code,
                                                                                 "The action failed.")})
    common = {"workspace_id": "ws_simulator", "device_id": attempt["device_id"], "created_at": now, "occurred_at": now}
    outcome = "succeeded" if succeeded else "failed"
    event = {"event_id": str(uuid.uuid4()), "event_type": f"action_attempt.{verb}.{outcome}",
             "action_attempt_id": attempt["action_attempt_id"], "action_type": attempt["action_type"],
             "status": attempt["status"], **common}
    attempt["webhook_status"] = await deliver(state, "seam", event)
    if succeeded and state.config.seam_lock_events:
        lock_event = {"event_id": str(uuid.uuid4()),
                      "event_type": "lock.locked" if verb == "lock_door" else "lock.unlocked",
                      "action_attempt_id": attempt["action_attempt_id"], "method": "seamapi", **common}
        await deliver(state, "seam", lock_event)


def seam_action(action_type: str):
    async def handler(request: Request) -> JSONResponse:
        state: SimState = request.app.state.sim
        if not _authorized(request, state.config):
            return JSONResponse({"error": {"type": "unauthorized", "message": "bad API key"}, "ok": False},
                                status_code=401)
        data = await _json(request)
        device_id = data.get("device_id") if data else None
        if not isinstance(device_id, str) or not device_id:
            return JSONResponse({"error": {"type": "invalid_input", "message": "device_id is required"}, "ok": False},
                                status_code=400)
        if state.offline(device_id):
            return JSONResponse({"error": {"type": "device_offline", "message": "The device is offline."},
                                 "ok": False}, status_code=400)
        attempt = {"action_attempt_id": str(uuid.uuid4()), "action_type": action_type, "status": "pending",
                   "result": None, "error": None, "device_id": device_id,
                   "planned": "failed" if state.fails(device_id) else "success", "delay_s": state.delay()}
        state.attempts[attempt["action_attempt_id"]] = attempt
        state.spawn(_complete_seam_attempt(state, attempt))
        return JSONResponse({"action_attempt": _attempt_view(attempt), "ok": True})

    return handler


async def get_action_attempt(request: Request) -> JSONResponse:
    state: SimState = request.app.state.sim
    data = await _json(request) or {}
    attempt = state.attempts.get(str(data.get("action_attempt_id") or request.query_params.get("action_attempt_id")))
    if attempt is None:
        return JSONResponse({"error": {"type": "action_attempt_not_found", "message": "not found"}, "ok": False},
                            status_code=404)
    return JSONResponse({"action_attempt": _attempt_view(attempt), "ok": True})


async def list_actions(request: Request) -> JSONResponse:
    """What the simulator did, for tests and the demo."""
    state: SimState = request.app.state.sim
    return JSONResponse({"actions": list(state.actions.values()),
                         "action_attempts": list(state.attempts.values())})


async def healthz(request: Request) -> JSONResponse:
    return JSONResponse({"status": "ok"})


def build_app(config: SimulatorConfig) -> Starlette:
    """The simulator as a Starlette app (run it with uvicorn, or in tests with TestClient)."""
    if not config.secret:
        raise ValueError("the simulator needs a webhook secret to sign its deliveries")
    state = SimState(config, random.Random(config.seed))

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette):
        state.client = httpx.AsyncClient(timeout=10)
        try:
            yield
        finally:
            if state.tasks:
                await asyncio.wait(set(state.tasks), timeout=5)
            await state.client.aclose()

    routes = [
        Route("/locks/lock_door", seam_action("LOCK_DOOR"), methods=["POST"]),
        Route("/locks/unlock_door", seam_action("UNLOCK_DOOR"), methods=["POST"]),
        Route("/action_attempts/get", get_action_attempt, methods=["GET", "POST"]),
        Route("/locks/{lock_id}/actions", device_action, methods=["POST"]),
        Route("/_simulator/actions", list_actions, methods=["GET"]),
        Route("/healthz", healthz, methods=["GET"]),
    ]
    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.sim = state
    return app


def serve(config: SimulatorConfig, host: str, port: int) -> None:
    import uvicorn

    uvicorn.run(build_app(config), host=host, port=port, access_log=False, log_level="warning")
