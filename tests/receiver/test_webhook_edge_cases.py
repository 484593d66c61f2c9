"""Ambiguous signature headers are refused; every stored delivery is recorded under its own name, or counted."""

from __future__ import annotations

import json
import uuid

import httpx

from tests.support.config import API_TOKEN, SECRET, signed


def _body() -> bytes:
    return json.dumps({"event_type": "lock.locked", "event_id": uuid.uuid4().hex, "device_id": "dev_e"}).encode()


def _post(base: str, body: bytes, headers) -> httpx.Response:
    return httpx.post(base + "/webhooks/seam", content=body, headers=headers, timeout=10)


def test_a_signature_header_sent_twice_is_refused_with_400(start_web):
    base = start_web()
    body = _body()
    good = signed(body, "msg_first")
    other = signed(body, "msg_second")
    for name in ("svix-id", "svix-signature", "svix-timestamp"):
        headers = [*good.items(), (name, other[name])]
        answer = _post(base, body, headers)
        assert answer.status_code == 400, name
        assert answer.json()["error"] == "ambiguous_signature_headers"
    both = [*good.items(), ("webhook-id", "msg_other")]
    assert _post(base, body, both).json()["error"] == "ambiguous_signature_headers"
    agreeing = [*good.items(), ("webhook-id", good["svix-id"])]
    assert _post(base, body, agreeing).status_code == 202
    assert _post(base, body, good).status_code == 200  # the first one was stored once, under msg_first


def test_every_accepted_delivery_is_recorded_under_its_own_name(start_web, tmp_path):
    record = tmp_path / "recorded"
    base = start_web(RECORD_DIR=str(record))
    long_a, long_b = "m" * 130 + "a", "m" * 130 + "b"
    ids = ["a/b", "a:b", "a_b", long_a, long_b, "plain"]
    for delivery_id in ids:
        body = _body()
        assert _post(base, body, signed(body, delivery_id)).status_code == 202
    files = sorted(record.glob("*.json"))
    assert len(files) == len(ids)
    assert sorted(json.loads(f.read_text())["headers"]["svix-id"] for f in files) == sorted(ids)


def test_a_recorder_failure_answers_as_stored_and_is_counted(start_web, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    base = start_web(RECORD_DIR=str(blocker / "recorded"))
    body = _body()
    assert _post(base, body, signed(body, "msg_rec_fail")).status_code == 202
    assert _post(base, body, signed(body, "msg_rec_fail")).status_code == 200  # stored once: a retry is a duplicate
    metrics = httpx.get(base + "/metrics", headers={"authorization": f"Bearer {API_TOKEN}"}, timeout=10).text
    assert 'lockhook_recorder_failures_total{endpoint="seam"} 1.0' in metrics
    assert SECRET not in metrics
