"""Lock watch in the processing scripts: unlocks without a command, doors left unlocked, auto-relock, device health,
the event log's attribution fields, and `resolved_by` / `resolved_via`."""

from __future__ import annotations

import json
import time
import uuid

import pytest

from lockhook import keys
from lockhook.commands.store import CommandStore
from lockhook.notifications.payloads import outcomes_data, slack_text
from lockhook.outcomes import Outcome
from lockhook.processing.apply import Rules
from lockhook.processing.lock_watch import AUTO_RELOCK, LEFT_UNLOCKED, member
from lockhook.processing.locks import device_events, lock_state
from lockhook.settings import get_settings
from lockhook.streams import ensure_group
from tests.support.config import DEVICE_CLOUD_SECRET, configured, signed
from workers.drain import drain
from workers.lock_watch import check_lock, sweep


def iso(ms: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms / 1000)) + f".{ms % 1000:03d}Z"


def now_ms() -> int:
    return int(time.time() * 1000)


@pytest.fixture
def watch_env(monkeypatch):
    """Set lock-watch variables for the in-process drain (it reads settings through the factory)."""
    def set_env(**values):
        for name, value in values.items():
            monkeypatch.setenv(name, str(value))
        get_settings.cache_clear()

    yield set_env
    monkeypatch.delenv("LEFT_UNLOCKED_AFTER_S", raising=False)
    monkeypatch.delenv("AUTO_RELOCK_AFTER_S", raising=False)
    get_settings.cache_clear()


class Lockhook:
    """Post signed deliveries to the app, drain in-process, read the outbox stream as the scripts wrote it."""

    def __init__(self, client, r):
        self.client, self.r = client, r
        self.store = CommandStore(r)
        ensure_group(r, keys.INBOX, keys.INBOX_GROUP)
        ensure_group(r, keys.OUTBOX, keys.OUTBOX_GROUP)

    def run(self, event: dict, endpoint: str = "seam", delivery_id: str | None = None, headers: dict | None = None):
        body = json.dumps(event).encode()
        secret = {"secret": DEVICE_CLOUD_SECRET} if endpoint == "device-cloud" else {}
        sent = {**signed(body, delivery_id or "msg_" + uuid.uuid4().hex, **secret), **(headers or {})}
        resp = self.client.post(f"/webhooks/{endpoint}", content=body, headers=sent)
        assert resp.status_code in (200, 202), resp.text
        drain(self.r, rules=Rules.from_settings(get_settings()))

    def outcomes(self, kind: str | None = None) -> list[Outcome]:
        found = [Outcome.from_stream(sid, f) for sid, f in self.r.xrange(keys.OUTBOX)]
        return [o for o in found if kind is None or o.type == kind]


@pytest.fixture
def lh(client, r):
    return Lockhook(client, r)


def seam_event(kind: str, device: str = "door_1", occurred: int | None = None, **extra) -> dict:
    return {"event_id": "evt_" + uuid.uuid4().hex, "event_type": kind, "device_id": device,
            "occurred_at": iso(occurred or now_ms()), "created_at": iso(now_ms()), "workspace_id": "ws", **extra}


def keypad_unlock(device: str = "door_1", **extra) -> dict:
    return seam_event("lock.unlocked", device, method="keycode", access_code_id="ac_4242",
                      user_identity_id="ui_77", acs_entrance_id="ent_1", **extra)


# -- explain every unlock ----------------------------------------------------------------------------------


def test_keypad_unlock_without_command_is_an_outcome_carrying_its_code(lh, r):
    event = keypad_unlock(acs_credential_id="cred_9", door_note="side entrance")
    lh.run(event)
    [outcome] = lh.outcomes("lock.unlocked_without_command")
    assert outcome.device_id == "door_1" and outcome.event == f"event:{event['event_id']}"
    data = outcomes_data(r, [outcome])[0]
    assert data["device_id"] == "door_1" and data["event_id"] == event["event_id"]
    assert (data["method"], data["access_code_id"], data["user_identity_id"]) == ("keycode", "ac_4242", "ui_77")
    assert data["acs_credential_id"] == "cred_9" and data["occurred_at"] == event["occurred_at"]
    assert "ac_4242" in slack_text(outcome, data)
    [entry] = device_events(r, "door_1")
    assert entry["access_code_id"] == "ac_4242" and entry["user_identity_id"] == "ui_77"
    assert entry["acs_entrance_id"] == "ent_1" and entry["door_note"] == "side entrance"
    assert entry["lock"] == "applied" and entry["unlocked_without_command"] is True


def test_unlock_confirming_a_command_is_explained(lh, r):
    command, _ = lh.store.register("lock_7", "unlock", "device_cloud", custom_id="req_u1")
    lh.run({"event_type": "lock.action_completed", "device_id": "lock_7", "action": "unlock", "status": "success",
            "custom_id": "req_u1", "performed_via": "remote_api", "timestamp": iso(now_ms())},
           endpoint="device-cloud", delivery_id="msg_confirm_1")
    done = lh.store.get(command.command_id)
    assert done.status == "succeeded" and lock_state(r, "lock_7")["locked"] is False
    assert lh.outcomes("lock.unlocked_without_command") == []
    [entry] = device_events(r, "lock_7")
    assert entry["command_id"] == command.command_id and entry["performed_via"] == "remote_api"


def test_idless_remote_unlock_after_its_attempt_resolved_is_explained(lh):
    """Seam: the action attempt resolves the command first; the lock event without an attempt id follows."""
    command, _ = lh.store.register("door_2", "unlock", "seam", action_attempt_id="aa_91")
    lh.run({"event_id": "evt_aa91", "event_type": "action_attempt.unlock_door.succeeded", "action_attempt_id": "aa_91",
            "action_type": "UNLOCK_DOOR", "status": "success", "created_at": iso(now_ms())})
    assert lh.store.get(command.command_id).status == "succeeded"
    lh.run(seam_event("lock.unlocked", "door_2", method="seamapi"))
    assert lh.outcomes("lock.unlocked_without_command") == []


def test_idless_remote_unlock_matched_by_the_window_is_explained(lh):
    command, _ = lh.store.register("door_3", "unlock", "external")
    lh.run(seam_event("lock.unlocked", "door_3", method="remote"))
    assert lh.store.get(command.command_id).status == "succeeded"
    assert lh.outcomes("lock.unlocked_without_command") == []


def test_keypad_unlock_is_not_explained_by_a_pending_remote_command(lh):
    command, _ = lh.store.register("door_4", "unlock", "external")
    lh.run(keypad_unlock("door_4"))
    assert lh.store.get(command.command_id).status == "pending"
    assert [o.device_id for o in lh.outcomes("lock.unlocked_without_command")] == ["door_4"]


def test_unlock_with_an_unknown_attempt_id_and_no_command_nearby_is_unexplained(lh, r):
    lh.run(seam_event("lock.unlocked", "door_5", method="seamapi", action_attempt_id="aa_elsewhere"))
    assert len(lh.outcomes("lock.unlocked_without_command")) == 1
    assert device_events(r, "door_5")[0]["parked"] is True


def test_stale_unlock_and_locks_emit_nothing(lh):
    lh.run(seam_event("lock.locked", "door_6", method="keycode"))
    lh.run(keypad_unlock("door_6", occurred_at=iso(now_ms() - 60_000)))  # older than the lock: not applied
    assert lh.outcomes("lock.unlocked_without_command") == []


# -- event log ------------------------------------------------------------------------------------------------


def test_event_log_entry_is_capped_dropping_the_longest_extras_first(lh, r):
    lh.run(keypad_unlock("door_8", huge="x" * 6000, medium="y" * 1500, small="z"))
    [entry] = device_events(r, "door_8")
    assert len(json.dumps(entry)) <= 4096
    assert entry["access_code_id"] == "ac_4242" and entry["small"] == "z" and entry["medium"] == "y" * 1500
    assert "huge" not in entry and entry["dropped_fields"] == ["huge"]


def test_event_log_keeps_no_value_the_script_could_not_encode():
    from lockhook.processing.event_log import own_fields
    from lockhook.processing.events import parse_event

    event, _ = parse_event({**keypad_unlock("door_9"), "reading": float("nan"), "command_id": "forged"})
    entry = own_fields(event, {"event": "event:x"})
    assert "reading" not in entry and "command_id" not in entry and entry["access_code_id"] == "ac_4242"


# -- resolved_by / resolved_via ---------------------------------------------------------------------------------


def test_resolved_by_is_bare_and_resolved_via_says_webhook_or_reconcile(lh):
    seam, _ = lh.store.register("door_10", "lock", "seam", action_attempt_id="aa_r1")
    lh.run({"event_id": "evt_r1", "event_type": "action_attempt.lock_door.succeeded", "action_attempt_id": "aa_r1",
            "action_type": "LOCK_DOOR", "status": "success", "created_at": iso(now_ms())})
    assert (lh.store.get(seam.command_id).resolved_by, lh.store.get(seam.command_id).resolved_via) == \
        ("evt_r1", "webhook")
    late, _ = lh.store.register("door_10", "unlock", "seam", action_attempt_id="aa_r2")
    # an event read from Seam's event list goes through the inbox with this header among its stored ones
    event = {"event_id": "evt_r2", "event_type": "action_attempt.unlock_door.succeeded", "action_attempt_id": "aa_r2",
             "action_type": "UNLOCK_DOOR", "status": "success", "created_at": iso(now_ms())}
    lh.r.xadd(keys.INBOX, {"endpoint": "seam", "delivery_id": "evt_r2", "body": json.dumps(event),
                           "headers": json.dumps({"Lockhook-Source": "reconcile"}), "received_at": now_ms()})
    drain(lh.r, rules=Rules.from_settings(get_settings()))
    got = lh.store.get(late.command_id)
    assert (got.resolved_by, got.resolved_via) == ("evt_r2", "reconcile")


def test_polled_and_refused_commands_say_so(lh):
    polled, _ = lh.store.register("door_11", "lock", "seam", action_attempt_id="aa_p1")
    lh.store.record_result(polled.command_id, True)
    refused, _ = lh.store.register("door_11", "lock", "device_cloud", custom_id="req_x")
    lh.store.reject(refused.command_id, "DEVICE_OFFLINE")
    assert lh.store.get(polled.command_id).resolved_via == "poll"
    assert lh.store.get(refused.command_id).resolved_via == "issuer"


def test_commands_stored_with_prefixed_resolved_by_read_bare(lh, r):
    a, _ = lh.store.register("door_12", "lock", "external")
    b, _ = lh.store.register("door_12", "lock", "external")
    r.hset(keys.command(a.command_id), mapping={"status": "succeeded", "resolved_by": "event:evt_old"})
    r.hset(keys.command(b.command_id), mapping={"status": "succeeded", "resolved_by": "delivery:device-cloud:msg_1"})
    assert (lh.store.get(a.command_id).resolved_by, lh.store.get(a.command_id).resolved_via) == ("evt_old", "webhook")
    assert (lh.store.get(b.command_id).resolved_by, lh.store.get(b.command_id).resolved_via) == ("msg_1", "webhook")


# -- left unlocked ------------------------------------------------------------------------------------------


def test_left_unlocked_fires_once_per_period_from_job_and_sweep(lh, r, watch_env):
    watch_env(LEFT_UNLOCKED_AFTER_S=5)
    t = now_ms()
    first = keypad_unlock("door_20", occurred=t - 20_000)  # unlocked 20 s ago: already due
    lh.run(first)
    period = f"event:{first['event_id']}"
    scheduled = [r.hget(f"rq:job:{j.decode()}", "description") for j in r.zrange("rq:scheduled:events", 0, -1)]
    assert any(b"check_unlocked_lock" in (d or b"") and b"door_20" in d for d in scheduled)
    settings = get_settings()
    assert check_lock(r, settings, LEFT_UNLOCKED, "door_20", period) == "fired"
    assert check_lock(r, settings, LEFT_UNLOCKED, "door_20", period) == "noop"
    assert sweep(r, settings) == 0
    [outcome] = lh.outcomes("lock.left_unlocked")
    assert outcome.event == period
    data = outcomes_data(r, [outcome])[0]
    assert data["unlocked_by"]["access_code_id"] == "ac_4242" and data["unlocked_for_s"] >= 20
    assert data["locked"] is False and data["unlocked_since"] == first["occurred_at"]
    # another unlock in the same period changes nothing; a lock then a new unlock is a new period
    lh.run(keypad_unlock("door_20", occurred=t - 15_000))
    assert sweep(r, settings) == 0
    lh.run(seam_event("lock.locked", "door_20", occurred=t - 12_000, method="manual"))
    lh.run(keypad_unlock("door_20", occurred=t - 9_000))
    assert sweep(r, settings) == 1
    assert len(lh.outcomes("lock.left_unlocked")) == 2


def test_a_lock_in_time_cancels_the_check(lh, r, watch_env):
    watch_env(LEFT_UNLOCKED_AFTER_S=3600)
    unlock = keypad_unlock("door_21")
    lh.run(unlock)
    assert r.zscore(keys.LOCK_WATCH, member(LEFT_UNLOCKED, "door_21")) is not None
    lh.run(seam_event("lock.locked", "door_21", method="manual"))
    assert r.zscore(keys.LOCK_WATCH, member(LEFT_UNLOCKED, "door_21")) is None
    assert check_lock(r, get_settings(), LEFT_UNLOCKED, "door_21", f"event:{unlock['event_id']}") == "noop"
    assert lh.outcomes("lock.left_unlocked") == []


def test_a_job_that_runs_early_waits_for_the_due_time(lh, r, watch_env):
    watch_env(LEFT_UNLOCKED_AFTER_S=3600)
    unlock = keypad_unlock("door_22")
    lh.run(unlock)
    assert check_lock(r, get_settings(), LEFT_UNLOCKED, "door_22", f"event:{unlock['event_id']}") == "early"
    assert lh.outcomes("lock.left_unlocked") == []


def test_off_by_default(lh, r):
    lh.run(keypad_unlock("door_23", occurred=now_ms() - 3600_000))
    assert r.zcard(keys.LOCK_WATCH) == 0 and lock_state(r, "door_23")["unlocked_since"]


# -- auto-relock ----------------------------------------------------------------------------------------------


def test_auto_relock_without_a_known_issuer_is_an_anomaly(lh, r, watch_env):
    watch_env(AUTO_RELOCK_AFTER_S=1)
    lh.run(keypad_unlock("door_30", occurred=now_ms() - 5_000))
    assert sweep(r, get_settings()) == 1
    anomaly = json.loads(r.lindex(keys.ANOMALIES, 0))
    assert (anomaly["kind"], anomaly["device_id"]) == ("auto_relock_without_issuer", "door_30")
    assert lh.store.list(device_id="door_30") == []


def test_auto_relock_issues_a_lock_command_through_the_last_confirming_issuer(lh, r, watch_env, device_cloud):
    watch_env(AUTO_RELOCK_AFTER_S=1, DEVICE_CLOUD_URL=device_cloud.url)
    # an unlock command confirmed by the device cloud makes it the lock's issuer
    command, _ = lh.store.register("door_31", "unlock", "device_cloud", custom_id="req_31")
    lh.run({"event_type": "lock.action_completed", "device_id": "door_31", "action": "unlock", "status": "success",
            "custom_id": "req_31", "performed_via": "remote_api", "timestamp": iso(now_ms() - 5_000)},
           endpoint="device-cloud")
    assert lock_state(r, "door_31")["issuer"] == "device_cloud"
    assert sweep(r, get_settings()) == 1
    assert sweep(r, get_settings()) == 0
    relock = next(c for c in lh.store.list(device_id="door_31") if c.command_id != command.command_id)
    assert (relock.action, relock.via, relock.status) == ("lock", "device_cloud", "pending")
    assert relock.metadata["reason"] == "auto_relock" and relock.custom_id
    [call] = device_cloud.calls
    assert call["body"] == {"action": "lock", "custom_id": relock.custom_id}


def test_auto_relock_with_its_issuer_not_configured_is_an_anomaly(lh, r, watch_env):
    watch_env(AUTO_RELOCK_AFTER_S=1)
    r.hset(keys.lock_state("door_32"), "issuer", "seam")
    lh.run(keypad_unlock("door_32", occurred=now_ms() - 5_000))
    assert sweep(r, get_settings()) == 0
    assert json.loads(r.lindex(keys.ANOMALIES, 0))["kind"] == "auto_relock_issuer_not_configured"


# -- device health ------------------------------------------------------------------------------------------


def test_device_health_events_set_online_and_battery_and_are_outcomes(lh, r):
    t = now_ms()
    lh.run(seam_event("device.disconnected", "door_40", occurred=t - 3000))
    assert lock_state(r, "door_40")["online"] is False
    lh.run(seam_event("device.connected", "door_40", occurred=t - 2000))
    lh.run(seam_event("device.low_battery", "door_40", occurred=t - 1000, battery_level=0.12))
    lh.run(seam_event("device.battery_status_changed", "door_40", occurred=t, battery_status="critical",
                      battery_level=0.05))
    lh.run(seam_event("device.disconnected", "door_40", occurred=t - 10_000))  # older: logged, not applied
    state = lock_state(r, "door_40")
    assert state["online"] is True and state["battery"] == {"level": 0.05, "status": "critical"}
    kinds = [o.type for o in lh.outcomes() if o.type.startswith("device.")]
    assert kinds == ["device.disconnected", "device.connected", "device.low_battery", "device.battery_status_changed"]
    low = next(o for o in lh.outcomes("device.low_battery"))
    data = outcomes_data(r, [low])[0]
    assert data["battery_level"] == 0.12 and data["online"] is True and data["device_id"] == "door_40"
    assert device_events(r, "door_40")[0]["health"] == "stale"


def test_outcome_ids_are_per_event(lh):
    a = Outcome("lock.unlocked_without_command", 1, device_id="d", event="event:e1")
    b = Outcome("lock.unlocked_without_command", 1, device_id="d", event="event:e2")
    c = Outcome("command.succeeded", 1, command_id="cmd_1")
    assert a.id != b.id and c.id == "command.succeeded:cmd_1"


def test_relock_check_for_an_unknown_device_is_a_noop(r):
    settings = configured(get_settings(), auto_relock_after_s=1)
    assert check_lock(r, settings, AUTO_RELOCK, "never_seen") == "noop"


def test_dashboard_lock_view_shows_online_and_battery(lh, r):
    from tests.support.config import API_TOKEN

    AUTH = {"authorization": f"Bearer {API_TOKEN}"}

    lh.run(seam_event("device.battery_status_changed", "door_50", battery_status="low", battery_level=0.15))
    lh.run(seam_event("device.disconnected", "door_50"))
    page = lh.client.get("/dashboard", headers=AUTH).text
    row = page[page.index("door_50", page.index("<h2>Locks</h2>")):]
    row = row[:row.index("</tr>")]
    assert "offline" in row and "low 15%" in row
    lh.run(keypad_unlock("door_51"))
    page = lh.client.get("/dashboard", headers=AUTH).text
    events = page[page.index("Recent events"):]
    assert "code ac_4242" in events and "user ui_77" in events and "no command" in events
