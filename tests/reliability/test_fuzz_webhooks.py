"""Bad input on the webhook endpoints (hypothesis): every answer is a typed 4xx (or 2xx for an authentic
delivery), never a 5xx or a stack trace; what was accepted is processed without crashing the worker; the
live server stays up under malformed HTTP."""

from __future__ import annotations

import json
import os
import socket
import time
from urllib.parse import urlsplit

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lockhook import keys
from lockhook.processing.events import MODELS
from tests.reliability.helpers import inbox_settled
from tests.support.config import SECRET, signed
from workers.drain import drain

FUZZ = settings(max_examples=int(os.environ.get("FUZZ_EXAMPLES", "60")), deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
TYPED = {"missing_signature_headers", "timestamp_out_of_tolerance", "invalid_signature", "payload_too_large",
         "validation_error", "body_read_timeout"}

header_values = st.one_of(
    st.binary(max_size=300).filter(lambda b: b"\r" not in b and b"\n" not in b),
    st.text(max_size=300).map(lambda t: t.encode("utf-8", "surrogatepass")),
    st.sampled_from([b"v1,", b"v1,!!!", b"v1,\xff\xfe", b"v2,abc", b"v1," + b"A" * 20_000, b" ", b"v1,=",
                     b"1e10", b"-5", b"\xe2\x80\x8b123", b"9" * 40, "٣٤٥".encode()]),
)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=40),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=20,
)
known_fields = ["event_id", "device_id", "occurred_at", "created_at", "method", "action_attempt_id", "action_id",
                "custom_id", "action", "status", "error", "error_code", "timestamp", "performed_via"]


def assert_clean(resp: httpx.Response) -> None:
    assert resp.status_code < 500, (resp.status_code, resp.text[:300])
    if resp.status_code >= 400:
        payload = resp.json()
        assert payload["error"] in TYPED, payload
        assert "Traceback" not in resp.text


@FUZZ
@given(prefix=st.sampled_from(["svix", "webhook", "SVIX"]), msg_id=header_values, timestamp=header_values,
       signature=header_values, raw=st.binary(max_size=2000),
       endpoint=st.sampled_from(["seam", "device-cloud"]))
def test_malformed_signature_headers_and_bodies_are_typed_4xx(client, prefix, msg_id, timestamp, signature, raw,
                                                             endpoint):
    headers = [(f"{prefix}-id".encode(), msg_id), (f"{prefix}-timestamp".encode(), timestamp),
               (f"{prefix}-signature".encode(), signature)]
    resp = client.post(f"/webhooks/{endpoint}", content=raw, headers=headers)
    assert_clean(resp)
    assert resp.status_code in (401, 422), resp.text


@FUZZ
@given(raw=st.binary(min_size=1, max_size=3000))
def test_non_utf8_and_random_bytes_with_a_fresh_timestamp_are_refused(client, raw):
    try:
        raw.decode("utf-8")
        headers = signed(raw, "msg_bytes", secret=SECRET)
        headers["svix-signature"] = "v1," + "A" * 44  # wrong signature, well formed
    except UnicodeDecodeError:
        headers = {"svix-id": "msg_bytes", "svix-timestamp": str(int(time.time())), "svix-signature": "v1,AAAA"}
    resp = client.post("/webhooks/seam", content=raw, headers=headers)
    assert_clean(resp)
    assert resp.status_code == 401


@FUZZ
@given(event_type=st.sampled_from(sorted(MODELS) + ["device.connected", "", "lock.locked\x00"]),
       fields=st.dictionaries(st.sampled_from(known_fields), json_values, max_size=8),
       extra=st.dictionaries(st.text(max_size=8), json_values, max_size=3))
def test_signed_events_with_wrong_types_are_accepted_and_processed_without_crashing(client, r, caplog, event_type,
                                                                                   fields, extra):
    event = {**extra, **fields, "event_type": event_type}
    raw = json.dumps(event).encode()
    delivery_id = f"msg_{abs(hash(raw))}"
    resp = client.post("/webhooks/seam", content=raw, headers=signed(raw, delivery_id))
    assert resp.status_code in (200, 202), resp.text
    drain(r, max_seconds=5)  # the worker's own code path, in this process: it must not raise
    stuck = [fields[b"body"] for _, fields in r.xreadgroup(keys.INBOX_GROUP, "inspector", {keys.INBOX: "0"})[0][1]] \
        if r.xpending(keys.INBOX, keys.INBOX_GROUP)["pending"] else []
    assert inbox_settled(r), (raw, stuck, [rec.getMessage() for rec in caplog.records if rec.levelname == "ERROR"])
    failures = [rec.getMessage() for rec in caplog.records if rec.levelname == "ERROR"
                or "cannot be prepared" in rec.getMessage()]
    assert not failures, (raw, failures)  # applied (perhaps as a generic event), not skipped by an exception


def test_deeply_nested_and_enormous_json(client, r):
    for n, raw in enumerate([b"[" * 100_000 + b"]" * 100_000, b'{"event_type":"lock.locked","a":' * 5000 + b"1"
                             + b"}" * 5000, json.dumps({"event_type": "lock.locked", "device_id": ["x"] * 40_000})
                             .encode()]):
        resp = client.post("/webhooks/seam", content=raw, headers=signed(raw, f"msg_nested_{n}"))
        assert resp.status_code == 202, resp.text  # authentic: kept (quarantined or as an event), never a 500
    drain(r, max_seconds=5)
    assert inbox_settled(r)
    huge = b'{"event_type":"lock.locked","pad":"' + b"x" * 300_000 + b'"}'
    resp = client.post("/webhooks/seam", content=huge, headers=signed(huge, "msg_huge"))
    assert resp.status_code == 413 and resp.json()["error"] == "payload_too_large"


def raw_exchange(base: str, request: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", urlsplit(base).port), timeout=1.5) as sock:
        sock.sendall(request)
        data = b""
        try:
            while chunk := sock.recv(65536):
                data += chunk
        except (TimeoutError, ConnectionResetError):
            pass
    return data


def test_live_server_survives_malformed_http(start_web, r):
    base = start_web()
    cases = [
        b"POST /webhooks/seam HTTP/1.1\r\nHost: x\r\nsvix-id: " + b"a" * 200_000 + b"\r\nContent-Length: 0\r\n\r\n",
        b"POST /webhooks/seam HTTP/1.1\r\nHost: x\r\n" + b"".join(b"x-h%d: v\r\n" % i for i in range(5000))
        + b"Content-Length: 0\r\n\r\n",
        b"POST /webhooks/seam HTTP/1.1\r\nHost: x\r\nsvix-id: \xff\xfe\r\nsvix-timestamp: 1\r\n"
        b"svix-signature: v1,\xc3\x28\r\nContent-Length: 2\r\n\r\n{}",
        b"POST /webhooks/seam HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n",
        b"POST /webhooks/seam HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999\r\n\r\n",
        b"POST /webhooks/seam HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        b"POST /webhooks/seam HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n{}",
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 100,  # a TLS hello on the plain port
    ]
    for request in cases:
        answer = raw_exchange(base, request)
        status = int(answer.split(b" ", 2)[1]) if answer.startswith(b"HTTP/1.1 ") else None
        assert status is None or status < 500, answer[:300]
    assert httpx.get(base + "/healthz", timeout=5).status_code == 200
    assert start_web.live.proc.poll() is None
    assert r.xlen(keys.INBOX) == 0 and r.xlen(keys.QUARANTINE) == 0  # none of it was authentic
