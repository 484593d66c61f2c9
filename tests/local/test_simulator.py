"""The simulator over real HTTP: device cloud and Seam, confirming through a live receiver + worker."""

from __future__ import annotations

import httpx

from lockhook import keys
from lockhook.commands.store import CommandStore
from tests.support.config import API_TOKEN
from tests.support.waiting import wait_for
from tools.devserver import free_port


def _status(store: CommandStore, command_id: str):
    command = store.get(command_id)
    return command if command.status != "pending" else None


def test_device_cloud_actions_confirm_by_signed_webhook(r, start_web, start_worker, start_simulator):
    receiver = start_web()
    start_worker()
    sim = start_simulator(receiver, "--delay", "0.1", "--delay-max", "0.3")
    store = CommandStore(r)
    command, _ = store.register("front", "unlock", "device_cloud", custom_id="req_sim_1", schedule_expiry=False)
    answer = httpx.post(f"{sim}/locks/front/actions", json={"action": "unlock", "custom_id": "req_sim_1"})
    assert answer.status_code == 200
    body = answer.json()
    assert body["status"] == "pending" and body["custom_id"] == "req_sim_1"
    assert body["lock_id"] == "front" and body["action"] == "unlock" and body["action_id"].startswith("act_")
    store.attach_ids(command.command_id, action_id=body["action_id"])
    done = wait_for(lambda: _status(store, command.command_id), timeout=20)
    assert (done.status, done.performed_via, done.error_code) == ("succeeded", "remote_api", None)
    assert r.hget(keys.lock_state("front"), "locked") == b"0"
    bad = httpx.post(f"{sim}/locks/front/actions", json={"action": "open"})
    assert bad.status_code == 400 and bad.json()["error_code"] == "INVALID_REQUEST"
    # lock ids by convention, no flags needed: offline* refuses at once, jammed* always fails
    offline = httpx.post(f"{sim}/locks/offline_7/actions", json={"action": "lock", "custom_id": "req_off"})
    assert (offline.status_code, offline.json()["error_code"]) == (409, "DEVICE_OFFLINE")
    jam, _ = store.register("jammed_1", "lock", "device_cloud", custom_id="req_jam", schedule_expiry=False)
    httpx.post(f"{sim}/locks/jammed_1/actions", json={"action": "lock", "custom_id": "req_jam"})
    jammed = wait_for(lambda: _status(store, jam.command_id), timeout=20)  # matched by custom_id alone
    assert (jammed.status, jammed.error_code) == ("failed", "LOCK_JAMMED")


def test_failures_offline_locks_and_retried_deliveries(r, start_web, start_worker, start_simulator):
    receiver = start_web()
    start_worker()
    sim = start_simulator(receiver, "--delay", "0.05", "--failure-rate", "1", "--offline", "garage",
                          "--offline", "shed", "--duplicate-rate", "1", "--api-key", "sim-key")
    auth = {"authorization": "Bearer sim-key"}
    assert httpx.post(f"{sim}/locks/back/actions", json={"action": "lock"}).status_code == 401
    offline = httpx.post(f"{sim}/locks/garage/actions", json={"action": "lock", "custom_id": "x"}, headers=auth)
    assert offline.status_code == 409
    assert offline.json()["error_code"] == "DEVICE_OFFLINE" and offline.json()["message"]
    store = CommandStore(r)
    # the completion can beat the registration: it is parked and resolves the command when it registers
    answer = httpx.post(f"{sim}/locks/back/actions", json={"action": "lock", "custom_id": "req_sim_2"},
                        headers={"x-api-key": "sim-key"}).json()
    command, _ = store.register("back", "lock", "device_cloud", custom_id="req_sim_2",
                                action_id=answer["action_id"], schedule_expiry=False)
    done = wait_for(lambda: _status(store, command.command_id), timeout=20)
    assert (done.status, done.error_code) == ("failed", "LOCK_JAMMED")
    assert done.error_message == "The deadbolt could not retract."
    # every webhook was delivered twice with the same id: the second one is a duplicate
    wait_for(lambda: int(r.hget(keys.DELIVERY_STATS, "device-cloud:duplicate") or 0) >= 1, timeout=10)


def test_plays_seam_action_attempts_and_lock_events(r, start_web, start_worker, start_simulator):
    receiver = start_web()
    start_worker()
    sim = start_simulator(receiver, "--delay", "0.1")
    answer = httpx.post(f"{sim}/locks/lock_door", json={"device_id": "seam_lock_1"})
    assert answer.status_code == 200
    attempt = answer.json()["action_attempt"]
    assert (attempt["status"], attempt["action_type"]) == ("pending", "LOCK_DOOR")
    store = CommandStore(r)
    command, _ = store.register("seam_lock_1", "lock", "seam", action_attempt_id=attempt["action_attempt_id"],
                                schedule_expiry=False)
    done = wait_for(lambda: _status(store, command.command_id), timeout=20)
    assert done.status == "succeeded"
    wait_for(lambda: r.hget(keys.lock_state("seam_lock_1"), "locked") == b"1", timeout=10)
    stats = {k.decode(): int(v) for k, v in r.hgetall(keys.EVENT_STATS).items()}
    assert stats.get("action_attempt.lock_door.succeeded") == 1
    wait_for(lambda: int(r.hget(keys.EVENT_STATS, "lock.locked") or 0) == 1, timeout=10)
    polled = httpx.post(f"{sim}/action_attempts/get", json={"action_attempt_id": attempt["action_attempt_id"]})
    assert polled.json()["action_attempt"]["status"] == "success"
    assert httpx.post(f"{sim}/action_attempts/get", json={"action_attempt_id": "nope"}).status_code == 404


def test_commands_api_issues_through_the_simulator(start_web, start_worker, start_simulator):
    """POST /commands via device_cloud and via seam (the official SDK against the simulator) both confirm."""
    sim_port = free_port()
    sim_url = f"http://127.0.0.1:{sim_port}"
    receiver = start_web(DEVICE_CLOUD_URL=sim_url, SEAM_API_KEY="seam_sim_key", SEAM_ENDPOINT=sim_url)
    start_worker()
    start_simulator(receiver, "--delay", "0.1", "--offline", "garage", port=sim_port)
    api = httpx.Client(base_url=receiver, headers={"authorization": f"Bearer {API_TOKEN}"}, timeout=40)
    outcomes = {}
    for device, via in (("front", "device_cloud"), ("garage", "device_cloud"), ("seam_door", "seam")):
        created = api.post("/commands", json={"device_id": device, "action": "lock", "via": via})
        assert created.status_code == 201, created.text
        command = api.get(f"/commands/{created.json()['command_id']}", params={"wait": 15}).json()
        outcomes[device] = (command["status"], command["error_code"])
    api.close()
    assert outcomes == {"front": ("succeeded", None), "garage": ("rejected", "DEVICE_OFFLINE"),
                        "seam_door": ("succeeded", None)}
