"""The notifier in-process against local sinks: circuit breaker, isolation of a hanging target, unsendable
callback URLs, per-target event filters."""

from __future__ import annotations

import json

import pytest

from lockhook import keys
from lockhook.commands.store import CommandStore
from lockhook.metrics import RedisCollector
from lockhook.notifications.payloads import targets
from lockhook.notifications.store import NotificationStore
from lockhook.outcomes import Outcome
from receiver.dashboard_data import stats
from tests.support.config import API_TOKEN
from tests.support.waiting import wait_for
from tests.workers.notify import InProcess, Receiver, outbox_entry
from tests.workers.test_notifications import NOTIFY_SECRET, derive, records, verified


@pytest.fixture
def sinks():
    made: list[Receiver] = []

    def make(**kwargs) -> Receiver:
        made.append(Receiver(**kwargs))
        return made[-1]

    yield make
    for sink in made:
        sink.close()


def rejected(r, n: int, device: str = "dev_n", **kwargs) -> list[str]:
    """Register n commands that resolved at once (each writes its outcome to the outbox)."""
    store = CommandStore(r)
    return [store.register(device, "lock", "external", status="rejected", error_code="E", **kwargs)[0].command_id
            for _ in range(n)]


def circuit(r, label: str) -> str | None:
    raw = r.hget(keys.NOTIFY_CIRCUITS, label)
    return json.loads(raw)["state"] if raw else None


def metric(r, name: str, **labels) -> float | None:
    for family in RedisCollector(r).collect():
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return sample.value
    return None


def test_circuit_opens_after_failures_lets_one_probe_through_and_closes(r, settings, sinks):
    sink = sinks()
    sink.plans = {"/c": ["503", "503", "503"]}  # then 200
    s = derive(settings, notify_webhook_url=f"{sink.base}/c", notify_webhook_secret=NOTIFY_SECRET,
               notify_retry_delays_s="0.1", notify_max_attempts=10)
    label = f"webhook:127.0.0.1:{sink.server.server_port}"
    rejected(r, 4)
    with InProcess(s, circuit_failures=2, cooldown_s=1.5, concurrency=2):
        wait_for(lambda: circuit(r, label) == "open", timeout=10)
        assert stats(r)["circuits"][label] == 2 and metric(r, "lockhook_notification_circuit", target=label) == 2
        wait_for(lambda: len(sink.at("/c")) >= 3, timeout=10)
        wait_for(lambda: len(records(r)) == 4 and all(n.status == "delivered" for n in records(r)), timeout=20)
    got = sink.at("/c")
    seen = [(x["step"], round(x["at"] - got[0]["at"], 2)) for x in got]
    assert [x["step"] for x in got[:4]] == ["503", "503", "503", "ok"] and len(got) == 7, seen
    assert got[2]["at"] - got[1]["at"] >= 1.5, ("nothing is sent while the circuit is open: the probe waits", seen)
    assert got[3]["at"] - got[2]["at"] >= 1.5, ("a failed probe opens the circuit again", seen)
    assert circuit(r, label) == "closed" and stats(r)["circuits"][label] == 0
    assert metric(r, "lockhook_notification_circuit", target=label) == 0
    assert metric(r, "lockhook_notification_target_attempts_total", target=label, result="retrying") == 3
    assert metric(r, "lockhook_notification_target_attempts_total", target=label, result="delivered") == 4
    assert metric(r, "lockhook_notifications_due", target=label) in (None, 0)


def test_a_hanging_target_neither_delays_a_healthy_one_nor_holds_more_than_its_share(r, settings, sinks):
    healthy, hanging = sinks(), sinks(hang_s=8)
    hanging.plans = {"/h": ["hang"] * 50}
    s = derive(settings, notify_webhook_url=f"{hanging.base}/h {healthy.base}/ok", notify_timeout_s=4,
               notify_webhook_secret=NOTIFY_SECRET)
    rejected(r, 12)
    hanging_label = f"webhook:127.0.0.1:{hanging.server.server_port}"
    store = NotificationStore(r)
    with InProcess(s, concurrency=6, target_cap=3):
        wait_for(lambda: len(healthy.at("/ok")) == 12, timeout=30)
        stuck = [n for n in records(r) if n.label == hanging_label]
        assert len(stuck) == 12 and all(n.status in ("queued", "sending") for n in stuck), \
            "every healthy notification arrived before the first hanging send even timed out"
        assert 1 <= hanging.max_open <= 3, hanging.max_open
        wait_for(lambda: all(store.get(n.id).status == "delivered" for n in records(r) if n.label != hanging_label),
                 timeout=10)
        assert r.zcard(keys.notify_due(hanging_label)) == 12
    assert hanging.max_open <= 3, "the per-target cap bounds what a hanging target holds"


def test_an_unsendable_callback_url_is_refused_at_the_api_or_fails_on_its_first_attempt(r, settings, sinks, client):
    sink = sinks()
    auth = {"authorization": f"Bearer {API_TOKEN}"}
    for url in (f"{sink.base}/c\tb", f"{sink.base}/c b", "http://127.0.0.1:99999/cb", "http://ｌｏｃａｌｈｏｓｔ:8000/cb",
                "http://①②⑦.0.0.1/cb", "http://exa_mple.com/cb"):
        resp = client.post("/commands", headers=auth, json={"device_id": "dev_u", "action": "lock", "via": "external",
                                                            "action_attempt_id": "aa_u", "callback_url": url})
        assert resp.status_code == 422 and resp.json()["error"] == "callback_url_refused", (url, resp.text)
    # records that bypassed the API (stored before the policy, or written by hand) end failed at once
    s = derive(settings, notify_webhook_secret=NOTIFY_SECRET, notify_allowed_hosts="127.0.0.1",
               notify_retry_delays_s="0.1")
    for url in (f"{sink.base}/c\tb", "http://127.0.0.1:99999/cb"):
        rejected(r, 1, callback_url=url)
    with InProcess(s):
        wait_for(lambda: len(records(r)) == 2 and all(n.status == "failed" for n in records(r)), timeout=15)
    for n in records(r):
        assert n.attempts == 1 and n.last_error.startswith("callback_url_refused"), n
    assert sink.requests == []
    assert {x.decode() for x in r.zrange(keys.NOTIFY_FAILED, 0, -1)} == {n.id for n in records(r)}


def test_event_filters_per_target_and_callbacks_get_only_their_own_command(r, settings, sinks):
    a, b, slack = sinks(), sinks(), sinks()
    s = derive(settings, notify_webhook_url=f"{a.base}/a#events=lock.*,command.failed, {b.base}/b",
               notify_events="command.*", slack_webhook_url=f"{slack.base}/slack",
               notify_webhook_secret=NOTIFY_SECRET, notify_allowed_hosts="127.0.0.1")
    command = Outcome(type="command.rejected", at_ms=1, command_id="c1")
    lock = Outcome(type="lock.state_changed", at_ms=1, device_id="d1", event="e1")
    assert targets(s, command, {"callback_url": "https://x.example/cb"}) == [
        ("webhook", f"{b.base}/b"), ("callback", "https://x.example/cb"), ("slack", None)]
    assert targets(s, lock, {"callback_url": "https://x.example/cb"}) == [("webhook", f"{a.base}/a")]

    [mine] = rejected(r, 1, callback_url=f"{a.base}/cb")
    rejected(r, 1, device="dev_other")  # another command: not the callback's business
    outbox_entry(r, "lock.state_changed", device_id="dev_n")
    with InProcess(s):
        wait_for(lambda: len(records(r)) == 6 and all(n.status == "delivered" for n in records(r)), timeout=15)
    assert [verified(x)["type"] for x in a.at("/a")] == ["lock.state_changed"], "the fragment is not sent"
    assert sorted(verified(x)["type"] for x in b.at("/b")) == ["command.rejected"] * 2
    assert len(slack.at("/slack")) == 2
    [cb] = a.at("/cb")
    assert verified(cb)["data"]["command_id"] == mine
