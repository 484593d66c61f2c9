"""Processing: typed events, correlation rules, parking, exactly-once resolution, lock state, deadlines."""

import json
import time
import uuid

import pytest

from lockhook import keys
from lockhook.clock import now_ms
from lockhook.commands.store import CommandStore
from lockhook.outcomes import Outcome
from lockhook.processing.apply import apply_entries
from lockhook.processing.locks import device_events, lock_state
from lockhook.streams import ensure_group
from tests.support.config import DEVICE_CLOUD_SECRET, signed
from tests.support.waiting import wait_for
from workers.drain import drain


def iso(ms: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms / 1000)) + f".{ms % 1000:03d}Z"


class Harness:
    """Post signed deliveries to the app, then drain the inbox in-process."""

    def __init__(self, client, r):
        self.client, self.r = client, r
        self.store = CommandStore(r)
        ensure_group(r, keys.INBOX, keys.INBOX_GROUP)
        ensure_group(r, keys.OUTBOX, keys.OUTBOX_GROUP)

    def post(self, event: dict, delivery_id: str | None = None, endpoint: str = "seam"):
        body = json.dumps(event).encode()
        secret = DEVICE_CLOUD_SECRET if endpoint == "device-cloud" else None
        headers = signed(body, delivery_id or "msg_" + uuid.uuid4().hex, **({"secret": secret} if secret else {}))
        resp = self.client.post(f"/webhooks/{endpoint}", content=body, headers=headers)
        assert resp.status_code in (200, 202), resp.text
        return resp

    def run(self, event: dict, **kw):
        self.post(event, **kw)
        drain(self.r)

    def outbox_types(self) -> list[str]:
        """Every outcome written so far, in order (no notifier runs here: the outbox keeps them all)."""
        return [Outcome.from_stream(sid, f).type for sid, f in self.r.xrange(keys.OUTBOX)]


@pytest.fixture
def h(client, r):
    return Harness(client, r)


def seam_lock_event(kind="lock.unlocked", device="dev_1", occurred=None, **extra):
    return {"event_id": "evt_" + uuid.uuid4().hex, "event_type": kind, "device_id": device,
            "occurred_at": iso(occurred or now_ms()), "created_at": iso(now_ms()), "workspace_id": "ws", **extra}


def completed(action="unlock", status="success", **extra):
    return {"event_type": "lock.action_completed", "device_id": "lock_1", "action": action, "status": status,
            "timestamp": iso(now_ms()), **extra}


# ---- correlation rules ------------------------------------------------------------------------------------


def test_rule1_action_completed_by_action_id(h):
    cmd, _ = h.store.register("lock_1", "unlock", "device_cloud", custom_id="req_1", action_id="act_1")
    h.run(completed(action_id="act_1", custom_id="other", performed_via="pin_code"), endpoint="device-cloud",
          delivery_id="msg_rule1")
    got = h.store.get(cmd.command_id)
    assert got.status == "succeeded" and got.performed_via == "pin_code" and not got.late
    assert (got.resolved_by, got.resolved_via) == ("msg_rule1", "webhook")
    assert h.outbox_types().count("command.succeeded") == 1


def test_rule1_action_completed_by_custom_id_failed_with_error_code(h):
    cmd, _ = h.store.register("lock_1", "unlock", "device_cloud", custom_id="req_2")
    h.run(completed(status="failed", custom_id="req_2", error_code="LOCK_JAMMED",
                    message="The deadbolt could not retract."), endpoint="device-cloud")
    got = h.store.get(cmd.command_id)
    assert (got.status, got.error_code) == ("failed", "LOCK_JAMMED")
    assert got.error_message == "The deadbolt could not retract."
    assert h.outbox_types() == ["command.failed"]  # a failed action changes no lock state


def test_rule2_action_attempt_events(h):
    ok, _ = h.store.register("dev_1", "lock", "seam", action_attempt_id="aa_1")
    bad, _ = h.store.register("dev_1", "unlock", "seam", action_attempt_id="aa_2")
    h.run({"event_id": "e1", "event_type": "action_attempt.lock_door.succeeded", "action_attempt_id": "aa_1",
           "action_type": "LOCK_DOOR", "status": "success", "workspace_id": "ws", "created_at": iso(now_ms())})
    h.run({"event_id": "e2", "event_type": "action_attempt.unlock_door.failed", "action_attempt_id": "aa_2",
           "action_type": "UNLOCK_DOOR", "status": "error", "created_at": iso(now_ms())})
    assert h.store.get(ok.command_id).status == "succeeded"
    failed = h.store.get(bad.command_id)
    assert failed.status == "failed" and failed.error_code == "action_attempt_failed"


def test_rule3_lock_event_carrying_action_attempt_id(h):
    cmd, _ = h.store.register("dev_1", "unlock", "seam", action_attempt_id="aa_3")
    h.run(seam_lock_event("lock.unlocked", method="seamapi", action_attempt_id="aa_3"))
    got = h.store.get(cmd.command_id)
    assert got.status == "succeeded" and got.method == "seamapi"
    assert lock_state(h.r, "dev_1")["locked"] is False


def test_rule4_idless_remote_event_matches_oldest_pending_same_action(h):
    first, _ = h.store.register("dev_1", "lock", "external")
    second, _ = h.store.register("dev_1", "lock", "external")
    other_action, _ = h.store.register("dev_1", "unlock", "external")
    h.run(seam_lock_event("lock.locked", method="remote"))
    assert h.store.get(first.command_id).status == "succeeded"
    assert h.store.get(second.command_id).status == "pending"
    assert h.store.get(other_action.command_id).status == "pending"
    h.run(seam_lock_event("lock.locked"))  # method absent also counts
    assert h.store.get(second.command_id).status == "succeeded"


def test_rule4_ignores_manual_methods_other_devices_and_events_outside_the_window(h):
    cmd, _ = h.store.register("dev_1", "lock", "external")
    h.run(seam_lock_event("lock.locked", method="keycode"))
    h.run(seam_lock_event("lock.locked", device="dev_2", method="remote"))
    h.run(seam_lock_event("lock.locked", method="remote", occurred=now_ms() - 3600_000))
    assert h.store.get(cmd.command_id).status == "pending"


# ---- ordering, duplicates, idempotency --------------------------------------------------------------------


def test_event_before_registration_is_parked_then_resolves_at_registration(h):
    h.run(completed(action_id="act_early", custom_id="req_early"), endpoint="device-cloud")
    cmd, created = h.store.register("lock_1", "unlock", "device_cloud", custom_id="req_early")
    assert created and cmd.status == "succeeded"
    assert h.outbox_types().count("command.succeeded") == 1


def test_event_before_ids_attached_resolves_at_attach(h):
    cmd, _ = h.store.register("dev_1", "unlock", "seam")
    h.run({"event_id": "e_att", "event_type": "action_attempt.unlock_door.succeeded", "action_attempt_id": "aa_late"})
    assert h.store.get(cmd.command_id).status == "pending"
    assert h.store.attach_ids(cmd.command_id, action_attempt_id="aa_late").status == "succeeded"


def test_duplicate_delivery_and_duplicate_event_id_apply_once(h):
    cmd, _ = h.store.register("dev_1", "lock", "seam", action_attempt_id="aa_dup")
    event = seam_lock_event("lock.locked", action_attempt_id="aa_dup")
    h.post(event, delivery_id="d1")
    h.post(event, delivery_id="d1")  # a Svix retry: deduped at the door
    h.post(event, delivery_id="d2")  # the same event under another delivery id
    drain(h.r)
    assert h.r.hget(keys.EVENT_STATS, "lock.locked") == b"1"
    assert h.store.get(cmd.command_id).status == "succeeded"
    assert len(device_events(h.r, "dev_1")) == 1
    assert h.outbox_types().count("command.succeeded") == 1


def test_the_same_job_run_twice_applies_once(h):
    cmd, _ = h.store.register("lock_1", "unlock", "device_cloud", custom_id="req_twice")
    h.post(completed(custom_id="req_twice"), endpoint="device-cloud")
    entries = h.r.xrange(keys.INBOX)
    assert len(apply_entries(h.r, entries)) == 1
    assert len(apply_entries(h.r, entries)) == 1  # finished again, but as a duplicate
    assert h.outbox_types().count("command.succeeded") == 1
    assert h.r.hget(keys.COMMAND_STATS, "succeeded") == b"1"


def test_contradicting_action_resolves_nothing_and_is_logged(h):
    cmd, _ = h.store.register("dev_1", "lock", "seam", action_attempt_id="aa_x")
    h.run(seam_lock_event("lock.unlocked", action_attempt_id="aa_x"))
    assert h.store.get(cmd.command_id).status == "pending"
    anomaly = json.loads(h.r.lindex(keys.ANOMALIES, 0))
    assert anomaly["kind"] == "contradicting_action" and anomaly["command_id"] == cmd.command_id


def test_timeout_then_late_success(h):
    cmd, _ = h.store.register("lock_1", "lock", "device_cloud", custom_id="req_slow", timeout_s=0)
    assert h.store.expire(cmd.command_id) == "command.timed_out"
    assert h.store.get(cmd.command_id).status == "timed_out"
    h.run(completed(action="lock", custom_id="req_slow"), endpoint="device-cloud")
    got = h.store.get(cmd.command_id)
    assert got.status == "succeeded" and got.late
    assert h.outbox_types() == ["command.timed_out", "command.late_result", "lock.state_changed"]
    h.run(completed(action="lock", custom_id="req_slow"), endpoint="device-cloud")  # a second late event
    assert h.outbox_types().count("command.late_result") == 1


def test_deadline_sweep_and_scheduled_expiry(h):
    from rq import Queue, SimpleWorker
    from rq.registry import ScheduledJobRegistry

    from workers.deadlines import sweep

    swept, _ = h.store.register("dev_9", "lock", "external", timeout_s=0, schedule_expiry=False)
    assert sweep(h.r) == 1 and h.store.get(swept.command_id).status == "timed_out"
    scheduled, _ = h.store.register("dev_9", "lock", "external", timeout_s=0.2)
    q = Queue("events", connection=h.r)
    deadline_ms = int(h.r.hget(keys.command(scheduled.command_id), "deadline_at"))
    # the deadline itself must pass (the expiry checks it) and RQ must count the job as due (its scheduler's test)
    wait_for(lambda: now_ms() >= deadline_ms and ScheduledJobRegistry(queue=q).get_jobs_to_schedule(), timeout=5)
    SimpleWorker([q], connection=h.r).work(burst=True, with_scheduler=True)  # burst: scheduler runs once
    assert h.store.get(scheduled.command_id).status == "timed_out"


def test_out_of_order_lock_events_keep_the_newest(h):
    t = now_ms()
    h.run(seam_lock_event("lock.locked", occurred=t, method="manual"))
    h.run(seam_lock_event("lock.unlocked", occurred=t - 5000, method="keycode"))
    state = lock_state(h.r, "dev_1")
    assert state["locked"] is True and state["method"] == "manual"
    assert json.loads(h.r.lindex(keys.ANOMALIES, 0))["kind"] == "stale_lock_event"
    assert h.outbox_types() == ["lock.state_changed"]


def test_unknown_and_malformed_events_are_stored_and_counted(h):
    h.run({"event_type": "device.connected", "event_id": "e_u", "device_id": "dev_5"})
    h.run({"event_type": "lock.locked", "event_id": "e_bad", "device_id": 12345, "occurred_at": "yesterday"})
    assert h.r.hget(keys.EVENT_STATS, "device.connected") == b"1"
    assert h.r.hget(keys.EVENT_STATS, "lock.locked") == b"1"
    assert device_events(h.r, "dev_5")[0]["event_type"] == "device.connected"
    assert h.r.xlen(keys.INBOX) == 2 and not h.r.xpending(keys.INBOX, "workers")["pending"]


def test_unlocked_without_device_id_takes_the_commands_device(h):
    cmd, _ = h.store.register("dev_7", "unlock", "seam", action_attempt_id="aa_7")
    event = seam_lock_event("lock.unlocked", action_attempt_id="aa_7")
    event.pop("device_id")
    h.run(event)
    assert h.store.get(cmd.command_id).status == "succeeded"
    assert lock_state(h.r, "dev_7")["locked"] is False


def test_timestamps_of_any_precision():
    from lockhook.processing.events import parse_event

    for stamp in ("2025-05-22T10:45:12Z", "2025-05-22T10:45:12.1Z", "2025-05-22T10:45:12.123456789Z",
                  "2025-05-22T10:45:12.123+00:00"):
        event, problem = parse_event({"event_type": "lock.locked", "occurred_at": stamp})
        assert problem is None and event.occurred_at.year == 2025


def test_non_string_extras_never_reach_the_lua_json(h):
    """Python's json accepts NaN/Infinity; Lua's cjson refuses them, which once stalled a batch."""
    for i, raw in enumerate(("NaN", "Infinity", "-1e400")):
        body = (f'{{"event_type": "lock.locked", "event_id": "e_nan_{i}", "device_id": "dev_n", "status": {raw}, '
                f'"performed_via": {raw}}}')
        h.post(json.loads(body), delivery_id=f"nan_{i}")
    drain(h.r)
    # NaN and Infinity (json.dumps writes -1e400 as -Infinity) are not JSON: kept in quarantine, as the
    # receiver would have done, never left to stall the inbox
    assert h.r.hget(keys.EVENT_STATS, "lock.locked") is None
    assert [f[b"delivery_id"] for _, f in h.r.xrange(keys.QUARANTINE)] == [b"nan_0", b"nan_1", b"nan_2"]
    assert not h.r.xpending(keys.INBOX, "workers")["pending"]


def test_an_action_attempt_that_succeeded_moves_lock_state(h):
    h.post({"event_type": "action_attempt.unlock_door.succeeded", "event_id": "e_aa_only", "device_id": "dev_nuki",
            "action_attempt_id": "aa_nuki", "action_type": "UNLOCK_DOOR", "status": "success"})
    drain(h.r)
    state = lock_state(h.r, "dev_nuki")
    assert (state["locked"], state["method"]) == (False, "seamapi")
    assert h.outbox_types().count("lock.state_changed") == 1


def test_denied_codes_are_outcomes_and_a_run_of_them_one_alarm(h):
    for i in range(4):
        h.post({"event_type": "lock.access_denied", "event_id": f"e_denied_{i}", "device_id": "dev_pad",
                "access_code_id": "ac_wrong"})
    drain(h.r)
    types = h.outbox_types()
    assert types.count("lock.access_denied") == 4
    assert types.count("lock.access_denied_repeatedly") == 1


def test_storage_is_bounded_every_key_has_a_lifetime(h):
    from lockhook import defaults
    from lockhook.commands.store import CommandStore
    from workers.maintenance import forget_expired

    command, _ = CommandStore(h.r).register("dev_ttl", "lock", "external", action_attempt_id="aa_ttl")
    h.post({"event_type": "lock.locked", "event_id": "e_ttl", "device_id": "dev_ttl", "action_attempt_id": "aa_ttl"})
    h.post({"event_type": "made.up.type", "event_id": "e_other", "device_id": "dev_ttl"})
    h.post({"event_type": "device.low_battery", "event_id": "e_known", "device_id": "dev_ttl"})
    drain(h.r)
    assert 0 < h.r.ttl(keys.command_timeline(command.command_id)) <= defaults.COMMAND_TTL_S
    assert 0 < h.r.ttl(keys.device_commands("dev_ttl")) <= defaults.COMMAND_TTL_S
    assert 0 < h.r.ttl(keys.device_events("dev_ttl")) <= defaults.DEVICE_RETENTION_S
    assert 0 < h.r.ttl(keys.lock_state("dev_ttl")) <= defaults.DEVICE_RETENTION_S
    # unknown types share one metric series; the ones Seam documents keep their own
    stats = {k.decode(): int(v) for k, v in h.r.hgetall(keys.EVENT_STATS).items()}
    assert stats.get("other") == 1 and "made.up.type" not in stats and stats.get("device.low_battery") == 1
    # indexes drop members whose keys expired on their own
    h.r.zadd(keys.COMMANDS, {"cmd_gone": now_ms() - (defaults.COMMAND_TTL_S + 60) * 1000})
    h.r.zadd(keys.DEVICES, {"dev_gone": now_ms() - (defaults.DEVICE_RETENTION_S + 60) * 1000})
    assert forget_expired(h.r, defaults.DEVICE_RETENTION_S) == 2
    assert h.r.zscore(keys.COMMANDS, "cmd_gone") is None and h.r.zscore(keys.DEVICES, "dev_gone") is None
    assert h.r.zscore(keys.DEVICES, "dev_ttl") is not None
