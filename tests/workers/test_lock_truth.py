"""Denied keypad codes reach the notification targets; a run of them one alarm; Seam's confirmation moves state."""

from __future__ import annotations

import json
import uuid

import httpx

from lockhook.processing.locks import lock_state
from tests.support.config import signed
from tests.support.servers import NotifyTarget
from tests.support.waiting import wait_for
from tests.workers.test_notifications import NOTIFY_SECRET, verified


def _post(base: str, event: dict) -> None:
    body = json.dumps({"event_id": "evt_" + uuid.uuid4().hex, "workspace_id": "ws", **event}).encode()
    assert httpx.post(f"{base}/webhooks/seam", content=body, headers=signed(body, "msg_" + uuid.uuid4().hex),
                      timeout=10).status_code == 202


def test_three_denied_codes_send_three_notifications_and_one_alarm(start_web, start_worker):
    target = NotifyTarget()
    env = dict(NOTIFY_WEBHOOK_URL=target.url, NOTIFY_WEBHOOK_SECRET=NOTIFY_SECRET)
    base = start_web(**env)
    start_worker(**env)
    for _ in range(3):
        _post(base, {"event_type": "lock.access_denied", "device_id": "dev_keypad", "access_code_id": "ac_guess"})
    wait_for(lambda: len(target.delivered()) >= 4, timeout=30)
    payloads = [verified(r) for r in target.requests]
    denied = [p for p in payloads if p["type"] == "lock.access_denied"]
    alarms = [p for p in payloads if p["type"] == "lock.access_denied_repeatedly"]
    assert len(denied) == 3 and len({p["id"] for p in denied}) == 3
    assert {p["data"]["access_code_id"] for p in denied} == {"ac_guess"}
    assert len(alarms) == 1 and alarms[0]["data"]["device_id"] == "dev_keypad"
    target.close()


def test_an_action_attempt_alone_moves_lock_state(start_web, start_worker, r):
    base = start_web()
    start_worker()
    _post(base, {"event_type": "action_attempt.unlock_door.succeeded", "device_id": "dev_nuki_live",
                 "action_attempt_id": "aa_live", "action_type": "UNLOCK_DOOR", "status": "success"})
    state = wait_for(lambda: lock_state(r, "dev_nuki_live"), timeout=20)
    assert (state["locked"], state["method"]) == (False, "seamapi")


def _seam_env(fake_seam, target) -> dict:
    from tests.support.config import SEAM_API_KEY

    return dict(SEAM_API_KEY=SEAM_API_KEY, SEAM_ENDPOINT=fake_seam.url, RECONCILE_EVERY_S=0,
                LEFT_UNLOCKED_AFTER_S=2, NOTIFY_WEBHOOK_URL=target.url, NOTIFY_WEBHOOK_SECRET=NOTIFY_SECRET)


def test_seam_is_asked_before_a_left_unlocked_alarm(start_web, start_worker, fake_seam, r):
    """A lock that re-locked itself and said nothing: Seam says locked, so no alarm, and the state is corrected;
    a lock Seam does not know still gets its alarm."""
    from lockhook import keys
    from tests.support.processes import SEAM_DEVICE

    target = NotifyTarget()
    env = _seam_env(fake_seam, target)
    base = start_web(**env)
    start_worker(**env)
    fake_seam.call("/locks/lock_door", device_id=SEAM_DEVICE)  # what Seam knows: locked
    _post(base, {"event_type": "lock.unlocked", "device_id": SEAM_DEVICE, "method": "manual"})
    _post(base, {"event_type": "lock.unlocked", "device_id": "dev_not_in_seam", "method": "manual"})
    wait_for(lambda: target.delivered("lock.left_unlocked"), timeout=30)
    wait_for(lambda: r.zcard(keys.LOCK_WATCH) == 0, timeout=30)  # both checks done
    alarms = [b["data"]["device_id"] for b in target.delivered("lock.left_unlocked")]
    assert alarms == ["dev_not_in_seam"]
    state = lock_state(r, SEAM_DEVICE)
    assert (state["locked"], state["source"]) == (True, "seam_api") and state["read_at"]
    target.close()
