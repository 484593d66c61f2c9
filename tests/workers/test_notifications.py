"""Notifications over real HTTP: signed and svix-verifiable, once per target, retried, failed, re-sent from the CLI."""

from __future__ import annotations

import base64
import json
import subprocess
import threading
import time
import uuid

import httpx
import pytest
from svix.webhooks import Webhook

from lockhook import keys
from lockhook.clock import seconds_until as parse_retry_after
from lockhook.commands.store import CommandStore
from lockhook.errors import CallbackUrlRefused
from lockhook.notifications import store
from lockhook.notifications.callback_policy import CallbackUrlUnresolvable, check_callback_url
from lockhook.notifications.payloads import CALLBACK, slack_text
from lockhook.notifications.store import NotificationStore
from lockhook.outcomes import Outcome
from lockhook.settings import Settings
from tests.support.config import signed
from tests.support.processes import ROOT, process_env
from tests.support.waiting import wait_for
from tests.workers.notify import InProcess, Receiver, deliver, outbox_entry
from workers.notifier import create_notifications

NOTIFY_SECRET = "whsec_" + base64.b64encode(b"lockhook-notify-test-secret-32b!").decode()
SLACK_TOKEN = "T000/B000/slacksecrettoken123"


@pytest.fixture
def receiver():
    rec = Receiver()
    yield rec
    rec.close()


def verified(request: dict) -> dict:
    """svix's own verify must accept what lockhook sent; returns the parsed payload."""
    Webhook(NOTIFY_SECRET).verify(request["body"], request["headers"])
    return json.loads(request["body"])


def derive(settings: Settings, **changes) -> Settings:
    """A validated copy (model_copy would skip validation, leaving secrets as plain strings)."""
    return Settings.model_validate({**settings.model_dump(), **changes})


def iso_now() -> str:
    ms = int(time.time() * 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms / 1000)) + f".{ms % 1000:03d}Z"


def records(r) -> list:
    store = NotificationStore(r)
    found = [store.get(k.decode().split(":", 2)[2]) for k in r.scan_iter("lh:ntf:msg_*")]
    return [n for n in found if n]


def settled(r, expected: int) -> bool:
    """Every notification record reached delivered or failed and nothing is left in the outbox."""
    found = records(r)
    return (len(found) == expected and all(n.status in ("delivered", "failed") for n in found)
            and r.xlen(keys.OUTBOX) == 0)


def inbox_done(r) -> bool:
    """Every stored delivery was read and acknowledged by a drain job."""
    groups = {g["name"].decode(): g for g in r.xinfo_groups(keys.INBOX)}
    group = groups.get(keys.INBOX_GROUP)
    return bool(group) and not group["pending"] and not group.get("lag")


def cli(settings, *args) -> subprocess.CompletedProcess:
    env = process_env(settings, NOTIFY_WEBHOOK_SECRET=NOTIFY_SECRET)
    return subprocess.run(["lockhook", "notifications", *args], env=env, cwd=ROOT, capture_output=True, text=True,
                          timeout=60)


def start_live(start_web, start_worker, r, **env):
    base = start_web(**env)
    worker = start_worker(**env)
    wait_for(lambda: r.exists(keys.MAINTENANCE_FLAG), timeout=20)
    return base, worker


def test_resolved_command_notifies_every_target_once_signed_and_verifiable(start_web, start_worker, r, receiver):
    env = dict(NOTIFY_WEBHOOK_URL=f"{receiver.base}/a, {receiver.base}/b", NOTIFY_WEBHOOK_SECRET=NOTIFY_SECRET,
               SLACK_WEBHOOK_URL=f"{receiver.base}/slack/{SLACK_TOKEN}", NOTIFY_ALLOWED_HOSTS="127.0.0.1")
    base, worker = start_live(start_web, start_worker, r, **env)
    # the door is known unlocked: the confirmation below resolves the command without changing lock state
    r.hset(keys.lock_state("dev_front"), mapping={"device_id": "dev_front", "locked": "0", "occurred_at": "1"})
    store = CommandStore(r)
    cmd, _ = store.register("dev_front", "unlock", "external", action_attempt_id="aa_n1",
                            callback_url=f"{receiver.base}/cb?token=cbsecret")
    event = {"event_id": "evt_" + uuid.uuid4().hex, "event_type": "action_attempt.unlock_door.succeeded",
             "workspace_id": "ws", "created_at": iso_now(), "occurred_at": iso_now(), "device_id": "dev_front",
             "action_attempt_id": "aa_n1", "action_type": "UNLOCK_DOOR", "status": "success"}
    body = json.dumps(event).encode()
    assert httpx.post(f"{base}/webhooks/seam", content=body, headers=signed(body, "msg_1")).status_code == 202
    paths = ["/a", "/b", "/cb", f"/slack/{SLACK_TOKEN}"]
    wait_for(lambda: all(receiver.at(p) for p in paths), timeout=15)

    # the same event again under a new delivery id (a replay), and the same outcome dispatched twice
    assert httpx.post(f"{base}/webhooks/seam", content=body, headers=signed(body, "msg_2")).status_code == 202
    r.xadd(keys.OUTBOX, {"type": "command.succeeded", "command_id": cmd.command_id, "at": "1"})
    wait_for(lambda: settled(r, 4), timeout=15)
    wait_for(lambda: inbox_done(r), timeout=10)
    wait_for(lambda: settled(r, 4), timeout=15)

    ids = set()
    for path in ("/a", "/b", "/cb"):
        got = receiver.at(path)
        assert len(got) == 1, (path, len(got))
        payload = verified(got[0])
        assert payload["type"] == "command.succeeded"
        assert payload["id"] == got[0]["headers"]["webhook-id"]
        assert set(payload) == {"type", "id", "created_at", "data"}
        assert payload["data"]["command_id"] == cmd.command_id and payload["data"]["status"] == "succeeded"
        ids.add(payload["id"])
    assert len(ids) == 3, "the id is per (outcome, target)"
    slack = receiver.at(f"/slack/{SLACK_TOKEN}")
    assert len(slack) == 1
    text = json.loads(slack[0]["body"])["text"]
    assert "command.succeeded" in text and "unlock" in text and "dev_front" in text and "latency" in text

    port = receiver.server.server_port
    timeline = [e for e in store.timeline(cmd.command_id) if e["kind"] == "notification"]
    assert sorted(e["target"] for e in timeline) == sorted([f"webhook:127.0.0.1:{port}"] * 2
                                                           + [f"callback:127.0.0.1:{port}", "slack"])
    assert all(e["result"] == "delivered" for e in timeline)

    # a keypad unlock is a lock.state_changed with its method (and, commanded by nobody, an unlock without command)
    lock_event = {"event_id": "evt_" + uuid.uuid4().hex, "event_type": "lock.unlocked", "workspace_id": "ws",
                  "created_at": iso_now(), "occurred_at": iso_now(), "device_id": "dev_side", "method": "keycode"}
    lock_body = json.dumps(lock_event).encode()
    assert httpx.post(f"{base}/webhooks/seam", content=lock_body, headers=signed(lock_body, "msg_3")).status_code == 202
    wait_for(lambda: len(receiver.at("/a")) == 3 and len(receiver.at("/b")) == 3, timeout=15)
    by_type = {p["type"]: p for p in map(verified, receiver.at("/a")[1:])}
    assert set(by_type) == {"lock.state_changed", "lock.unlocked_without_command"}
    payload = by_type["lock.state_changed"]
    assert payload["data"]["device_id"] == "dev_side" and payload["data"]["locked"] is False
    assert payload["data"]["method"] == "keycode"

    worker.stop()
    output = worker.log_path.read_text()
    assert '"outcome": "command.succeeded"' in output and "lockhook.notifications" in output
    for secret in (NOTIFY_SECRET, SLACK_TOKEN, "cbsecret"):
        assert secret not in output
    assert "Traceback" not in output


def test_failing_target_is_retried_then_listed_as_failed_and_retry_delivers(start_web, start_worker, r, settings,
                                                                            receiver):
    receiver.plans = {"/flaky": ["500", "drop", "hang", "503"], "/bad": ["400"], "/limited": ["429:2", "ok"]}
    env = dict(NOTIFY_WEBHOOK_URL=f"{receiver.base}/flaky,{receiver.base}/bad,{receiver.base}/limited",
               NOTIFY_WEBHOOK_SECRET=NOTIFY_SECRET, NOTIFY_MAX_ATTEMPTS=4, NOTIFY_RETRY_DELAYS_S="0.2",
               NOTIFY_TIMEOUT_S=1)
    start_live(start_web, start_worker, r, **env)
    cmd, _ = CommandStore(r).register("dev_back", "lock", "device_cloud", status="rejected",
                                      error_code="DEVICE_OFFLINE", error_message="offline")
    wait_for(lambda: settled(r, 3), timeout=40)

    flaky = receiver.at("/flaky")
    assert [x["step"] for x in flaky] == ["500", "drop", "hang", "503"]
    assert len({x["headers"]["webhook-id"] for x in flaky}) == 1, "webhook-id is stable across retries"
    for attempt in flaky:
        assert verified(attempt)["type"] == "command.rejected"
    assert len(receiver.at("/bad")) == 1, "a 4xx other than 408/429 is not retried"
    limited = receiver.at("/limited")
    assert [x["step"] for x in limited] == ["429:2", "ok"]
    assert limited[1]["at"] - limited[0]["at"] >= 2.0, "Retry-After is honoured"

    listed = [json.loads(line) for line in cli(settings, "failed", "--json").stdout.splitlines()]
    by_label = {x["last_error"]: x for x in listed}
    assert set(by_label) == {"http_503", "http_400"}
    assert by_label["http_503"]["attempts"] == 4 and by_label["http_400"]["attempts"] == 1
    assert all(x["command_id"] == cmd.command_id for x in listed)
    human = cli(settings, "failed").stdout
    assert by_label["http_503"]["id"] in human and "last_error=http_503" in human

    flaky_id = by_label["http_503"]["id"]
    done = cli(settings, "retry", flaky_id)
    assert done.returncode == 0, done.stderr
    wait_for(lambda: len(receiver.at("/flaky")) == 5, timeout=15)
    wait_for(lambda: settled(r, 3), timeout=15)
    last = receiver.at("/flaky")[-1]
    assert last["step"] == "ok" and last["headers"]["webhook-id"] == flaky_id
    assert verified(last)["id"] == flaky_id
    remaining = [json.loads(line)["id"] for line in cli(settings, "failed", "--json").stdout.splitlines()]
    assert remaining == [by_label["http_400"]["id"]]

    assert cli(settings, "retry", "--all").returncode == 0
    wait_for(lambda: len(receiver.at("/bad")) == 2, timeout=15)
    wait_for(lambda: settled(r, 3), timeout=15)
    assert cli(settings, "failed").stdout.strip() == "no failed notifications"
    assert cli(settings, "retry", flaky_id).returncode == 1, "a delivered notification is not re-sent"
    for path in ("/flaky", "/bad", "/limited"):
        assert sum(1 for x in receiver.at(path) if x["step"] == "ok") == 1, path


def test_retries_survive_a_worker_restart_and_deliver_once(start_web, start_worker, r, receiver):
    receiver.plans = {"/slow": ["500", "500", "ok"]}
    env = dict(NOTIFY_WEBHOOK_URL=f"{receiver.base}/slow", NOTIFY_WEBHOOK_SECRET=NOTIFY_SECRET,
               NOTIFY_RETRY_DELAYS_S="2")
    base, worker = start_live(start_web, start_worker, r, **env)
    CommandStore(r).register("dev_gate", "unlock", "external", status="rejected", error_code="X")
    wait_for(lambda: receiver.at("/slow"), timeout=15)
    assert worker.stop() is not None  # SIGTERM while the next attempt waits in its due set
    assert len(receiver.at("/slow")) == 1
    start_worker(**env)
    wait_for(lambda: settled(r, 1), timeout=30)
    got = receiver.at("/slow")
    assert [x["step"] for x in got] == ["500", "500", "ok"]
    assert len({x["headers"]["webhook-id"] for x in got}) == 1
    assert records(r)[0].status == "delivered"


def test_records_are_created_once_however_often_the_outcome_is_read(r, settings):
    s = derive(settings, **dict(notify_webhook_url="https://hooks.example.com/a https://hooks.example.com/b",
                                notify_webhook_secret=NOTIFY_SECRET))
    cmd, _ = CommandStore(r).register("dev_x", "lock", "external", status="rejected", error_code="E",
                                      callback_url="https://app.example.com/cb")
    [entry] = r.xrange(keys.OUTBOX)  # written by the step that resolved the command
    results: list[list[str]] = []
    threads = [threading.Thread(target=lambda: results.append(create_notifications(r, s, [entry])))
               for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    results.append(create_notifications(r, s, [entry]))  # read again (a notifier died before XACK)
    created = [ids for ids in results if ids]
    assert len(created) == 1 and len(created[0]) == 3
    due = {x.decode() for label in ("webhook:hooks.example.com", "callback:app.example.com")
           for x in r.zrange(keys.notify_due(label), 0, -1)}
    assert due == set(created[0]), "each record is due exactly once"
    again = outbox_entry(r, "command.rejected", cmd.command_id)  # the same outcome written twice
    assert create_notifications(r, s, [again]) == []
    assert r.xlen(keys.OUTBOX) == 0 and len(records(r)) == 3


def test_callback_url_is_checked_again_at_send_time(r, settings, receiver):
    s = derive(settings, **dict(notify_webhook_secret=NOTIFY_SECRET))
    cmd, _ = CommandStore(r).register("dev_y", "unlock", "external", status="rejected", error_code="E",
                                      callback_url=f"{receiver.base}/cb")
    [nid] = create_notifications(r, s, r.xrange(keys.OUTBOX))
    record = NotificationStore(r).get(nid)
    assert record.target == CALLBACK
    result = deliver(record, s)
    assert not result.delivered and not result.retryable and result.error.startswith("callback_url_refused")
    assert receiver.requests == []
    allowed = derive(s, **dict(notify_allowed_hosts="127.0.0.1"))
    assert deliver(record, allowed).delivered
    assert len(receiver.at("/cb")) == 1


def test_callback_policy(settings):
    def resolver(mapping):
        return lambda host, port: mapping[host]

    ok = resolver({"hooks.example.com": ["93.184.216.34"], "evil.example.com": ["10.1.2.3"],
                   "rebind.example.com": ["93.184.216.34", "127.0.0.1"]})
    assert check_callback_url("https://hooks.example.com/x", settings, ok)
    assert check_callback_url("http://93.184.216.34:8080/x", settings, ok)
    for url in ("ftp://hooks.example.com/x", "javascript:alert(1)", "https:///nohost", "http://127.0.0.1/x",
                "http://[::1]/x", "http://10.0.0.5/x", "http://169.254.169.254/latest", "http://192.168.1.1/",
                "http://[::ffff:127.0.0.1]/x", "http://0.0.0.0/", "http://evil.example.com/",
                "http://rebind.example.com/"):
        with pytest.raises(CallbackUrlRefused):
            check_callback_url(url, settings, ok)
    with pytest.raises(CallbackUrlRefused):
        check_callback_url("http://localhost:8000/cb", settings)  # a DNS name that resolves to loopback
    with pytest.raises(CallbackUrlUnresolvable):
        check_callback_url("https://unknown.example.com/", settings, _fail)

    listed = derive(settings, **dict(notify_allowed_hosts="localhost, Hooks.Example.com"))
    assert check_callback_url("http://localhost:8000/cb", listed)  # listed: trusted even on loopback
    assert check_callback_url("https://hooks.example.com/x", listed, ok)
    with pytest.raises(CallbackUrlRefused):
        check_callback_url("https://other.example.com/x", listed, ok)  # an allowlist admits only its hosts


def _fail(host, port):
    raise OSError("no such host")


def test_slack_text_and_retry_after():
    data = {"command_id": "cmd_1", "device_id": "dev_front", "action": "unlock", "via": "seam", "status": "failed",
            "error_code": "LOCK_JAMMED", "created_at": "2026-01-01T00:00:00.000Z",
            "deadline_at": "2026-01-01T00:01:00.000Z", "resolved_at": "2026-01-01T00:00:01.500Z"}
    text = slack_text(Outcome(type="command.failed", at_ms=1, command_id="cmd_1"), data)
    assert text == "command.failed: unlock on device dev_front · error LOCK_JAMMED · latency 1.5 s · command cmd_1"
    lock = slack_text(Outcome(type="lock.state_changed", at_ms=1, device_id="dev_front"),
                      {"device_id": "dev_front", "locked": False, "method": "keycode"})
    assert lock == "lock.state_changed: device dev_front is unlocked (via keycode)"
    assert parse_retry_after("7") == 7.0
    assert parse_retry_after("soon") is None
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # in the past: at once


def test_a_lease_whose_sender_died_runs_out_and_the_same_id_is_sent_again(r, settings, receiver):
    s = derive(settings, notify_webhook_url=f"{receiver.base}/r", notify_webhook_secret=NOTIFY_SECRET)
    cmd, _ = CommandStore(r).register("dev_k", "lock", "external", status="rejected", error_code="E")
    [nid] = create_notifications(r, s, r.xrange(keys.OUTBOX))
    # a sender leased the record (for 1.5 s) and was killed before it recorded anything
    now = int(time.time() * 1000)
    [taken] = r.register_script(store.LEASE)(keys=[keys.NOTIFY_DUE],
                                             args=store.lease_args(now, now + 1500, 10, "dead-sender", {}))
    assert store.Notification.from_hash(taken).id == nid and NotificationStore(r).get(nid).status == "sending"
    with InProcess(s):
        wait_for(lambda: receiver.at("/r"), timeout=15)
        wait_for(lambda: NotificationStore(r).get(nid).status == "delivered", timeout=10)
    [got] = receiver.at("/r")
    assert got["at"] - receiver.started >= 1.0, "not before the lease ran out"
    assert got["headers"]["webhook-id"] == nid and verified(got)["id"] == nid
    assert NotificationStore(r).get(nid).attempts == 1, "the lost attempt is not counted"
    late = store.finish(r.register_script(store.FINISH), r, "dead-sender", NotificationStore(r).get(nid),
                        "failed", attempt=1, error="late")
    assert late == 0 and NotificationStore(r).get(nid).status == "delivered", "a lost lease records nothing"


def test_worker_killed_while_sending_resends_the_same_webhook_id(start_web, start_worker, r, receiver):
    import os
    import signal

    receiver.hang_s = 4
    receiver.plans = {"/k": ["hang"]}
    env = dict(NOTIFY_WEBHOOK_URL=f"{receiver.base}/k", NOTIFY_WEBHOOK_SECRET=NOTIFY_SECRET, NOTIFY_TIMEOUT_S=1)
    _, worker = start_live(start_web, start_worker, r, **env)
    CommandStore(r).register("dev_z", "unlock", "external", status="rejected", error_code="E")
    wait_for(lambda: receiver.at("/k"), timeout=15)
    os.killpg(worker.proc.pid, signal.SIGKILL)  # mid-send: the target has the request, nothing is recorded
    worker.proc.wait()
    start_worker(**env)
    wait_for(lambda: settled(r, 1), timeout=60)
    got = receiver.at("/k")
    assert [x["step"] for x in got] == ["hang", "ok"]
    assert got[0]["headers"]["webhook-id"] == got[1]["headers"]["webhook-id"], "the documented window: same id"
    assert records(r)[0].status == "delivered"


def test_with_no_target_an_outcome_is_one_log_line(r, settings, caplog):
    cmd, _ = CommandStore(r).register("dev_l", "lock", "external", status="rejected", error_code="JAMMED")
    with caplog.at_level("INFO", logger="lockhook.notifications"):
        entries = r.xrange(keys.OUTBOX)
        assert create_notifications(r, settings, entries) == []
        assert create_notifications(r, settings, entries) == []
        assert create_notifications(r, settings, [outbox_entry(r, "command.rejected", cmd.command_id)]) == []
    [line] = [rec for rec in caplog.records if rec.name == "lockhook.notifications"]
    assert line.outcome == "command.rejected" and line.error_code == "JAMMED" and line.device_id == "dev_l"
    assert r.zcard(keys.NOTIFY_DUE) == 0 and records(r) == []


def test_records_leased_by_a_call_whose_reply_was_lost_come_back_to_their_sender(r, settings):
    s = derive(settings, notify_webhook_url="https://hooks.example.com/a", notify_webhook_secret=NOTIFY_SECRET)
    rejected = [CommandStore(r).register("dev_lost", "lock", "external", status="rejected", error_code="E")[0]
                for _ in range(2)]
    nids = set(create_notifications(r, s, r.xrange(keys.OUTBOX)))
    assert len(nids) == len(rejected) == 2
    lease = r.register_script(store.LEASE)
    now = int(time.time() * 1000)
    taken = lease(keys=[keys.NOTIFY_DUE], args=store.lease_args(now, now + 60_000, 10, "mine", {}))
    assert {store.Notification.from_hash(x).id for x in taken} == nids  # ... and the reply never arrived
    assert lease(keys=[keys.NOTIFY_DUE], args=store.lease_args(now, now + 60_000, 10, "other", {}, reclaim=True)) == []
    again = lease(keys=[keys.NOTIFY_DUE], args=store.lease_args(now, now + 60_000, 10, "mine", {}, reclaim=True))
    assert {store.Notification.from_hash(x).id for x in again} == nids, "not after the lease runs out: at once"
