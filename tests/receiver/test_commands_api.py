"""The commands API: auth, validation, idempotent issuing through Seam (fake) and a device cloud, long-poll."""

from __future__ import annotations

import contextlib
import itertools
import json
import re
import threading
import time
from datetime import datetime

import httpx
import psutil
import pytest
import redis
from starlette.testclient import TestClient

from lockhook import keys
from lockhook.commands.store import Command, CommandStore
from lockhook.ids import ID_PATTERN
from receiver import commands_api, resolutions
from tests.support.config import API_TOKEN, DEVICE_CLOUD_API_KEY, DEVICE_CLOUD_SECRET, SEAM_API_KEY, signed
from tests.support.processes import SEAM_DEVICE
from tests.support.servers import closed_port_url
from tests.support.waiting import wait_for
from workers.drain import drain

AUTH = {"authorization": f"Bearer {API_TOKEN}"}


@pytest.fixture
def api(make_app, fake_seam, device_cloud):
    """An app wired to the Seam fake and the local device cloud."""
    app = make_app(seam_api_key=SEAM_API_KEY, seam_endpoint=fake_seam.url, device_cloud_url=device_cloud.url,
                   device_cloud_api_key=DEVICE_CLOUD_API_KEY, seam_poll_after_s=300,
                   notify_allowed_hosts="hooks.example.test,127.0.0.1:9")
    with TestClient(app) as test_client:
        yield test_client


def post(client, body: dict, **headers) -> httpx.Response:
    return client.post("/commands", json=body, headers={**AUTH, **headers})


def external(**extra) -> dict:
    return {"device_id": "dev_1", "action": "lock", "via": "external", **extra}


# -- auth -------------------------------------------------------------------------------------------

ROUTES = [("POST", "/commands"), ("GET", "/commands"), ("GET", "/commands/cmd_x"), ("GET", "/locks/dev_1"),
          ("GET", "/openapi.json")]


@pytest.mark.parametrize(("method", "path"), ROUTES)
def test_without_a_configured_token_the_api_is_disabled(make_app, method, path):
    with TestClient(make_app(lockhook_api_token=None)) as client:
        resp = client.request(method, path, headers=AUTH, json=external())
    assert resp.status_code == 503 and resp.json()["error"] == "api_disabled"


@pytest.mark.parametrize(("method", "path"), ROUTES)
@pytest.mark.parametrize("header", [None, "Bearer wrong", "Basic " + API_TOKEN, "Bearer", API_TOKEN,
                                    "Bearer " + API_TOKEN + "x", "Bearer t\u00e9st"])
def test_a_missing_or_wrong_token_is_401(client, method, path, header):
    headers = {"authorization": header.encode("latin-1")} if header else {}
    resp = client.request(method, path, headers=headers, json=external())
    assert resp.status_code == 401 and resp.json()["error"] == "unauthorized"
    assert API_TOKEN not in resp.text


def test_healthz_stays_open(client):
    assert client.get("/healthz").status_code == 200


# -- external commands, idempotency -----------------------------------------------------------------

def test_external_command_is_created_then_returned_again_for_the_same_custom_id(client, r):
    first = post(client, external(custom_id="req_1", metadata={"booking": 7}, timeout_s=30))
    assert first.status_code == 201, first.text
    command = first.json()
    assert command["status"] == "pending" and command["via"] == "external" and command["custom_id"] == "req_1"
    assert command["metadata"] == {"booking": 7} and first.headers["location"] == f"/commands/{command['command_id']}"
    again = post(client, external(custom_id="req_1"))
    assert again.status_code == 200 and again.json()["command_id"] == command["command_id"]
    got = client.get(f"/commands/{command['command_id']}", headers=AUTH)
    assert got.status_code == 200 and got.json() == command
    assert r.zcard(keys.COMMANDS) == 1


def test_idempotency_key_returns_the_existing_command(client):
    first = post(client, external(), **{"Idempotency-Key": "key-1"})
    second = post(client, external(), **{"Idempotency-Key": "key-1"})
    assert (first.status_code, second.status_code) == (201, 200)
    assert second.json()["command_id"] == first.json()["command_id"]
    other = post(client, external(action="unlock"), **{"Idempotency-Key": "key-1"})
    assert other.status_code == 422 and other.json()["error"] == "idempotency_key_reused"
    assert post(client, external(), **{"Idempotency-Key": "key-2"}).status_code == 201


def test_list_filters_by_device_and_status(client):
    ids = [post(client, external(device_id=d)).json()["command_id"] for d in ("a", "b", "a")]
    listed = client.get("/commands?device_id=a&status=pending&limit=10", headers=AUTH).json()
    assert [c["command_id"] for c in listed["commands"]] == [ids[2], ids[0]] and listed["count"] == 2
    assert client.get("/commands?status=succeeded", headers=AUTH).json()["commands"] == []
    assert len(client.get("/commands?limit=1", headers=AUTH).json()["commands"]) == 1


def test_unknown_ids_are_404(client):
    assert client.get("/commands/cmd_nope", headers=AUTH).json()["error"] == "not_found"
    assert client.get("/commands/cmd_nope?wait=1", headers=AUTH).status_code == 404
    assert client.get("/locks/nobody", headers=AUTH).status_code == 404


def test_lock_state_and_events_after_a_webhook(client, r):
    body = json.dumps({"event_id": "evt_l1", "event_type": "lock.locked", "device_id": "dev_9", "method": "keycode",
                       "occurred_at": "2025-01-09T18:54:32.737Z"}).encode()
    assert client.post("/webhooks/seam", content=body, headers=signed(body, "msg_l1")).status_code == 202
    drain(r)
    lock = client.get("/locks/dev_9", headers=AUTH).json()
    assert lock["locked"] is True and lock["method"] == "keycode" and lock["occurred_at"].startswith("2025-01-09")
    assert lock["events"][0]["event_type"] == "lock.locked"


# -- validation -------------------------------------------------------------------------------------

@pytest.mark.parametrize(("body", "field"), [
    ({"action": "lock", "via": "external"}, "device_id"),
    (external(action="open"), "action"),
    (external(via="carrier_pigeon"), "via"),
    (external(timeout_s=-1), "timeout_s"),
    (external(timeout_s=10**9), "timeout_s"),
    (external(device_id=""), "device_id"),
    (external(device_id="has space"), "device_id"),
    (external(custom_id=5), "custom_id"),
    (external(metadata=[1]), "metadata"),
    (external(metadata={"x": "y" * 9000}), "metadata"),
    (external(surprise=True), "surprise"),
])
def test_bad_bodies_are_422_with_field_errors(client, body, field):
    resp = post(client, body)
    assert resp.status_code == 422, resp.text
    data = resp.json()
    assert data["error"] == "validation_error"
    assert any(err["loc"][:2] == ["body", field] for err in data["errors"]), data


@pytest.mark.parametrize("raw", [b"", b"not json", b"[1]", b'{"device_id": "d", "action": "lock", "via": "external",'
                                 b' "timeout_s": NaN}', b"[" * 5000])
def test_unparseable_bodies_are_422(client, raw):
    resp = client.post("/commands", content=raw, headers={**AUTH, "content-type": "application/json"})
    assert resp.status_code == 422 and resp.json()["errors"]


@pytest.mark.parametrize("wait", ["nan", "NaN", "inf", "-inf", "-1", "31", "1e9", "abc", "0x10", "1e400"])
def test_bad_wait_values_are_422(client, wait):
    command_id = post(client, external()).json()["command_id"]
    resp = client.get(f"/commands/{command_id}", params={"wait": wait}, headers=AUTH)
    assert resp.status_code == 422 and resp.json()["errors"][0]["loc"] == ["query", "wait"]


@pytest.mark.parametrize("query", ["limit=0", "limit=501", "limit=x", "status=done"])
def test_bad_list_queries_are_422(client, query):
    assert client.get(f"/commands?{query}", headers=AUTH).status_code == 422


def test_bad_idempotency_key_is_422(client):
    assert post(client, external(), **{"Idempotency-Key": "x" * 201}).status_code == 422


def test_issuers_without_settings_are_422_on_via(client):
    for via in ("seam", "device_cloud"):
        resp = post(client, external(via=via))
        assert resp.status_code == 422 and resp.json()["errors"][0]["loc"] == ["body", "via"]


@pytest.mark.parametrize("url", ["ftp://hooks.example.test/x", "http://127.0.0.1/x", "http://localhost:8080/",
                                 "http://169.254.169.254/latest/meta-data", "http://[::1]/", "http://10.0.0.5/",
                                 "http://2130706433/", "javascript:alert(1)", "http://evil.example.test/"])
def test_refused_callback_urls_are_422(api, url):
    resp = post(api, external(callback_url=url))
    assert resp.status_code == 422, resp.text
    assert resp.json()["errors"][0]["loc"] == ["body", "callback_url"]


def test_allowed_callback_hosts_are_accepted(api):
    for url in ("https://hooks.example.test/cb", "http://127.0.0.1:9/cb"):
        resp = post(api, external(callback_url=url))
        assert resp.status_code == 201 and resp.json()["callback_url"] == url


# -- Seam -------------------------------------------------------------------------------------------

def test_seam_command_is_issued_once_and_stores_the_action_attempt(api, fake_seam, r):
    before = fake_seam.next_attempt_number()
    resp = post(api, {"device_id": SEAM_DEVICE, "action": "unlock", "via": "seam", "custom_id": "seam_req_1"})
    assert resp.status_code == 201, resp.text
    command = resp.json()
    assert command["status"] == "pending" and command["action_attempt_id"] == f"action_attempt{before + 1}"
    again = post(api, {"device_id": SEAM_DEVICE, "action": "unlock", "via": "seam", "custom_id": "seam_req_1"})
    assert again.status_code == 200 and again.json()["command_id"] == command["command_id"]
    assert fake_seam.next_attempt_number() == before + 2  # the repeat reached no device
    assert CommandStore(r).by_action_attempt_id(command["action_attempt_id"]).command_id == command["command_id"]
    assert any(b"poll_seam_command" in (r.hget(f"rq:job:{j.decode()}", "description") or b"")
               for j in r.zrange("rq:scheduled:polls", 0, -1))


def test_seam_confirms_by_webhook(api, r):
    command = post(api, {"device_id": SEAM_DEVICE, "action": "lock", "via": "seam"}).json()
    event = {"event_id": "evt_aa1", "event_type": "action_attempt.lock_door.succeeded", "workspace_id": "ws",
             "action_attempt_id": command["action_attempt_id"], "action_type": "LOCK_DOOR", "status": "success",
             "created_at": "2025-05-22T10:45:12Z"}
    body = json.dumps(event).encode()
    assert api.post("/webhooks/seam", content=body, headers=signed(body, "msg_aa1")).status_code == 202
    drain(r)
    done = api.get(f"/commands/{command['command_id']}", headers=AUTH).json()
    assert done["status"] == "succeeded" and (done["resolved_by"], done["resolved_via"]) == ("evt_aa1", "webhook")


def test_a_webhook_that_beats_the_api_response_resolves_the_command_at_once(api, fake_seam, r):
    upcoming = f"action_attempt{fake_seam.next_attempt_number() + 1}"  # the fake numbers its attempts
    event = {"event_id": "evt_early", "event_type": "action_attempt.unlock_door.succeeded", "workspace_id": "ws",
             "action_attempt_id": upcoming, "action_type": "UNLOCK_DOOR", "status": "success",
             "created_at": "2025-05-22T10:45:12Z"}
    body = json.dumps(event).encode()
    assert api.post("/webhooks/seam", content=body, headers=signed(body, "msg_early")).status_code == 202
    drain(r)  # parked: no command has that attempt id yet
    resp = post(api, {"device_id": SEAM_DEVICE, "action": "unlock", "via": "seam"})
    assert resp.status_code == 201
    command = resp.json()
    assert command["action_attempt_id"] == upcoming
    assert (command["status"], command["resolved_by"]) == ("succeeded", "evt_early")


def test_seam_refusal_makes_the_command_rejected(api):
    resp = post(api, {"device_id": "no_such_device", "action": "lock", "via": "seam"})
    assert resp.status_code == 201
    command = resp.json()
    assert command["status"] == "rejected" and command["error_code"] == "device_not_found"
    assert command["error_message"] and command["resolved_by"] == "issuer"


def test_seam_unreachable_is_502_and_leaves_nothing_pending(make_app, r):
    app = make_app(seam_api_key=SEAM_API_KEY, seam_endpoint=closed_port_url())
    with TestClient(app) as client:
        resp = post(client, {"device_id": SEAM_DEVICE, "action": "lock", "via": "seam", "custom_id": "c502"})
        assert resp.status_code == 502 and resp.json()["error"] == "upstream_error"
        assert SEAM_API_KEY not in resp.text
        assert client.get("/commands", headers=AUTH).json()["commands"] == []
    assert r.zcard(keys.DEADLINES) == 0 and CommandStore(r).by_custom_id("c502") is None


# -- device cloud -----------------------------------------------------------------------------------

def test_device_cloud_command_gets_a_custom_id_and_resolves_from_its_completion(api, device_cloud, r):
    resp = post(api, {"device_id": "lock_491829", "action": "unlock", "via": "device_cloud"})
    assert resp.status_code == 201, resp.text
    command = resp.json()
    [call] = device_cloud.calls
    assert call["path"] == "/locks/lock_491829/actions"
    assert call["body"] == {"action": "unlock", "custom_id": command["custom_id"]}
    assert call["authorization"] == f"Bearer {DEVICE_CLOUD_API_KEY}"
    assert command["custom_id"].startswith("lh_") and command["action_id"] == "act_1"
    event = {"event_type": "lock.action_completed", "device_id": "lock_491829", "action_id": "act_1",
             "custom_id": command["custom_id"], "action": "unlock", "status": "success",
             "performed_via": "remote_api", "timestamp": "2025-05-22T10:45:12Z"}
    body = json.dumps(event).encode()
    resp = api.post("/webhooks/device-cloud", content=body, headers=signed(body, "dc_1", DEVICE_CLOUD_SECRET))
    assert resp.status_code == 202
    drain(r)
    done = api.get(f"/commands/{command['command_id']}", headers=AUTH).json()
    assert done["status"] == "succeeded" and done["performed_via"] == "remote_api"


def test_device_offline_is_rejected_at_once(api, device_cloud):
    resp = post(api, {"device_id": "offline-lock", "action": "lock", "via": "device_cloud", "custom_id": "r1"})
    assert resp.status_code == 201
    command = resp.json()
    assert command["status"] == "rejected" and command["error_code"] == "DEVICE_OFFLINE"
    assert "offline" in command["error_message"]
    again = post(api, {"device_id": "offline-lock", "action": "lock", "via": "device_cloud", "custom_id": "r1"})
    assert again.status_code == 200 and len(device_cloud.calls) == 1


def test_same_custom_id_twice_calls_the_device_cloud_once(api, device_cloud):
    body = {"device_id": "lock_1", "action": "lock", "via": "device_cloud", "custom_id": "req_98aa221"}
    codes = [post(api, body).status_code for _ in range(3)]
    assert codes == [201, 200, 200] and len(device_cloud.calls) == 1


def test_concurrent_duplicates_reach_the_device_once(api, device_cloud):
    body = {"device_id": "lock_1", "action": "lock", "via": "device_cloud", "custom_id": "race_1"}
    results: list[int] = []
    threads = [threading.Thread(target=lambda: results.append(post(api, body).status_code)) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [200] * 7 + [201] and len(device_cloud.calls) == 1


def test_device_cloud_5xx_is_retried_with_the_same_custom_id(api, device_cloud):
    device_cloud.fail_next = 1
    resp = post(api, {"device_id": "lock_2", "action": "lock", "via": "device_cloud"})
    assert resp.status_code == 201 and resp.json()["status"] == "pending"
    assert len(device_cloud.calls) == 2 and device_cloud.calls[0]["body"] == device_cloud.calls[1]["body"]


def test_device_cloud_down_is_502_and_leaves_nothing(make_app, r, device_cloud):
    device_cloud.fail_next = 10
    with TestClient(make_app(device_cloud_url=device_cloud.url)) as client:
        resp = post(client, {"device_id": "lock_3", "action": "lock", "via": "device_cloud", "custom_id": "gone"})
        assert resp.status_code == 502
        assert len(device_cloud.calls) == 2  # DEVICE_CLOUD_ATTEMPTS (default 2), then give up
        # nothing was kept, so the same custom_id can be tried again once the cloud is back
        device_cloud.fail_next = 0
        retry = post(client, {"device_id": "lock_3", "action": "lock", "via": "device_cloud", "custom_id": "gone"})
        assert retry.status_code == 201
    assert r.zcard(keys.COMMANDS) == 1


def test_device_cloud_closed_port_is_502(make_app, r):
    with TestClient(make_app(device_cloud_url=closed_port_url())) as client:
        resp = post(client, {"device_id": "lock_3", "action": "lock", "via": "device_cloud"})
        assert resp.status_code == 502
    assert r.zcard(keys.COMMANDS) == 0


# -- long-poll --------------------------------------------------------------------------------------

class Monitor(threading.Thread):
    """Every command the test Redis runs (MONITOR): shows that a long-poll has read its command."""

    def __init__(self, client: redis.Redis):
        super().__init__(daemon=True)
        self.monitor = client.monitor().__enter__()
        self.commands: list[tuple[str, str, str]] = []  # (command, arguments, client port)

    def run(self):
        with contextlib.suppress(redis.RedisError, OSError, ValueError, AttributeError):
            for entry in self.monitor.listen():
                if entry["client_type"] != "lua":
                    name, _, args = entry["command"].partition(" ")
                    self.commands.append((name.upper(), args, entry["client_port"]))

    def reads(self, command_id: str, pid: int | None = None) -> int:
        """How often a client (not a script; of process `pid` if given) read the command."""
        ports = {str(c.laddr.port) for c in psutil.Process(pid).net_connections("tcp")} if pid else None
        return sum(1 for name, args, port in self.commands if (name, args) == ("HGETALL", keys.command(command_id))
                   and (ports is None or port in ports))

    def close(self):
        self.monitor.__exit__()
        self.join(5)


@pytest.fixture
def monitor(r):
    watching = Monitor(r)
    watching.start()
    yield watching
    watching.close()


def parked(monitor: Monitor, r, command_id: str, reads_before: int, pid: int | None = None) -> None:
    """Wait until a long-poll (in web process `pid`) has read its command, which it does only once subscribed."""
    wait_for(lambda: monitor.reads(command_id, pid) > reads_before)
    assert r.pubsub_numpat() == 1


def test_wait_returns_as_soon_as_the_command_resolves(client, r, monitor, monkeypatch):
    monkeypatch.setattr(resolutions, "WAIT_RECHECK_S", 60)  # past the wait: no timed re-read can answer it
    command_id = post(client, external(action_attempt_id="aa_wait")).json()["command_id"]
    answer: dict = {}

    def waiter():
        resp = client.get(f"/commands/{command_id}?wait=10", headers=AUTH)
        answer.update(resp.json(), returned=time.time())

    thread = threading.Thread(target=waiter)
    reads = monitor.reads(command_id)
    thread.start()
    parked(monitor, r, command_id, reads)
    CommandStore(r).record_result(command_id, True, resolved_by="test")
    thread.join(15)
    resolved = datetime.fromisoformat(answer["resolved_at"]).timestamp()
    assert answer["status"] == "succeeded"  # woken by the resolution (the wait is 10 s, a re-read 60 s away)
    assert answer["returned"] - resolved < 5, answer["returned"] - resolved  # well before the wait ends
    print(f"\nwait answered {(answer['returned'] - resolved) * 1000:.1f} ms after the resolution")


def test_wait_gives_up_after_n_seconds_with_the_pending_command(client):
    command_id = post(client, external()).json()["command_id"]
    started = time.monotonic()
    resp = client.get(f"/commands/{command_id}?wait=1", headers=AUTH)
    assert resp.status_code == 200 and resp.json()["status"] == "pending"
    assert 1 <= time.monotonic() - started < 10


def test_wait_on_an_already_resolved_command_answers_at_once(client, r):
    command_id = post(client, external()).json()["command_id"]
    CommandStore(r).reject(command_id, "NOPE", "no")
    started = time.monotonic()
    assert client.get(f"/commands/{command_id}?wait=30", headers=AUTH).json()["status"] == "rejected"
    assert time.monotonic() - started < 10  # not the 30 s it may wait


# -- over real HTTP with the Procfile's web + worker -----------------------------------------------------

def live_env(fake_seam, device_cloud, poll_after_s: float) -> dict:
    """These tests tell the webhook and the poll apart: the periodic reconcile (which would also resolve
    commands from the fake's events) is off."""
    return {"SEAM_API_KEY": SEAM_API_KEY, "SEAM_ENDPOINT": fake_seam.url, "SEAM_POLL_AFTER_S": poll_after_s,
            "DEVICE_CLOUD_URL": device_cloud.url, "DEVICE_CLOUD_API_KEY": DEVICE_CLOUD_API_KEY,
            "RECONCILE_EVERY_S": 0}


class Waiter(threading.Thread):
    """GET /commands/{id}?wait=N in the background; records when the answer arrived."""

    def __init__(self, base: str, command_id: str, wait_s: int = 25):
        super().__init__(daemon=True)
        self.url = f"{base}/commands/{command_id}?wait={wait_s}"
        self.answer: dict = {}
        self.sent = self.returned = 0.0

    def run(self):
        self.sent = time.time()
        resp = httpx.get(self.url, headers=AUTH, timeout=40)
        self.returned = time.time()
        self.answer = resp.json()

    def lag_ms(self) -> float:
        """How long after the command's resolution the long-poll answered."""
        return (self.returned - datetime.fromisoformat(self.answer["resolved_at"]).timestamp()) * 1000

    def woken(self) -> bool:
        """Answered before the server's first safety re-read was due: so by the resolution's wake-up."""
        return self.returned - self.sent < resolutions.WAIT_RECHECK_S


def start_waiting(base: str, start_web, command_id: str, monitor: Monitor, r) -> Waiter:
    """A long-poll on the last web process started, once it is parked (a worker may read the command too)."""
    waiter = Waiter(base, command_id)
    pid = start_web.live.proc.pid
    reads = monitor.reads(command_id, pid)
    waiter.start()
    parked(monitor, r, command_id, reads, pid)
    return waiter


def test_live_seam_command_resolves_by_webhook_and_wakes_the_wait(
        start_web, start_worker, fake_seam, device_cloud, r, monitor):
    env = live_env(fake_seam, device_cloud, poll_after_s=120)  # the poll must not get there first
    start_worker(**env)
    base = start_web(**env)
    lags = []
    for n in range(3):
        resp = httpx.post(base + "/commands", headers=AUTH, json={"device_id": SEAM_DEVICE, "action": "lock",
                                                                  "via": "seam"})
        assert resp.status_code == 201, resp.text
        command = resp.json()
        assert command["status"] == "pending" and command["action_attempt_id"]
        waiter = start_waiting(base, start_web, command["command_id"], monitor, r)
        event = {"event_id": f"evt_live_{n}", "event_type": "action_attempt.lock_door.succeeded",
                 "workspace_id": "ws", "action_attempt_id": command["action_attempt_id"],
                 "action_type": "LOCK_DOOR", "status": "success", "created_at": "2025-05-22T10:45:12Z"}
        body = json.dumps(event).encode()
        assert httpx.post(base + "/webhooks/seam", content=body,
                          headers=signed(body, f"msg_live_{n}")).status_code == 202
        waiter.join(30)
        assert waiter.answer["status"] == "succeeded" and waiter.answer["resolved_by"] == f"evt_live_{n}"
        assert waiter.woken(), (waiter.sent, waiter.returned)
        lags.append(waiter.lag_ms())
    print(f"wait answered {max(lags):.1f} ms (max of {len(lags)}) after resolution")


def test_live_seam_command_resolves_by_polling_when_no_webhook_comes(
        start_web, start_worker, fake_seam, device_cloud, r):
    env = live_env(fake_seam, device_cloud, poll_after_s=1)
    start_worker(**env)
    base = start_web(**env)
    ok = httpx.post(base + "/commands", headers=AUTH, json={"device_id": SEAM_DEVICE, "action": "unlock",
                                                            "via": "seam"}).json()
    failing = httpx.post(base + "/commands", headers=AUTH, json={"device_id": SEAM_DEVICE, "action": "lock",
                                                                 "via": "seam"}).json()
    fake_seam.set_attempt(failing["action_attempt_id"], "error", {"type": "lock_jammed", "message": "jammed"})
    done = httpx.get(f"{base}/commands/{ok['command_id']}?wait=20", headers=AUTH, timeout=30).json()
    assert (done["status"], done["resolved_by"]) == ("succeeded", "poll")
    failed = httpx.get(f"{base}/commands/{failing['command_id']}?wait=20", headers=AUTH, timeout=30).json()
    assert (failed["status"], failed["error_code"], failed["resolved_by"]) == ("failed", "lock_jammed", "poll")


def test_live_device_cloud_command_resolves_from_its_signed_completion(
        start_web, start_worker, fake_seam, device_cloud, r, monitor):
    env = live_env(fake_seam, device_cloud, poll_after_s=120)
    start_worker(**env)
    base = start_web(**env)
    resp = httpx.post(base + "/commands", headers=AUTH, json={"device_id": "lock_491829", "action": "unlock",
                                                              "via": "device_cloud"})
    assert resp.status_code == 201, resp.text
    command = resp.json()
    waiter = start_waiting(base, start_web, command["command_id"], monitor, r)
    event = {"event_type": "lock.action_completed", "device_id": "lock_491829", "action_id": command["action_id"],
             "custom_id": command["custom_id"], "action": "unlock", "status": "success",
             "performed_via": "remote_api", "timestamp": "2025-05-22T10:45:12Z"}
    body = json.dumps(event).encode()
    assert httpx.post(base + "/webhooks/device-cloud", content=body,
                      headers=signed(body, "dc_live_1", DEVICE_CLOUD_SECRET)).status_code == 202
    waiter.join(30)
    assert waiter.answer["status"] == "succeeded" and waiter.answer["performed_via"] == "remote_api"
    assert waiter.woken(), (waiter.sent, waiter.returned)
    lock = httpx.get(base + "/locks/lock_491829", headers=AUTH).json()
    assert lock["locked"] is False and lock["performed_via"] == "remote_api"

    started = time.monotonic()
    offline = httpx.post(base + "/commands", headers=AUTH, json={"device_id": "offline-lock", "action": "lock",
                                                                 "via": "device_cloud"})
    assert offline.status_code == 201 and time.monotonic() - started < 2
    assert (offline.json()["status"], offline.json()["error_code"]) == ("rejected", "DEVICE_OFFLINE")


# -- OpenAPI ----------------------------------------------------------------------------------------

def served(app) -> set[tuple[str, str]]:
    return {(route.path, method) for route in app.routes for method in (route.methods or ()) - {"HEAD"}}


def test_openapi_documents_exactly_the_routes_the_app_serves(client):
    doc = client.get("/openapi.json", headers=AUTH).json()
    assert doc["openapi"].startswith("3.")
    documented = {(path, method.upper()) for path, ops in doc["paths"].items() for method in ops}
    assert documented == served(client.app), (served(client.app) - documented, documented - served(client.app))
    for path in ("/webhooks/seam", "/webhooks/device-cloud", "/healthz", "/metrics", "/dashboard"):
        assert path in doc["paths"]


def test_openapi_schemas_come_from_the_models_the_routes_validate_with(client):
    doc = client.get("/openapi.json", headers=AUTH).json()
    schemas = doc["components"]["schemas"]
    assert set(schemas["CommandRequest"]["properties"]) == set(commands_api.CommandRequest.model_fields)
    assert set(schemas["Command"]["properties"]) == set(Command.model_fields)
    listing = {p["name"] for p in doc["paths"]["/commands"]["get"]["parameters"]}
    assert listing == set(commands_api.ListQuery.model_fields)
    assert schemas["CommandRequest"]["properties"]["device_id"]["pattern"] == ID_PATTERN  # the one id pattern
    assert doc["paths"]["/commands/{command_id}"]["get"]["parameters"][0]["schema"]["pattern"] == ID_PATTERN
    refs = {v.rsplit("/", 1)[1] for v in re.findall(r'"\$ref": "([^"]+)"', json.dumps(doc))}
    assert refs <= set(schemas), refs - set(schemas)  # every nested model is in components/schemas


@pytest.mark.one_at_a_time
def test_generated_requests_never_get_a_5xx(start_web):
    """schemathesis against the spec served over HTTP: no generated request may get a 5xx."""
    import schemathesis
    from hypothesis import HealthCheck, given, settings
    from hypothesis.errors import Unsatisfiable
    from schemathesis.checks import not_a_server_error

    base = start_web(NOTIFY_ALLOWED_HOSTS="hooks.example.test")  # no issuer configured: nothing leaves the box
    assert httpx.get(base + "/openapi.json").status_code == 401
    schema = schemathesis.openapi.from_url(base + "/openapi.json", headers=AUTH)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 10
    # an event stream never ends, so a generated request to it could only time out
    operations = [op for op in operations if "text/event-stream" not in json.dumps(op.definition.raw)]

    modes = (schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE)
    calls = itertools.count()  # each call from its own address: generated sign-ins must not throttle the rest
    for operation, mode in itertools.product(operations, modes):
        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def no_server_error(case):
            n = next(calls)
            response = case.call(base_url=base, headers={**AUTH, "x-forwarded-for": f"198.18.{n >> 8 & 255}.{n & 255}"},
                                 timeout=40)
            case.validate_response(response, checks=[not_a_server_error])

        try:
            no_server_error()
        except Unsatisfiable:  # negative mode on an operation with nothing to make invalid
            assert mode == schemathesis.GenerationMode.NEGATIVE


@pytest.mark.one_at_a_time
def test_many_long_polls_share_one_connection_and_leave_webhooks_alone(start_web, r, monitor):
    """More waiters than the Redis client's pool (100) hold: all answered, and a webhook is still acked."""
    import asyncio

    base = start_web()
    count = 150

    async def scenario() -> list[dict]:
        limits = httpx.Limits(max_connections=count + 10)
        async with httpx.AsyncClient(base_url=base, headers=AUTH, timeout=40, limits=limits) as api:
            ids = [(await api.post("/commands", json=external(device_id=f"d{n}"))).json()["command_id"]
                   for n in range(count)]
            reads = {cid: monitor.reads(cid) for cid in ids}
            waits = [asyncio.create_task(api.get(f"/commands/{cid}", params={"wait": 20})) for cid in ids]
            while not all(monitor.reads(cid) > reads[cid] for cid in ids):  # all subscribed and read their command
                await asyncio.sleep(0.05)
            clients = [c for c in r.client_list() if {c.get("sub"), c.get("psub")} - {None, "0"}]
            assert len(clients) == 1 and r.pubsub_numpat() == 1  # one subscriber connection for all of them
            body = json.dumps({"event_id": "evt_busy", "event_type": "lock.locked", "device_id": "x"}).encode()
            ack = await api.post("/webhooks/seam", content=body, headers=signed(body, "msg_busy"))
            assert ack.status_code == 202
            store = CommandStore(r)
            for cid in ids:
                store.record_result(cid, True, resolved_by="test")
            return [(await w).json() for w in waits]

    answers = asyncio.run(scenario())
    assert [a.get("status") for a in answers] == ["succeeded"] * count, [a for a in answers if "status" not in a][:3]


def test_long_poll_survives_a_dropped_subscriber_connection(start_web, r, monitor):
    base = start_web()
    command_id = httpx.post(base + "/commands", headers=AUTH, json=external()).json()["command_id"]
    waiter = start_waiting(base, start_web, command_id, monitor, r)
    r.client_kill_filter(_type="pubsub")
    wait_for(lambda: r.pubsub_numpat() == 1)  # resubscribed
    CommandStore(r).record_result(command_id, False, "LOCK_JAMMED", resolved_by="test")
    waiter.join(30)
    assert waiter.answer["status"] == "failed" and waiter.woken()  # not the 5 s safety re-read


def test_a_resolution_published_while_no_subscription_listened_still_wakes_the_waiter(client, r, monitor,
                                                                                      monkeypatch):
    """After a lost connection every waiter re-reads its command once the subscription is back."""
    monkeypatch.setattr(resolutions, "WAIT_RECHECK_S", 60)  # the safety re-read cannot answer in time
    command_id = post(client, external()).json()["command_id"]
    answer: dict = {}

    def waiter():
        answer.update(client.get(f"/commands/{command_id}?wait=30", headers=AUTH).json(), returned=time.monotonic())

    thread = threading.Thread(target=waiter)
    reads = monitor.reads(command_id)
    thread.start()
    parked(monitor, r, command_id, reads)
    try:
        r.execute_command("ACL", "SETUSER", "default", "-psubscribe")  # the listener cannot resubscribe
        r.client_kill_filter(_type="pubsub")
        wait_for(lambda: monitor.reads(command_id) > reads + 1)  # it noticed the loss: the waiter re-read, pending
        CommandStore(r).record_result(command_id, False, "LOCK_JAMMED", resolved_by="test")
        assert r.pubsub_numpat() == 0  # nobody heard the resolution
    finally:
        r.execute_command("ACL", "SETUSER", "default", "+@all")
    restored = time.monotonic()
    thread.join(40)
    assert (answer.get("status"), answer.get("error_code")) == ("failed", "LOCK_JAMMED"), answer
    assert answer["returned"] - restored < 15  # woken by the resubscription, not by the 30 s deadline
