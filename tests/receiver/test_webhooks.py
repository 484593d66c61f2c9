"""The webhook endpoints: verify, quarantine, dedupe + store atomically, 4xx for bad input, 503 without Redis."""

import json
import subprocess
import threading
import time

import httpx
import pytest

from lockhook import keys
from tests.support.config import DEVICE_CLOUD_SECRET, SECRET, signed
from tests.support.processes import ROOT, process_env, procfile_args
from tests.support.waiting import wait_for
from tools.devserver import free_port

EVENT = {"event_id": "evt_1", "event_type": "lock.locked", "device_id": "dev_1", "method": "keycode",
         "occurred_at": "2025-01-09T18:54:32.737Z", "workspace_id": "ws_1"}


def body_of(event=EVENT) -> bytes:
    return json.dumps(event).encode()


def inbox_entries(r):
    return r.xrange(keys.INBOX)


def test_accepts_a_signed_event_and_stores_raw_body_and_headers(client, r):
    body = body_of()
    resp = client.post("/webhooks/seam", content=body, headers=signed(body, "msg_1"))
    assert resp.status_code == 202
    assert resp.json() == {"status": "accepted", "delivery_id": "msg_1"}
    [(_, fields)] = inbox_entries(r)
    assert fields[b"body"] == body and fields[b"delivery_id"] == b"msg_1" and fields[b"endpoint"] == b"seam"
    assert json.loads(fields[b"headers"])["svix-id"] == "msg_1"
    wait_for(lambda: r.llen("rq:queue:events") == 1)  # one drain job handed to the workers (in the background)


def test_duplicate_delivery_id_answers_200_and_enqueues_nothing(client, r):
    body = body_of()
    assert client.post("/webhooks/seam", content=body, headers=signed(body, "msg_dup")).status_code == 202
    again = client.post("/webhooks/seam", content=body, headers=signed(body, "msg_dup"))
    assert again.status_code == 200 and again.json()["status"] == "duplicate"
    assert len(inbox_entries(r)) == 1


def test_same_id_on_the_other_endpoint_is_a_different_delivery(client, r):
    body = body_of()
    client.post("/webhooks/seam", content=body, headers=signed(body, "msg_same"))
    resp = client.post("/webhooks/device-cloud", content=body, headers=signed(body, "msg_same", DEVICE_CLOUD_SECRET))
    assert resp.status_code == 202
    assert len(inbox_entries(r)) == 2


def test_each_endpoint_has_its_own_secret(client):
    body = body_of()
    resp = client.post("/webhooks/device-cloud", content=body, headers=signed(body, "msg_x", SECRET))
    assert resp.status_code == 401 and resp.json()["error"] == "invalid_signature"


@pytest.mark.parametrize("body", [b"not json", b"[1,2]", b'{"event_type": 5}', b'{"no_type": true}', b"[" * 5000])
def test_verified_non_events_are_quarantined_not_lost(client, r, body):
    resp = client.post("/webhooks/seam", content=body, headers=signed(body, "msg_q"))
    assert resp.status_code == 202 and resp.json()["status"] == "quarantined"
    [(_, fields)] = r.xrange(keys.QUARANTINE)
    assert fields[b"body"] == body
    assert inbox_entries(r) == []


def test_signature_failures_are_401_with_codes(client):
    body = body_of()
    assert client.post("/webhooks/seam", content=body).json()["error"] == "missing_signature_headers"
    stale = signed(body, "m1", timestamp=int(time.time()) - 301)
    resp = client.post("/webhooks/seam", content=body, headers=stale)
    assert resp.status_code == 401 and resp.json()["error"] == "timestamp_out_of_tolerance"
    bad = signed(body, "m2") | {"svix-signature": "v1,AAAA"}
    resp = client.post("/webhooks/seam", content=body, headers=bad)
    assert resp.status_code == 401 and resp.json()["error"] == "invalid_signature"
    nonascii = signed(body, "m3") | {"svix-signature": "v1,é".encode("latin-1")}
    assert client.post("/webhooks/seam", content=body, headers=nonascii).status_code == 401
    non_utf8 = b'{"event_type": "\xff"}'
    headers = signed(body, "m4")  # signature of another body; the body is not UTF-8 either way
    assert client.post("/webhooks/seam", content=non_utf8, headers=headers).status_code == 401


def test_webhook_header_form_accepted(client):
    body = body_of()
    resp = client.post("/webhooks/seam", content=body, headers=signed(body, "msg_wh", prefix="webhook"))
    assert resp.status_code == 202


def test_secret_rotation_list(make_app, r):
    from starlette.testclient import TestClient

    old = "whsec_" + "b2xkLXNlY3JldC1vbGQtc2VjcmV0LW9sZA=="
    with TestClient(make_app(seam_webhook_secret=f"{old}, {SECRET}")) as c:
        body = body_of()
        assert c.post("/webhooks/seam", content=body, headers=signed(body, "r1", old)).status_code == 202
        assert c.post("/webhooks/seam", content=body, headers=signed(body, "r2", SECRET)).status_code == 202


def test_endpoint_without_secret_is_disabled(make_app):
    from starlette.testclient import TestClient

    with TestClient(make_app(device_cloud_webhook_secret=None)) as c:
        body = body_of()
        resp = c.post("/webhooks/device-cloud", content=body, headers=signed(body, "d1"))
        assert resp.status_code == 404 and resp.json()["error"] == "endpoint_disabled"


def test_body_over_limit_is_413(make_app):
    from starlette.testclient import TestClient

    with TestClient(make_app(max_body_bytes=100)) as c:
        body = b'{"event_type": "x", "pad": "' + b"a" * 200 + b'"}'
        resp = c.post("/webhooks/seam", content=body, headers=signed(body, "big"))
        assert resp.status_code == 413 and resp.json()["error"] == "payload_too_large"


def test_healthz(client):
    assert client.get("/healthz").json()["status"] == "ok"


def test_no_secret_at_all_refuses_to_start(settings):
    env = process_env(settings, PORT=free_port())
    env.pop("SEAM_WEBHOOK_SECRET")
    env.pop("DEVICE_CLOUD_WEBHOOK_SECRET")
    proc = subprocess.run(procfile_args("web"), env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode != 0
    lines = [line for line in proc.stderr.splitlines() if "lockhook:" in line]
    assert len(lines) == 1 and "SEAM_WEBHOOK_SECRET" in lines[0]
    assert "Traceback" not in proc.stderr


# ---- over real HTTP, the Procfile's web line -------------------------------------------------------------


def rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError


def test_live_web_with_only_the_three_variables(start_web, r):
    base = start_web(DEVICE_CLOUD_WEBHOOK_SECRET="", LOCKHOOK_API_TOKEN="")
    body = body_of()
    resp = httpx.post(base + "/webhooks/seam", content=body, headers=signed(body, "live1"))
    assert resp.status_code == 202
    assert httpx.post(base + "/webhooks/seam", content=body, headers=signed(body, "live1")).status_code == 200
    resp = httpx.post(base + "/webhooks/device-cloud", content=body, headers=signed(body, "live2"))
    assert resp.status_code == 404 and resp.json() == {"error": "endpoint_disabled",
                                                       "message": "no secret is configured for /webhooks/device-cloud"}
    assert httpx.post(base + "/webhooks/seam", content=body).status_code == 401


def test_live_ten_megabyte_body_is_refused_without_reading_it(start_web):
    base = start_web()
    pid = start_web.live.proc.pid
    before = rss_kb(pid)
    chunk = b"a" * 65536

    def stream():
        for _ in range(160):  # 10 MB, no content-length: counted while streaming
            yield chunk

    with httpx.Client() as c:
        try:
            resp = c.post(base + "/webhooks/seam", content=stream(), headers=signed(b"", "huge"))
            assert resp.status_code == 413
        except httpx.TransportError:
            pass  # the server may close the connection after answering 413 mid-upload
        resp = c.post(base + "/webhooks/seam", content=b"a" * 10_000_000, headers=signed(b"", "huge2"))
        assert resp.status_code == 413 and resp.json()["error"] == "payload_too_large"
    assert rss_kb(pid) - before < 8_000  # well under the 10 MB body


def test_live_20_concurrent_posts_of_one_id_enqueue_exactly_once(start_web, r):
    base = start_web()
    body = body_of()
    headers = signed(body, "same_id")
    statuses = []
    barrier = threading.Barrier(20)

    def post():
        barrier.wait()
        statuses.append(httpx.post(base + "/webhooks/seam", content=body, headers=headers).status_code)

    threads = [threading.Thread(target=post) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(statuses) == [200] * 19 + [202]
    assert len(inbox_entries(r)) == 1
    wait_for(lambda: r.llen("rq:queue:events") == 1)
    assert r.get(keys.DRAIN_FLAG) is not None  # a further delivery would not enqueue another drain


def test_live_redis_down_gives_503_and_the_retry_is_accepted_after_restart(start_web, own_redis):
    base = start_web(REDIS_URL=own_redis.url)
    body = body_of()
    assert httpx.get(base + "/healthz").status_code == 200
    own_redis.stop()
    started = time.monotonic()
    resp = httpx.post(base + "/webhooks/seam", content=body, headers=signed(body, "outage1"), timeout=20)
    assert resp.status_code == 503 and resp.json()["error"] == "storage_unavailable"
    assert resp.headers["retry-after"]
    assert time.monotonic() - started < 15
    assert httpx.get(base + "/healthz", timeout=20).status_code == 503
    own_redis.start()
    resp = httpx.post(base + "/webhooks/seam", content=body, headers=signed(body, "outage1"))
    assert resp.status_code == 202  # no dedupe mark was left behind by the failed attempt
    assert httpx.get(base + "/healthz").status_code == 200
