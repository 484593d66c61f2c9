"""One signed delivery never stalls or corrupts anything; no sender speaks for another.

Each case below was once reproduced against web + worker: a far-future timestamp that poisoned lock
state and answered 500, a lone surrogate that Lua could not decode (reclaimed forever), a BOM body that
was accepted then dropped, an event id reused with another body, an `action_attempt.*` signed by the
device cloud that resolved a Seam command, and one sender's event id making another's a duplicate.
"""

from __future__ import annotations

import json
import subprocess
import uuid

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lockhook import keys
from lockhook.commands.store import CommandStore
from lockhook.processing.apply import apply_entries
from lockhook.processing.locks import lock_state
from lockhook.streams import ensure_group
from tests.reliability.helpers import inbox_settled
from tests.support.config import API_TOKEN, DEVICE_CLOUD_SECRET, signed
from tests.support.processes import PYTHON, ROOT, process_env
from tests.support.waiting import wait_for
from workers.drain import drain, reclaim_inbox

AUTH = {"authorization": f"Bearer {API_TOKEN}"}


def post(base_or_client, body: bytes, endpoint: str = "seam", delivery_id: str | None = None,
         secret: str | None = None):
    delivery_id = delivery_id or "msg_" + uuid.uuid4().hex
    headers = signed(body, delivery_id) if secret is None else signed(body, delivery_id, secret)
    if isinstance(base_or_client, str):
        return httpx.post(f"{base_or_client}/webhooks/{endpoint}", content=body, headers=headers, timeout=10)
    return base_or_client.post(f"/webhooks/{endpoint}", content=body, headers=headers)


def event(**fields) -> bytes:
    return json.dumps({"event_id": "evt_" + uuid.uuid4().hex, "workspace_id": "ws", **fields}).encode()


def test_a_far_future_timestamp_is_an_anomaly_never_lock_state(start_web, start_worker, r):
    base = start_web()
    start_worker()
    assert post(base, event(event_type="lock.unlocked", device_id="dev_far",
                            occurred_at="9999-12-31T23:59:59-14:00")).status_code == 202
    wait_for(lambda: inbox_settled(r) and r.lrange(keys.ANOMALIES, 0, -1), timeout=20)
    assert json.loads(r.lindex(keys.ANOMALIES, 0))["kind"] == "invalid_event"
    assert httpx.get(base + "/dashboard", headers=AUTH, timeout=10).status_code == 200
    assert httpx.get(base + "/locks/dev_far", headers=AUTH, timeout=10).status_code in (200, 404)
    # a genuine event afterwards is applied, not "stale"
    assert post(base, event(event_type="lock.locked", device_id="dev_far")).status_code == 202
    wait_for(lambda: (lock_state(r, "dev_far") or {}).get("locked") is True, timeout=20)
    assert httpx.get(base + "/locks/dev_far", headers=AUTH, timeout=10).status_code == 200


def test_a_lone_surrogate_and_a_bom_are_processed_and_the_inbox_drains(start_web, start_worker, r):
    base = start_web()
    start_worker()
    surrogate = b'{"event_id":"evt_sur","event_type":"lock.unlocked","device_id":"dev_sur","method":"\\ud800"}'
    bom = b"\xef\xbb\xbf" + event(event_type="lock.locked", device_id="dev_bom")
    assert post(base, surrogate).json()["status"] == "accepted"
    assert post(base, bom).json()["status"] == "accepted"
    wait_for(lambda: inbox_settled(r) and lock_state(r, "dev_bom") and lock_state(r, "dev_sur"), timeout=20)
    assert lock_state(r, "dev_sur")["method"] == "\ufffd"
    assert lock_state(r, "dev_bom")["locked"] is True  # accepted, then applied: not lost


def test_an_event_id_reused_with_another_body_is_an_anomaly(start_web, start_worker, r):
    base = start_web()
    start_worker()
    first = event(event_id="evt_twice", event_type="lock.locked", device_id="dev_twice")
    other = event(event_id="evt_twice", event_type="lock.unlocked", device_id="dev_twice")
    assert post(base, first).status_code == 202
    assert post(base, first).status_code == 202  # the same event again (a new delivery id): a plain duplicate
    assert post(base, other).status_code == 202
    wait_for(lambda: any(json.loads(a)["kind"] == "event_id_conflict" for a in r.lrange(keys.ANOMALIES, 0, -1)),
             timeout=20)
    assert [json.loads(a)["kind"] for a in r.lrange(keys.ANOMALIES, 0, -1)].count("event_id_conflict") == 1
    assert lock_state(r, "dev_twice")["locked"] is True


def test_a_device_cloud_signature_never_confirms_a_seam_command(start_web, start_worker, r):
    base = start_web()
    start_worker()
    command, _ = CommandStore(r).register("dev_iso", "lock", "seam", action_attempt_id="aa_iso", timeout_s=600)
    forged = event(event_type="action_attempt.lock_door.succeeded", action_attempt_id="aa_iso",
                   action_type="LOCK_DOOR", status="success")
    assert post(base, forged, endpoint="device-cloud", secret=DEVICE_CLOUD_SECRET).status_code == 202
    wait_for(lambda: inbox_settled(r), timeout=20)
    assert CommandStore(r).get(command.command_id).status == "pending"
    assert post(base, forged).status_code == 202  # the same from Seam
    wait_for(lambda: CommandStore(r).get(command.command_id).status == "succeeded", timeout=20)


def test_one_senders_event_id_never_makes_anothers_a_duplicate(start_web, start_worker, r):
    base = start_web()
    start_worker()
    squatted = event(event_id="evt_shared", event_type="lock.unlocked", device_id="dev_ns")
    assert post(base, squatted, endpoint="device-cloud", secret=DEVICE_CLOUD_SECRET).status_code == 202
    wait_for(lambda: inbox_settled(r) and lock_state(r, "dev_ns"), timeout=20)
    genuine = event(event_id="evt_shared", event_type="lock.locked", device_id="dev_ns")
    assert post(base, genuine).status_code == 202
    wait_for(lambda: lock_state(r, "dev_ns")["locked"] is True, timeout=20)


def test_an_entry_that_keeps_failing_moves_to_the_dead_letter_stream_and_back(settings, r):
    ensure_group(r, keys.INBOX, keys.INBOX_GROUP)
    r.set(keys.lock_state("dev_dead"), "not a hash")  # every apply of this device's events now fails in Lua
    body = event(event_type="lock.locked", device_id="dev_dead")
    r.xadd(keys.INBOX, {"endpoint": "seam", "delivery_id": "msg_dead", "headers": "{}", "body": body,
                        "received_at": "1"})
    drain(r, max_seconds=5)
    attempts = 1
    while not r.xlen(keys.INBOX_DEAD):
        r.xclaim(keys.INBOX, keys.INBOX_GROUP, "test", min_idle_time=0,
                 message_ids=[i for i, _ in r.xrange(keys.INBOX)])
        apply_entries(r, r.xrange(keys.INBOX))
        attempts += 1
        assert attempts <= 5
    assert attempts == 5
    reclaim_inbox(r)  # the dead one is acknowledged once the drain reports it finished
    env = process_env(settings)
    listed = subprocess.run([PYTHON, "-m", "tools.cli", "inbox", "dead"], cwd=ROOT, env=env, capture_output=True,
                            text=True, timeout=60)
    assert listed.returncode == 0 and "msg_dead" in listed.stdout and "failed 5 times" in listed.stdout
    r.delete(keys.lock_state("dev_dead"))
    retried = subprocess.run([PYTHON, "-m", "tools.cli", "inbox", "retry", "--all"], cwd=ROOT, env=env,
                             capture_output=True, text=True, timeout=60)
    assert retried.returncode == 0, retried.stderr
    assert r.xlen(keys.INBOX_DEAD) == 0
    drain(r, max_seconds=5)
    assert lock_state(r, "dev_dead")["locked"] is True


# -- fuzz: signed bodies of every awkward shape: never a 5xx, the inbox always drains ----------------------

awkward_strings = st.sampled_from(["\\ud800", "\\udfff x", "ok", "\\u0000", "é", "\\ud83d\\ude00"])
awkward_numbers = st.sampled_from(["1e400", "-1e400", "1e308", "-5", "0", str(10**40), "-0.0", "NaN", "Infinity"])
far_times = st.sampled_from(['"9999-12-31T23:59:59-14:00"', '"0001-01-01T00:00:00Z"', '"1970-01-01T00:00:00Z"',
                             "-1e18", "1e18", '"2026-13-45T99:99:99Z"', '"now"'])


@st.composite
def awkward_body(draw) -> bytes:
    event_type = draw(st.sampled_from(["lock.locked", "lock.unlocked", "action_attempt.lock_door.succeeded",
                                       "lock.action_completed", "device.low_battery", "made.up"]))
    parts = [f'"event_type":"{event_type}"', f'"event_id":"evt_{draw(st.integers(0, 10**9))}"',
             '"device_id":"dev_fuzz"', f'"occurred_at":{draw(far_times)}',
             f'"method":"{draw(awkward_strings)}"', f'"action_attempt_id":"{draw(awkward_strings)}"',
             f'"battery":{draw(awkward_numbers)}']
    if draw(st.booleans()):
        parts.append('"device_id":"dev_dup"')  # a duplicate key
    depth = draw(st.sampled_from([0, 3, 60, 900, 3000]))
    parts.append('"nested":' + "[" * depth + "1" + "]" * depth)
    body = ("{" + ",".join(draw(st.permutations(parts))) + "}").encode()
    return (b"\xef\xbb\xbf" if draw(st.booleans()) else b"") + body


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                 HealthCheck.too_slow])
@given(bodies=st.lists(awkward_body(), min_size=1, max_size=4))
def test_awkward_signed_bodies_never_5xx_and_the_inbox_drains(client, r, bodies):
    for body in bodies:
        resp = post(client, body)
        assert resp.status_code == 202, resp.text
    drain(r, max_seconds=10)
    assert inbox_settled(r)
    assert not r.xpending(keys.INBOX, keys.INBOX_GROUP)["pending"]
    assert r.xlen(keys.INBOX_DEAD) == 0
    for path in ("/locks/dev_fuzz", "/dashboard", "/commands?device_id=dev_fuzz", "/metrics"):
        assert client.get(path, headers=AUTH).status_code < 500, path
