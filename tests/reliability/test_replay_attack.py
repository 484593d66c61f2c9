"""Replay attacks: a captured valid delivery re-sent later is refused (timestamp tolerance), re-sent at once is
a harmless duplicate, and its signature cannot be moved to another id, body or endpoint."""

from __future__ import annotations

import json
import time

import httpx

from lockhook import defaults, keys
from lockhook.ingest.signatures import verify
from tests.reliability.helpers import lock_event
from tests.support.config import DEVICE_CLOUD_SECRET, SECRET, signed

RAW = json.dumps(lock_event(1, "dev_replay")).encode()


def test_valid_delivery_resent_after_five_minutes_is_refused(client, r):
    captured = signed(RAW, "msg_captured", timestamp=int(time.time()) - defaults.SIGNATURE_TOLERANCE_S - 1)
    resp = client.post("/webhooks/seam", content=RAW, headers=captured)
    assert resp.status_code == 401 and resp.json()["error"] == "timestamp_out_of_tolerance"
    future = signed(RAW, "msg_future", timestamp=int(time.time()) + defaults.SIGNATURE_TOLERANCE_S + 1)
    resp = client.post("/webhooks/seam", content=RAW, headers=future)
    assert resp.status_code == 401 and resp.json()["error"] == "timestamp_out_of_tolerance"
    assert r.xlen(keys.INBOX) == 0


def test_the_exact_tolerance_window_is_enforced_by_the_verifier():
    """Clock injected: the same captured headers pass at +300 s and fail at +301 s."""
    now = 1_800_000_000
    headers = signed(RAW, "msg_window", timestamp=now)
    assert verify([SECRET], headers, RAW, now=now + defaults.SIGNATURE_TOLERANCE_S) == "msg_window"
    try:
        verify([SECRET], headers, RAW, now=now + defaults.SIGNATURE_TOLERANCE_S + 1)
    except Exception as exc:  # noqa: BLE001 (the type is the assertion)
        assert type(exc).__name__ == "TimestampOutOfTolerance"
    else:
        raise AssertionError("a replay past the tolerance was accepted")


def test_immediate_replay_is_a_duplicate_and_processed_once(client, r):
    headers = signed(RAW, "msg_twice")
    assert client.post("/webhooks/seam", content=RAW, headers=headers).status_code == 202
    again = client.post("/webhooks/seam", content=RAW, headers=headers)
    assert again.status_code == 200 and again.json()["status"] == "duplicate"
    assert r.xlen(keys.INBOX) == 1


def test_a_captured_signature_cannot_be_reused_for_anything_else(client, r):
    headers = signed(RAW, "msg_original")
    tampered_body = RAW.replace(b"lock.locked", b"lock.unlocked")
    cases = [
        ("/webhooks/seam", tampered_body, headers),                                # same headers, new body
        ("/webhooks/seam", RAW, headers | {"svix-id": "msg_new_id"}),               # new id to dodge dedupe
        ("/webhooks/seam", RAW, headers | {"svix-timestamp": str(int(time.time()) + 5)}),  # refreshed timestamp
        ("/webhooks/device-cloud", RAW, headers),                                  # other endpoint's secret
    ]
    for path, raw, hdrs in cases:
        resp = client.post(path, content=raw, headers=hdrs)
        assert resp.status_code == 401 and resp.json()["error"] == "invalid_signature", (path, resp.text)
    assert r.xlen(keys.INBOX) == 0


def test_replay_against_the_live_server(start_web, r):
    base = start_web()
    old = signed(RAW, "msg_live_old", secret=DEVICE_CLOUD_SECRET, timestamp=int(time.time()) - 3600)
    resp = httpx.post(base + "/webhooks/device-cloud", content=RAW, headers=old)
    assert resp.status_code == 401 and resp.json()["error"] == "timestamp_out_of_tolerance"
    assert "whsec_" not in resp.text and r.xlen(keys.INBOX) == 0
