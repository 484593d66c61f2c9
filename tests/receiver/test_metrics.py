"""/metrics parsed with the Prometheus text parser: the counts of a scripted run, in one and in several processes."""

from __future__ import annotations

import json
import re
import time
import uuid
from collections import defaultdict

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from lockhook import keys
from lockhook.commands.store import CommandStore
from lockhook.defaults import LATENCY_BUCKETS_MS
from lockhook.metrics import latency_histogram
from lockhook.scripts import source
from tests.support.config import API_TOKEN, DEVICE_CLOUD_SECRET, SECRET, signed
from tests.support.waiting import wait_for
from workers.drain import drain

AUTH = {"authorization": f"Bearer {API_TOKEN}"}


def parse(text: str) -> dict[str, list]:
    """family name -> samples (name, labels, value)."""
    return {f.name: f.samples for f in text_string_to_metric_families(text)}


def value(families: dict, family: str, sample: str | None = None, **labels) -> float:
    """Sum of the samples of a family (or one sample name) whose labels include `labels`."""
    total = 0.0
    for s in families.get(family, []):
        if sample and s.name != sample:
            continue
        if all(s.labels.get(k) == v for k, v in labels.items()):
            total += s.value
    return total


def post(client, endpoint: str, body: dict | bytes, delivery_id: str | None = None, secret: str | None = None,
         **kw):
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    secret = secret or (SECRET if endpoint == "seam" else DEVICE_CLOUD_SECRET)
    headers = signed(raw, delivery_id or "msg_" + uuid.uuid4().hex, secret=secret, **kw)
    return client.post(f"/webhooks/{endpoint}", content=raw, headers=headers)


def register(client, **body) -> dict:
    response = client.post("/commands", json={"via": "external", **body}, headers=AUTH)
    assert response.status_code == 201, response.text
    return response.json()


def test_metrics_need_the_token(client, make_app):
    from starlette.testclient import TestClient

    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", headers={"authorization": "Bearer wrong"}).json()["error"] == "unauthorized"
    with TestClient(make_app(lockhook_api_token=None)) as open_client:
        response = open_client.get("/metrics", headers=AUTH)
        assert response.status_code == 503 and response.json()["error"] == "api_disabled"


def test_scripted_run_counts(client, r):
    """Deliveries of every outcome, events of several types, commands of every outcome: exact counts.

    Per-process samples (scope="process", ack latency) live in this test process's registry, which earlier
    tests also used: they are compared as the difference to a scrape taken before the run.
    """
    start = parse(client.get("/metrics", headers=AUTH).text)
    store = CommandStore(r)
    c_ok = register(client, device_id="front-door", action="unlock", action_attempt_id="aa-1")
    c_fail = register(client, device_id="back-door", action="lock", custom_id="cu-2")
    c_late = register(client, device_id="garage", action="lock", custom_id="cu-3", timeout_s=0.05)
    c_rej = register(client, device_id="garage", action="unlock", custom_id="cu-4")
    store.reject(c_rej["command_id"], "DEVICE_OFFLINE", "offline")
    wait_for(lambda: store.expire(c_late["command_id"]) == "command.timed_out")

    unlocked = {"event_type": "action_attempt.unlock_door.succeeded", "event_id": "ev-1",
                "action_attempt_id": "aa-1", "action_type": "UNLOCK_DOOR", "status": "success",
                "device_id": "front-door"}
    assert post(client, "seam", unlocked, "msg_dup").status_code == 202
    assert post(client, "seam", unlocked, "msg_dup").status_code == 200  # Svix retry: duplicate
    assert post(client, "seam", {"event_type": "lock.locked", "event_id": "ev-2", "device_id": "porch",
                                 "method": "manual"}).status_code == 202
    assert post(client, "seam", {"event_type": "device.connected", "event_id": "ev-3",
                                 "device_id": "porch"}).status_code == 202
    assert post(client, "seam", b"<not json>").json()["status"] == "quarantined"
    jammed = {"event_type": "lock.action_completed", "device_id": "back-door", "custom_id": "cu-2",
              "action": "lock", "status": "failed", "error_code": "LOCK_JAMMED"}
    late = {"event_type": "lock.action_completed", "device_id": "garage", "custom_id": "cu-3", "action": "lock",
            "status": "success", "performed_via": "mobile_app"}
    assert post(client, "device-cloud", jammed).status_code == 202
    assert post(client, "device-cloud", late).status_code == 202

    body = json.dumps(unlocked).encode()
    assert post(client, "seam", body, secret=DEVICE_CLOUD_SECRET).status_code == 401  # wrong secret
    assert post(client, "seam", body, secret=DEVICE_CLOUD_SECRET).status_code == 401
    assert client.post("/webhooks/seam", content=body).json()["error"] == "missing_signature_headers"
    assert post(client, "seam", body, timestamp=int(time.time()) - 3600).status_code == 401
    assert post(client, "device-cloud", b"x" * 300_000).status_code == 413

    before = parse(client.get("/metrics", headers=AUTH).text)
    assert value(before, "lockhook_queue_depth", queue="inbox") == 5
    assert value(before, "lockhook_queue_oldest_age_seconds", queue="inbox") > 0
    assert value(before, "lockhook_commands_pending") == 2

    assert drain(r) == 5
    m = parse(client.get("/metrics", headers=AUTH).text)

    assert value(m, "lockhook_redis_up") == 1
    deliveries = defaultdict(float)
    for s in m["lockhook_deliveries"]:
        deliveries[(s.labels["endpoint"], s.labels["outcome"], s.labels["scope"])] += s.value
    for s in start["lockhook_deliveries"]:
        deliveries[(s.labels["endpoint"], s.labels["outcome"], s.labels["scope"])] -= s.value
    assert {k: v for k, v in deliveries.items() if v} == {
        ("seam", "accepted", "cluster"): 3, ("seam", "duplicate", "cluster"): 1,
        ("seam", "quarantined", "cluster"): 1, ("device-cloud", "accepted", "cluster"): 2,
        ("seam", "invalid_signature", "process"): 2, ("seam", "missing_signature_headers", "process"): 1,
        ("seam", "timestamp_out_of_tolerance", "process"): 1, ("device-cloud", "payload_too_large", "process"): 1,
    }
    for outcome, status, count in (("payload_too_large", "413", 1), ("invalid_signature", "401", 2)):
        assert (value(m, "lockhook_deliveries", outcome=outcome, status=status)
                - value(start, "lockhook_deliveries", outcome=outcome, status=status)) == count

    events = {s.labels["event_type"]: s.value for s in m["lockhook_events"]}
    assert events == {"action_attempt.unlock_door.succeeded": 1, "lock.locked": 1, "device.connected": 1,
                      "lock.action_completed": 2}
    commands = {s.labels["outcome"]: s.value for s in m["lockhook_commands"]}
    assert commands == {"succeeded": 1, "failed": 1, "timed_out": 1, "rejected": 1, "late_result": 1}
    assert value(m, "lockhook_commands_pending") == 0

    # confirmation latency: the two confirmations and the late one, all registered `via: external`
    assert value(m, "lockhook_confirmation_latency_seconds", "lockhook_confirmation_latency_seconds_count",
                 via="external") == 3
    inf = value(m, "lockhook_confirmation_latency_seconds", "lockhook_confirmation_latency_seconds_bucket",
                via="external", le="+Inf")
    assert inf == 3
    assert value(m, "lockhook_confirmation_latency_seconds", "lockhook_confirmation_latency_seconds_sum",
                 via="external") > 0

    # ack latency: every webhook answer, per endpoint (5 accepted/duplicate/quarantined + 4 rejected on seam)
    count = "lockhook_ack_latency_seconds_count"
    for endpoint, n in (("seam", 9), ("device-cloud", 3)):
        assert (value(m, "lockhook_ack_latency_seconds", count, endpoint=endpoint)
                - value(start, "lockhook_ack_latency_seconds", count, endpoint=endpoint)) == n

    assert value(m, "lockhook_queue_depth", queue="inbox") == 0
    assert value(m, "lockhook_inbox_lag") == 0 and value(m, "lockhook_inbox_pending") == 0
    assert value(m, "lockhook_queue_oldest_age_seconds", queue="inbox") == 0
    for name in ("events", "polls"):
        assert value(m, "lockhook_queue_depth", queue=name) == r.llen(f"rq:queue:{name}")
    assert {c["command_id"] for c in (c_ok, c_fail, c_late)} <= {
        x.decode() for x in r.zrange(keys.COMMANDS, 0, -1)}


def test_metrics_answer_when_redis_is_down(make_app):
    from starlette.testclient import TestClient

    with TestClient(make_app(redis_url="redis://127.0.0.1:1/0")) as down:
        response = down.get("/metrics", headers=AUTH)
    assert response.status_code == 200
    m = parse(response.text)
    assert value(m, "lockhook_redis_up") == 0


def test_latency_buckets_match_the_lua_script():
    lua = re.search(r"LATENCY_BUCKETS_MS = \{([^}]*)\}", source("apply_event")).group(1)
    assert tuple(int(x) for x in lua.split(",")) == LATENCY_BUCKETS_MS
    buckets, total = latency_histogram({"seam:le_250": 2, "seam:le_1000": 1, "seam:le_inf": 1,
                                        "seam:sum_ms": 400_500, "seam:count": 4})["seam"]
    as_dict = dict(buckets)
    assert as_dict["0.25"] == 2 and as_dict["0.5"] == 2 and as_dict["1.0"] == 3 and as_dict["300.0"] == 3
    assert as_dict["+Inf"] == 4 and total == pytest.approx(400.5)


def _json_lines(text: str) -> list[dict]:
    out = []
    for line in text.splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            continue
    return out


def test_several_web_processes_report_the_same_counts(start_web, start_worker, tmp_path, r):
    """Two web processes sharing PROMETHEUS_MULTIPROC_DIR and a worker: each /metrics reports the whole run."""
    multiproc = tmp_path / "prom"
    multiproc.mkdir()
    web_a = start_web(PROMETHEUS_MULTIPROC_DIR=multiproc)
    live_a = start_web.live
    web_b = start_web(PROMETHEUS_MULTIPROC_DIR=multiproc)
    worker = start_worker()

    with httpx.Client(timeout=10) as http:
        created = http.post(web_a + "/commands", headers=AUTH, json={
            "device_id": "front-door", "action": "unlock", "via": "external", "action_attempt_id": "aa-live"})
        assert created.status_code == 201, created.text
        command_id = created.json()["command_id"]
        body = json.dumps({"event_type": "lock.unlocked", "event_id": "ev-live", "device_id": "front-door",
                           "action_attempt_id": "aa-live", "method": "seamapi"}).encode()
        for base in (web_a, web_b):  # the same delivery to both: one accepted, one duplicate
            http.post(base + "/webhooks/seam", content=body, headers=signed(body, "msg_live"))
        for base in (web_a, web_b):
            bad = http.post(base + "/webhooks/seam", content=body, headers=signed(body, "msg_bad", secret=
                                                                                   DEVICE_CLOUD_SECRET))
            assert bad.status_code == 401
        done = http.get(f"{web_b}/commands/{command_id}?wait=20", headers=AUTH).json()
        assert done["status"] == "succeeded"

        scrapes = [parse(http.get(base + "/metrics", headers=AUTH).text) for base in (web_a, web_b)]
    for m in scrapes:
        assert value(m, "lockhook_deliveries", endpoint="seam", outcome="accepted", scope="cluster") == 1
        assert value(m, "lockhook_deliveries", endpoint="seam", outcome="duplicate", scope="cluster") == 1
        assert value(m, "lockhook_deliveries", outcome="invalid_signature", scope="process") == 2
        assert value(m, "lockhook_ack_latency_seconds", "lockhook_ack_latency_seconds_count") == 4
        assert value(m, "lockhook_events", event_type="lock.unlocked") == 1
        assert value(m, "lockhook_commands", outcome="succeeded") == 1
        assert value(m, "lockhook_confirmation_latency_seconds", "lockhook_confirmation_latency_seconds_count",
                      via="external") == 1

    # one structured line per delivery (web), per event and per resolution (worker), with the correlation ids
    web_lines = [x for x in _json_lines(live_a.output()) if x.get("logger") == "lockhook.deliveries"]
    assert {(x.get("delivery_id"), x.get("outcome")) for x in web_lines} >= {("msg_bad", "invalid_signature")}
    assert all(x.get("endpoint") == "seam" and "latency_ms" in x for x in web_lines)
    worker_lines = wait_for(lambda: [x for x in _json_lines(worker.output()) if x.get("command_id") == command_id]
                            or None)
    event_line = next(x for x in _json_lines(worker.output()) if x.get("msg") == "event applied")
    assert event_line["delivery_id"] == "msg_live" and event_line["event_id"] == "event:ev-live"
    assert event_line["device_id"] == "front-door" and event_line["command_id"] == command_id
    assert any(x.get("outcome") == "command.succeeded" and x.get("device_id") == "front-door"
               for x in worker_lines)
    assert API_TOKEN not in live_a.output() and SECRET not in live_a.output()
