"""Lock watch over real HTTP: the Procfile's web + worker, the device-cloud simulator and a local notification sink.

A keypad unlock nobody commanded reaches the sink as `lock.unlocked_without_command` with its access code; an
unlock confirming a command does not; a door left unlocked gives exactly one `lock.left_unlocked` and is locked
again by an auto-relock command that resolves; GET /locks/{id} shows who did what; `resolved_by` is bare.
"""

from __future__ import annotations

import base64
import json
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
from svix.webhooks import Webhook

from lockhook import keys
from tests.support.config import API_TOKEN, signed
from tests.support.waiting import wait_for
from tools.devserver import free_port

NOTIFY_SECRET = "whsec_" + base64.b64encode(b"lockhook-watch-test-secret-32by!").decode()


class Sink:
    """A local notification target: verifies each signed POST with svix and keeps its payload."""

    def __init__(self):
        self.payloads: list[dict] = []
        self.lock = threading.Lock()
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                payload = Webhook(NOTIFY_SECRET).verify(body, {k.lower(): v for k, v in self.headers.items()})
                with sink.lock:
                    sink.payloads.append(payload)
                self.send_response(200)
                self.send_header("content-length", "0")
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"

    def of(self, kind: str, device_id: str | None = None) -> list[dict]:
        with self.lock:
            return [p for p in self.payloads if p["type"] == kind
                    and (device_id is None or p["data"].get("device_id") == device_id)]

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def sink():
    s = Sink()
    yield s
    s.close()


def iso_now(offset_ms: int = 0) -> str:
    ms = int(time.time() * 1000) + offset_ms
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms / 1000)) + f".{ms % 1000:03d}Z"


def test_unlocks_explained_left_unlocked_and_auto_relocked(r, start_web, start_worker, start_simulator, sink):
    sim_port = free_port()
    sim_url = f"http://127.0.0.1:{sim_port}"
    env = dict(NOTIFY_WEBHOOK_URL=sink.url, NOTIFY_WEBHOOK_SECRET=NOTIFY_SECRET, DEVICE_CLOUD_URL=sim_url,
               LEFT_UNLOCKED_AFTER_S=2, AUTO_RELOCK_AFTER_S=4)
    base = start_web(**env)
    start_worker(**env)
    start_simulator(base, "--delay", "0.1", port=sim_port)
    wait_for(lambda: r.exists(keys.MAINTENANCE_FLAG), timeout=20)
    api = httpx.Client(base_url=base, headers={"authorization": f"Bearer {API_TOKEN}"}, timeout=40)

    # a keypad unlock with an access code and no command
    keypad = {"event_id": "evt_keypad_" + uuid.uuid4().hex[:8], "event_type": "lock.unlocked",
              "device_id": "front", "method": "keycode", "access_code_id": "ac_front_1",
              "user_identity_id": "ui_guest_7", "acs_credential_id": "cred_3", "workspace_id": "ws",
              "occurred_at": iso_now(), "created_at": iso_now()}
    body = json.dumps(keypad).encode()
    assert httpx.post(f"{base}/webhooks/seam", content=body, headers=signed(body, "msg_keypad")).status_code == 202
    [unexplained] = wait_for(lambda: sink.of("lock.unlocked_without_command", "front"), timeout=20)
    data = unexplained["data"]
    assert (data["access_code_id"], data["user_identity_id"], data["method"]) == ("ac_front_1", "ui_guest_7", "keycode")
    assert data["event_id"] == keypad["event_id"] and data["occurred_at"] == keypad["occurred_at"]

    # an unlock confirming a command (device cloud): resolved, with a bare resolved_by
    created = api.post("/commands", json={"device_id": "back", "action": "unlock", "via": "device_cloud"})
    assert created.status_code == 201, created.text
    command = api.get(f"/commands/{created.json()['command_id']}", params={"wait": 20}).json()
    assert command["status"] == "succeeded" and command["resolved_via"] == "webhook"
    assert command["resolved_by"].startswith("msg_") and ":" not in command["resolved_by"]

    # left unlocked past LEFT_UNLOCKED_AFTER_S, then locked again by an auto-relock that resolves
    relock = wait_for(lambda: next((c for c in api.get("/commands", params={"device_id": "back"}).json()["commands"]
                                    if (c.get("metadata") or {}).get("reason") == "auto_relock"
                                    and c["status"] != "pending"), None), timeout=30)
    assert (relock["action"], relock["via"], relock["status"]) == ("lock", "device_cloud", "succeeded")
    wait_for(lambda: sink.of("command.succeeded") and any(
        p["data"]["command_id"] == relock["command_id"] for p in sink.of("command.succeeded")), timeout=20)
    lock = api.get("/locks/back").json()
    assert lock["locked"] is True and lock["issuer"] == "device_cloud"
    assert "online" in lock and "battery" in lock
    [left] = sink.of("lock.left_unlocked", "back")
    assert left["data"]["unlocked_by"]["performed_via"] == "remote_api" and left["data"]["unlocked_for_s"] >= 2
    # the front door has no issuer: its relock is an anomaly, its left-unlocked alert comes once too
    wait_for(lambda: sink.of("lock.left_unlocked", "front"), timeout=20)
    wait_for(lambda: any(json.loads(a).get("kind") == "auto_relock_without_issuer"
                         for a in r.lrange(keys.ANOMALIES, 0, -1)), timeout=20)
    assert r.zcard(keys.LOCK_WATCH) == 0  # every check fired or was cancelled by the relock
    assert len(sink.of("lock.left_unlocked", "back")) == 1 and len(sink.of("lock.left_unlocked", "front")) == 1
    assert sink.of("lock.unlocked_without_command", "back") == []

    # GET /locks/{id}: each event's own attribution fields and what it did
    front = api.get("/locks/front").json()
    [entry] = [e for e in front["events"] if e["event_type"] == "lock.unlocked"]
    assert (entry["access_code_id"], entry["user_identity_id"], entry["acs_credential_id"]) == \
        ("ac_front_1", "ui_guest_7", "cred_3")
    assert entry["method"] == "keycode" and entry["lock"] == "applied" and entry["unlocked_without_command"] is True
    back_events = api.get("/locks/back").json()["events"]
    confirmed = [e for e in back_events if e.get("command_id") == command["command_id"]]
    assert confirmed and confirmed[0]["performed_via"] == "remote_api"
    api.close()
