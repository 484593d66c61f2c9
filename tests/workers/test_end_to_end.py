"""The Procfile's real web and worker processes: a signed confirming event resolves its command, on every path."""

import json
import time
import uuid

import httpx
import pytest

from lockhook.commands.store import CommandStore
from tests.support.config import DEVICE_CLOUD_SECRET, signed
from tests.support.waiting import wait_for


def iso_now() -> str:
    ms = int(time.time() * 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms / 1000)) + f".{ms % 1000:03d}Z"


@pytest.fixture
def live(start_web, start_worker, r):
    base = start_web()
    worker = start_worker()
    # the worker is up once it has started the maintenance chain
    wait_for(lambda: r.exists("lh:maintenance:scheduled"), timeout=20)
    return base, worker, CommandStore(r)


PATHS = {
    "rule1_action_id": ("device-cloud", dict(custom_id="req_a", action_id="act_a"),
                        {"event_type": "lock.action_completed", "action_id": "act_a", "action": "unlock",
                         "status": "success", "performed_via": "pin_code"}),
    "rule1_custom_id": ("device-cloud", dict(custom_id="req_b"),
                        {"event_type": "lock.action_completed", "custom_id": "req_b", "action": "unlock",
                         "status": "success"}),
    "rule2_action_attempt": ("seam", dict(action_attempt_id="aa_c"),
                             {"event_type": "action_attempt.unlock_door.succeeded", "action_attempt_id": "aa_c",
                              "action_type": "UNLOCK_DOOR", "status": "success"}),
    "rule3_lock_event_with_attempt": ("seam", dict(action_attempt_id="aa_d"),
                                      {"event_type": "lock.unlocked", "action_attempt_id": "aa_d",
                                       "method": "seamapi"}),
    "rule4_idless_remote": ("seam", dict(),
                            {"event_type": "lock.unlocked", "method": "remote"}),
}


def test_each_correlation_path_resolves_over_http(live):
    """Each path is timed and printed; how fast lockhook confirms under load is bench/e2e.py's to measure."""
    base, worker, store = live
    took = {}
    for name, (endpoint, ids, event) in PATHS.items():
        device = f"dev_{name}"
        via = "device_cloud" if endpoint == "device-cloud" else "seam"
        cmd, _ = store.register(device, "unlock", via, **ids)
        event = {**event, "device_id": device, "event_id": "evt_" + uuid.uuid4().hex, "occurred_at": iso_now(),
                 "timestamp": iso_now()}
        if endpoint == "device-cloud":
            event.pop("event_id")
        body = json.dumps(event).encode()
        secret = DEVICE_CLOUD_SECRET if endpoint == "device-cloud" else None
        headers = signed(body, "msg_" + uuid.uuid4().hex, **({"secret": secret} if secret else {}))
        started = time.monotonic()
        resp = httpx.post(f"{base}/webhooks/{endpoint}", content=body, headers=headers)
        assert resp.status_code == 202, resp.text
        wait_for(lambda c=cmd: store.get(c.command_id).status != "pending", timeout=10, interval=0.005)
        took[name] = time.monotonic() - started
        assert store.get(cmd.command_id).status == "succeeded", name
    assert "Traceback" not in worker.output()
    print("\nresolved after " + ", ".join(f"{name} {s * 1000:.0f} ms" for name, s in took.items()))


def test_duplicates_and_early_events_over_http(live):
    base, worker, store = live
    event = {"event_type": "lock.action_completed", "device_id": "dev_e", "custom_id": "req_early",
             "action": "lock", "status": "failed", "error_code": "LOCK_JAMMED", "timestamp": iso_now()}
    body = json.dumps(event).encode()
    headers = signed(body, "msg_early", DEVICE_CLOUD_SECRET)
    assert httpx.post(f"{base}/webhooks/device-cloud", content=body, headers=headers).status_code == 202
    assert httpx.post(f"{base}/webhooks/device-cloud", content=body, headers=headers).status_code == 200
    wait_for(lambda: store.redis.exists("lh:parked:custom_id:req_early"), timeout=5)
    cmd, _ = store.register("dev_e", "lock", "device_cloud", custom_id="req_early")
    assert cmd.status == "failed" and cmd.error_code == "LOCK_JAMMED"
