"""GET /commands pages by `next_cursor`; GET /locks lists every known lock with its state, paged the same way."""

from __future__ import annotations

import json
import uuid

import pytest

from lockhook import keys
from lockhook.commands.store import CommandStore
from lockhook.streams import ensure_group
from tests.support.config import API_TOKEN, signed
from workers.drain import drain

AUTH = {"authorization": f"Bearer {API_TOKEN}"}


def pages(client, path: str, key: str, **params) -> list[list[dict]]:
    """Follow next_cursor to the end; every page as returned."""
    out, cursor = [], None
    while True:
        query = {**params, **({"cursor": cursor} if cursor else {})}
        answer = client.get(path, params=query, headers=AUTH)
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert body["count"] == len(body[key])
        out.append(body[key])
        cursor = body["next_cursor"]
        if cursor is None:
            return out
        assert len(out) < 50, "pagination does not end"


def test_commands_page_newest_first_without_gaps_or_repeats(client, r):
    store = CommandStore(r)
    made = [store.register(f"door_{i % 2}", "lock", "device_cloud", custom_id=f"req_page_{i}",
                           schedule_expiry=False)[0] for i in range(7)]  # several share a millisecond
    got = pages(client, "/commands", "commands", limit=3)
    assert [len(p) for p in got] == [3, 3, 1]
    listed = [c["command_id"] for p in got for c in p]
    assert sorted(listed) == sorted(c.command_id for c in made) and len(set(listed)) == 7
    created = [c["created_at"] for p in got for c in p]
    assert created == sorted(created, reverse=True)
    one_device = [c["command_id"] for p in pages(client, "/commands", "commands", limit=2, device_id="door_1")
                  for c in p]
    assert sorted(one_device) == sorted(c.command_id for c in made if c.device_id == "door_1")


def test_a_command_created_between_pages_neither_repeats_nor_hides_older_ones(client, r):
    store = CommandStore(r)
    older = [store.register("door", "unlock", "device_cloud", custom_id=f"req_mid_{i}", schedule_expiry=False)[0]
             for i in range(4)]
    first = client.get("/commands", params={"limit": 2}, headers=AUTH).json()
    store.register("door", "unlock", "device_cloud", custom_id="req_mid_new", schedule_expiry=False)
    rest = pages(client, "/commands", "commands", limit=2, cursor=first["next_cursor"])
    seen = [c["command_id"] for c in first["commands"]] + [c["command_id"] for p in rest for c in p]
    assert sorted(seen) == sorted(c.command_id for c in older)  # the new one is on a fresh listing's first page


def test_status_filter_pages_and_a_foreign_cursor_is_422(client, r):
    store = CommandStore(r)
    for i in range(5):
        command, _ = store.register("door", "lock", "device_cloud", custom_id=f"req_st_{i}", schedule_expiry=False)
        if i % 2:
            store.attach_ids(command.command_id, action_id=f"act_{i}")
    pending = [c for p in pages(client, "/commands", "commands", limit=2, status="pending") for c in p]
    assert len(pending) == 5 and {c["status"] for c in pending} == {"pending"}
    bad = client.get("/commands", params={"cursor": "not-a-cursor!"}, headers=AUTH)
    assert bad.status_code == 422
    assert bad.json()["errors"][0]["loc"] == ["query", "cursor"]


@pytest.fixture
def post_event(client, r):
    ensure_group(r, keys.INBOX, keys.INBOX_GROUP)

    def post(event: dict) -> None:
        body = json.dumps({"event_id": str(uuid.uuid4()), **event}).encode()
        answer = client.post("/webhooks/seam", content=body, headers=signed(body, "msg_" + uuid.uuid4().hex))
        assert answer.status_code == 202, answer.text
        drain(r)

    return post


def test_locks_lists_every_known_lock_with_its_state(client, post_event):
    for i in range(5):
        post_event({"event_type": "lock.locked" if i % 2 else "lock.unlocked", "device_id": f"lock_{i}",
                    "occurred_at": f"2026-11-30T10:00:0{i}.000Z", "method": "keycode"})
    post_event({"event_type": "lock.access_denied", "device_id": "lock_denied",
                "occurred_at": "2026-11-30T10:00:09.000Z"})
    got = pages(client, "/locks", "locks", limit=2)
    assert [len(p) for p in got] == [2, 2, 2]
    locks = {lock["device_id"]: lock for p in got for lock in p}
    assert set(locks) == {f"lock_{i}" for i in range(5)} | {"lock_denied"}
    assert [locks[f"lock_{i}"]["locked"] for i in range(5)] == [False, True, False, True, False]
    assert locks["lock_denied"]["locked"] is None  # seen, state unknown
    assert got[0][0]["device_id"] == "lock_denied"  # most recent event first


def test_both_lists_are_in_openapi(client):
    doc = client.get("/openapi.json", headers=AUTH).json()
    commands = doc["paths"]["/commands"]["get"]
    assert "cursor" in {p["name"] for p in commands["parameters"]}
    assert "next_cursor" in doc["components"]["schemas"]["CommandList"]["properties"]
    locks = doc["paths"]["/locks"]["get"]
    assert {p["name"] for p in locks["parameters"]} == {"limit", "cursor"}
    assert locks["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].endswith("/LockList")
