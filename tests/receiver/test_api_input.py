"""API input over real HTTP against the Procfile's web: text that cannot be stored, ids outside the one
pattern, idempotency keys reused for another request, and JSON for unknown routes and methods."""

from __future__ import annotations

import threading

import httpx
import pytest

from lockhook import keys
from lockhook.commands.issuing import issue_device_cloud
from lockhook.commands.store import CommandStore
from lockhook.errors import ValidationFailed
from tests.support.config import API_TOKEN, DEVICE_CLOUD_API_KEY, configured

AUTH = {"authorization": f"Bearer {API_TOKEN}"}


@pytest.fixture
def web(start_web, device_cloud) -> str:
    """The web process, issuing device-cloud commands to the local device cloud."""
    return start_web(DEVICE_CLOUD_URL=device_cloud.url, DEVICE_CLOUD_API_KEY=DEVICE_CLOUD_API_KEY)


def post_raw(base: str, raw: str, **headers) -> httpx.Response:
    """POST /commands with a body written by hand (a `\\ud800` escape cannot come from json.dumps of valid text)."""
    return httpx.post(base + "/commands", content=raw.encode(),
                      headers={**AUTH, "content-type": "application/json", **headers}, timeout=30)


def post(base: str, body: dict, **headers) -> httpx.Response:
    return httpx.post(base + "/commands", json=body, headers={**AUTH, **headers}, timeout=30)


def cloud(**extra) -> dict:
    return {"device_id": "lock_1", "action": "lock", "via": "device_cloud", **extra}


# -- text that cannot be stored or echoed -------------------------------------------------------------

SURROGATE = "\\ud800"  # a lone surrogate escape as it appears in the JSON text


@pytest.mark.parametrize(("fragment", "loc"), [
    (f'"metadata": {{"note": "{SURROGATE}"}}', ["body", "metadata", "note"]),
    (f'"metadata": {{"{SURROGATE}": 1}}', ["body", "metadata"]),
    (f'"metadata": {{"a": [1, {{"b": "x{SURROGATE}y"}}]}}', ["body", "metadata", "a", 1, "b"]),
    (f'"custom_id": "req{SURROGATE}"', ["body", "custom_id"]),
    (f'"callback_url": "https://hooks.example.test/{SURROGATE}"', ["body", "callback_url"]),
])
def test_a_lone_surrogate_anywhere_is_422_before_the_device_is_called(web, device_cloud, fragment, loc):
    raw = '{"device_id": "lock_1", "action": "lock", "via": "device_cloud", ' + fragment + "}"
    resp = post_raw(web, raw)
    assert resp.status_code == 422, resp.text
    data = resp.json()
    assert data["error"] == "validation_error"
    assert any(err["loc"] == loc and err["type"] == "string_unicode" for err in data["errors"]), data
    assert device_cloud.calls == []  # refused before anything reached the door
    listed = httpx.get(web + "/commands", params={"device_id": "lock_1"}, headers=AUTH)
    assert listed.status_code == 200 and listed.json()["commands"] == []


@pytest.mark.parametrize(("metadata", "loc", "kind"), [
    ('{"x": 1e400}', ["body", "metadata", "x"], "finite_number"),
    ('{"x": [NaN]}', ["body", "metadata", "x", 0], "finite_number"),
    ('{"x": -Infinity}', ["body", "metadata", "x"], "finite_number"),
    ('{"a": ' * 40 + "1" + "}" * 40, ["body", "metadata"], "value_error"),
    ('{"a": ' * 300 + "1" + "}" * 300, ["body", "metadata"], "value_error"),
])
def test_metadata_json_cannot_say_back_is_422_before_the_device_is_called(web, device_cloud, metadata, loc, kind):
    """Infinity would be echoed as null (or not at all); nesting past what a command renders would 500."""
    raw = '{"device_id": "lock_1", "action": "lock", "via": "device_cloud", "metadata": ' + metadata + "}"
    resp = post_raw(web, raw)
    assert resp.status_code == 422, resp.text
    assert any(err["loc"] == loc and err["type"] == kind for err in resp.json()["errors"]), resp.json()
    assert device_cloud.calls == []
    assert httpx.get(web + "/commands", headers=AUTH).json()["commands"] == []


def test_metadata_nested_up_to_the_limit_is_kept(web):
    nested = '{"a": ' * 31 + "1" + "}" * 31
    raw = '{"device_id": "lock_1", "action": "lock", "via": "external", "metadata": ' + nested + "}"
    resp = post_raw(web, raw)
    assert resp.status_code == 201, resp.text
    got = httpx.get(f"{web}/commands/{resp.json()['command_id']}", headers=AUTH)
    assert got.status_code == 200 and got.json()["metadata"] == resp.json()["metadata"]


def test_a_lone_surrogate_in_the_device_id_is_422(web, device_cloud):
    resp = post_raw(web, '{"device_id": "lock' + SURROGATE + '", "action": "lock", "via": "device_cloud"}')
    assert resp.status_code == 422 and device_cloud.calls == []


def test_a_command_stored_with_a_lone_surrogate_never_makes_a_read_500(web, r):
    """What an earlier version could store: every read route answers, the text shown with U+FFFD."""
    command, _ = CommandStore(r).register("dev_bad_text", "lock", "external", metadata={"note": "a\ud800b"},
                                          schedule_expiry=False)
    r.hset(keys.command(command.command_id), "error_message", b"not utf-8 \xff\xfe")
    got = httpx.get(f"{web}/commands/{command.command_id}", headers=AUTH)
    assert got.status_code == 200, got.text
    assert got.json()["metadata"] == {"note": "a\ufffdb"}
    assert "\ufffd" in got.json()["error_message"]
    listed = httpx.get(web + "/commands", params={"device_id": "dev_bad_text"}, headers=AUTH)
    assert listed.status_code == 200 and listed.json()["count"] == 1
    assert httpx.get(web + "/commands", headers=AUTH).status_code == 200
    assert httpx.get(f"{web}/commands/{command.command_id}?wait=0.1", headers=AUTH).status_code == 200
    assert httpx.get(f"{web}/dashboard/commands/{command.command_id}", headers=AUTH).status_code == 200
    assert httpx.get(web + "/dashboard", headers=AUTH).status_code == 200


def test_unreadable_stored_metadata_is_shown_as_none(web, r):
    deep: dict = {"end": 1}
    for _ in range(300):
        deep = {"a": deep}
    store = CommandStore(r)
    cut, _ = store.register("dev_bad_json", "lock", "external", schedule_expiry=False)
    r.hset(keys.command(cut.command_id), "metadata", b'{"cut": ')
    too_deep, _ = store.register("dev_bad_json", "unlock", "external", metadata=deep, schedule_expiry=False)
    for command in (cut, too_deep):
        got = httpx.get(f"{web}/commands/{command.command_id}", headers=AUTH)
        assert got.status_code == 200 and got.json()["metadata"] is None, got.text
    listed = httpx.get(web + "/commands", params={"device_id": "dev_bad_json"}, headers=AUTH)
    assert listed.status_code == 200 and listed.json()["count"] == 2


# -- one id pattern, in paths and bodies ------------------------------------------------------------------

def test_ids_reaching_keys_of_another_type_are_404_in_paths(web, r):
    command_id = post(web, {"device_id": "dev_1", "action": "lock", "via": "external"}).json()["command_id"]
    assert r.type(keys.command_timeline(command_id)) == b"list"  # `<id>:timeline` names a list, not a command
    r.set(keys.notification_guard("out_1"), "1")  # `outcome:out_1` names a string, not a notification
    for method, path in [
        ("GET", f"/commands/{command_id}:timeline"),
        ("GET", f"/commands/{command_id}:timeline?wait=1"),
        ("GET", f"/dashboard/commands/{command_id}:timeline"),
        ("POST", "/dashboard/notifications/outcome:out_1/retry"),
        ("GET", "/locks/dev_1:cmds"),
        ("GET", "/commands/has%20space"),
        ("GET", "/commands/caf%C3%A9"),
    ]:
        resp = httpx.request(method, web + path, headers=AUTH, timeout=30)
        assert resp.status_code == 404, (path, resp.status_code, resp.text)
        assert resp.json()["error"] == "not_found" and "retry-after" not in resp.headers, path


@pytest.mark.parametrize(("field", "value"), [
    ("device_id", "dev:1"), ("device_id", ".."), ("device_id", "."), ("device_id", "a/b"), ("device_id", "x" * 201),
    ("custom_id", "req:1"), ("custom_id", ".."), ("action_id", "act:timeline"), ("action_attempt_id", "a b"),
])
def test_ids_outside_the_pattern_are_422_in_bodies(web, device_cloud, field, value):
    body = {"device_id": "dev_1", "action": "lock", "via": "external", field: value}
    resp = post(web, body)
    assert resp.status_code == 422, resp.text
    assert any(err["loc"] == ["body", field] for err in resp.json()["errors"]), resp.json()
    assert device_cloud.calls == []


def test_a_dot_dot_device_id_never_reaches_another_device_cloud_route(web, device_cloud):
    resp = post(web, cloud(device_id=".."))
    assert resp.status_code == 422, resp.text
    assert resp.json()["errors"][0]["loc"] == ["body", "device_id"]
    assert device_cloud.calls == []  # today httpx sends it to POST {DEVICE_CLOUD_URL}/actions


def test_the_issuer_itself_refuses_ids_outside_the_pattern(settings, device_cloud):
    """Defence in depth: a caller that skipped the API's validation still cannot build another route."""
    dc = configured(settings, device_cloud_url=device_cloud.url)
    for bad in ("..", ".", "a:b", "a/b"):
        with pytest.raises(ValidationFailed):
            issue_device_cloud(dc, bad, "lock", "lh_1")
    assert device_cloud.calls == []
    issued = issue_device_cloud(dc, "front.door~1", "lock", "lh_2")
    assert issued.action_id and device_cloud.calls[0]["path"] == "/locks/front.door~1/actions"


def test_ids_outside_the_pattern_are_422_in_list_queries(web):
    resp = httpx.get(web + "/commands", params={"device_id": "dev:1"}, headers=AUTH)
    assert resp.status_code == 422 and resp.json()["errors"][0]["loc"] == ["query", "device_id"]


# -- idempotency: one key, one request -------------------------------------------------------------------

def test_an_idempotency_key_reused_with_another_body_is_422(web, device_cloud):
    key = {"Idempotency-Key": "idem-1"}
    first = post(web, cloud(metadata={"booking": 1}), **key)
    assert first.status_code == 201, first.text
    same = post(web, cloud(metadata={"booking": 1}), **key)
    assert same.status_code == 200 and same.json() == first.json()
    for other in (cloud(action="unlock"), cloud(device_id="lock_2"), cloud(metadata={"booking": 2}),
                  {**cloud(), "via": "external"}):
        resp = post(web, other, **key)
        assert resp.status_code == 422, (other, resp.text)
        assert resp.json()["error"] == "idempotency_key_reused"
        assert resp.json()["errors"][0]["loc"] == ["header", "Idempotency-Key"]
    assert len(device_cloud.calls) == 1


def test_a_custom_id_reused_for_another_device_or_action_is_422(web, device_cloud):
    first = post(web, cloud(custom_id="req_77", metadata={"booking": 1}))
    assert first.status_code == 201, first.text
    again = post(web, cloud(custom_id="req_77", metadata={"booking": 2}))  # same device and action: a retry
    assert again.status_code == 200 and again.json()["command_id"] == first.json()["command_id"]
    for other in (cloud(custom_id="req_77", device_id="lock_2"), cloud(custom_id="req_77", action="unlock")):
        resp = post(web, other)
        assert resp.status_code == 422, (other, resp.text)
        assert resp.json()["error"] == "idempotency_key_reused"
        assert resp.json()["errors"][0]["loc"] == ["body", "custom_id"]
    assert len(device_cloud.calls) == 1


def test_concurrent_duplicates_with_one_key_reach_the_device_once(web, device_cloud):
    results: list[int] = []

    def send():
        results.append(post(web, cloud(), **{"Idempotency-Key": "idem-race"}).status_code)

    threads = [threading.Thread(target=send) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [200] * 7 + [201] and len(device_cloud.calls) == 1


# -- unknown routes and methods -----------------------------------------------------------------------------

def test_unknown_routes_and_methods_answer_json(web):
    missing = httpx.get(web + "/no/such/route")
    assert missing.status_code == 404 and missing.headers["content-type"].startswith("application/json")
    assert missing.json()["error"] == "not_found"
    wrong = httpx.delete(web + "/commands", headers=AUTH)
    assert wrong.status_code == 405 and wrong.json()["error"] == "method_not_allowed"
    assert {"GET", "POST"} <= {m.strip() for m in wrong.headers["allow"].split(",")}
    assert httpx.get(web + "/webhooks/seam").json()["error"] == "method_not_allowed"
