"""Reconcile: an unlock done straight on Seam (no webhook) is picked up once by `lockhook reconcile`, or by the
periodic reconcile of the worker; what the webhook brought already changes nothing."""

from __future__ import annotations

import json
import subprocess

import httpx

from tests.support.config import API_TOKEN, SEAM_API_KEY, signed
from tests.support.processes import PYTHON, ROOT, SEAM_DEVICE, process_env
from tests.support.waiting import wait_for

AUTH = {"authorization": f"Bearer {API_TOKEN}"}


def _seam_env(fake_seam, **extra) -> dict:
    return dict(SEAM_API_KEY=SEAM_API_KEY, SEAM_ENDPOINT=fake_seam.url, **extra)


def _reconcile(settings, fake_seam, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([PYTHON, "-m", "tools.cli", "reconcile", *args], cwd=ROOT, capture_output=True, text=True,
                          env=process_env(settings, **_seam_env(fake_seam)), timeout=60)


def _lock(base: str) -> dict:
    return httpx.get(f"{base}/locks/{SEAM_DEVICE}", headers=AUTH, timeout=10).json()


def _events_listed_by_the_fake(fake_seam, since: str) -> list[dict]:
    return fake_seam.call("/events/list", since=since)["events"]


def test_a_missed_unlock_is_applied_once_by_the_cli(settings, fake_seam, start_web, start_worker):
    base = start_web(**_seam_env(fake_seam, RECONCILE_EVERY_S=0))
    start_worker(**_seam_env(fake_seam, RECONCILE_EVERY_S=0))
    before = _events_listed_by_the_fake(fake_seam, "2000-01-01T00:00:00Z")
    fake_seam.call("/locks/unlock_door", device_id=SEAM_DEVICE)
    unlocked = wait_for(lambda: [e for e in _events_listed_by_the_fake(fake_seam, "2000-01-01T00:00:00Z")
                                 if e["event_type"] == "lock.unlocked" and e not in before])
    event_id = unlocked[-1]["event_id"]

    first = _reconcile(settings, fake_seam, "--since", "1h")
    assert first.returncode == 0, first.stderr
    assert "page 1" in first.stderr  # progress on the way, a summary at the end
    state = wait_for(lambda: (s := _lock(base)).get("source_event", "").endswith(event_id) and s)
    assert state["locked"] is False

    second = _reconcile(settings, fake_seam, "--since", "1h")
    assert second.returncode == 0, second.stderr
    assert " 0 stored" in second.stdout, second.stdout
    metrics = httpx.get(base + "/metrics", headers=AUTH, timeout=10).text
    assert 'lockhook_reconciled_events_total{result="duplicate"}' in metrics


def test_what_the_webhook_brought_is_not_applied_again(settings, fake_seam, start_web, start_worker, r):
    base = start_web(**_seam_env(fake_seam, RECONCILE_EVERY_S=0))
    start_worker(**_seam_env(fake_seam, RECONCILE_EVERY_S=0))
    fake_seam.call("/locks/lock_door", device_id=SEAM_DEVICE)
    event = wait_for(lambda: [e for e in _events_listed_by_the_fake(fake_seam, "2000-01-01T00:00:00Z")
                              if e["event_type"] == "lock.locked"])[-1]
    body = json.dumps(event).encode()
    assert httpx.post(base + "/webhooks/seam", content=body, headers=signed(body, "msg_webhook_first"),
                      timeout=10).status_code == 202
    wait_for(lambda: _lock(base).get("source_event", "").endswith(event["event_id"]))
    log_before = httpx.get(f"{base}/locks/{SEAM_DEVICE}", headers=AUTH, timeout=10).json()["events"]

    done = _reconcile(settings, fake_seam, "--since", "1h")
    assert done.returncode == 0, done.stderr
    wait_for(lambda: r.xpending("lh:inbox", "workers")["pending"] == 0 and not r.get("lh:drain:scheduled"))
    log_after = httpx.get(f"{base}/locks/{SEAM_DEVICE}", headers=AUTH, timeout=10).json()["events"]
    assert [e.get("event") for e in log_after if event["event_id"] in str(e.get("event"))] == \
        [e.get("event") for e in log_before if event["event_id"] in str(e.get("event"))], "applied twice"


def test_the_worker_reconciles_periodically(settings, fake_seam, start_web, start_worker):
    base = start_web(**_seam_env(fake_seam))
    start_worker(**_seam_env(fake_seam, RECONCILE_EVERY_S=1))
    fake_seam.call("/locks/unlock_door", device_id=SEAM_DEVICE)
    event_id = wait_for(lambda: [e for e in _events_listed_by_the_fake(fake_seam, "2000-01-01T00:00:00Z")
                                 if e["event_type"] == "lock.unlocked"])[-1]["event_id"]
    state = wait_for(lambda: (s := _lock(base)).get("source_event", "").endswith(event_id) and s, timeout=30)
    assert state["locked"] is False


def test_reconcile_corrects_a_lock_state_that_drifted(settings, fake_seam, start_web, start_worker, r):
    """A lock that re-locked itself and never said so: events say unlocked, Seam says locked."""
    base = start_web(**_seam_env(fake_seam, RECONCILE_EVERY_S=0))
    start_worker(**_seam_env(fake_seam, RECONCILE_EVERY_S=0))
    fake_seam.call("/locks/lock_door", device_id=SEAM_DEVICE)  # the fake now reports it locked
    locked_event = wait_for(lambda: [e for e in _events_listed_by_the_fake(fake_seam, "2000-01-01T00:00:00Z")
                                     if e["event_type"] == "lock.locked"])[-1]
    after_it = locked_event["created_at"].replace("Z", "1Z") if "." in locked_event["created_at"] else None
    body = json.dumps({"event_id": "evt_drift", "event_type": "lock.unlocked", "device_id": SEAM_DEVICE,
                       "method": "manual", "occurred_at": locked_event["created_at"]}).encode()
    assert httpx.post(base + "/webhooks/seam", content=body, headers=signed(body, "msg_drift"),
                      timeout=10).status_code == 202
    wait_for(lambda: _lock(base).get("source_event") == "event:evt_drift")
    assert _lock(base)["locked"] is False
    # the fake's own lock.locked event is not listed again (reconcile from after it): only locks.list knows
    done = _reconcile(settings, fake_seam, "--since", after_it or "1s")
    assert done.returncode == 0, done.stderr
    assert "1 corrected" in done.stdout, done.stdout
    state = _lock(base)
    assert (state["locked"], state["source"]) == (True, "seam_api") and state["read_at"]
