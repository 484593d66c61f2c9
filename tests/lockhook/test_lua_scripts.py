"""The Lua scripts spell no Redis key and no tunable of their own: both come from lockhook.keys / defaults."""

from __future__ import annotations

import inspect
import json
import re
import time
from importlib.resources import files

import pytest

from lockhook import defaults, keys
from lockhook.commands.store import CommandStore
from lockhook.ingest.inbox import retention_min_id
from lockhook.processing.apply import Rules, apply_entries
from lockhook.processing.lock_watch import LockWatch
from lockhook.scripts import NAMES, Scripts, header, key_parts, source

LUA = {path.name: path.read_text() for path in (files("lockhook") / "lua").iterdir() if path.name.endswith(".lua")}

_COMMENT = re.compile(r"--[^\n]*")
_STRING = re.compile(r"'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"")
_NUMBER = re.compile(r"(?<![\w.])\d+(?:\.\d+)?(?![\w.])")
_CALL = re.compile(r"redis\.call\(\s*'(\w+)'\s*,\s*([^,)]+)")
_ASSIGN = re.compile(r"local\s+(\w+)\s*=\s*([^\n]+)")


def _code(lua: str) -> str:
    return _COMMENT.sub("", lua)


def _key_constants() -> dict[str, str]:
    return {name: value for name, value in vars(keys).items()
            if name.isupper() and isinstance(value, str) and value.startswith(keys.PREFIX) and value != keys.PREFIX}


def _key_functions() -> dict:
    """keys.py functions that spell a key from their arguments (the kind a script can use)."""
    out = {}
    for name, fn in vars(keys).items():
        if inspect.isfunction(fn) and fn.__module__ == keys.__name__:
            try:
                key_parts(fn)
            except (ValueError, TypeError):
                continue
            out[name] = fn
    return out


def _fragments() -> set[str]:
    """The spelled parts of every key in keys.py, without the prefix: a script must not contain any of them."""
    out = {keys.PREFIX} | {value.removeprefix(keys.PREFIX) for value in _key_constants().values()}
    for fn in _key_functions().values():
        pieces = (piece.removeprefix(keys.PREFIX) for piece in key_parts(fn)[0])
        out.update(piece for piece in pieces if piece.strip(":"))
    return out


def key_spellings(lua: str) -> list[str]:
    """String literals that spell a key (or part of one) instead of taking it from `K`."""
    fragments = _fragments()
    found = []
    for literal in _STRING.findall(_code(lua)):
        text = literal[1:-1]
        if re.search(r"\w:", text) or any(f in text if ":" in f else f == text for f in fragments):
            found.append(literal)
    return found


def unnamed_keys(lua: str) -> list[str]:
    """First arguments of `redis.call` (the key) that come neither from `K` nor from locals set from `K`."""
    code = _code(lua)
    assigned: dict[str, list[str]] = {}
    for name, value in _ASSIGN.findall(code):
        assigned.setdefault(name, []).append(value)
    bad = []
    for command, first in _CALL.findall(code):
        first = first.strip()
        if first.startswith("K."):
            continue
        values = assigned.get(first, [])
        if values and all("K." in v for v in values):  # (literals in them are checked by key_spellings)
            continue
        bad.append(f"{command} {first}")
    return bad


def tunable_numbers(lua: str) -> list[str]:
    """Number literals other than 0 and 1, outside table indices and argument positions (`ARGV[..]`)."""
    code = _STRING.sub("''", _code(lua))
    code = re.sub(r"ARGV\[[^\]]*\]|unpack\(ARGV,[^)]*\)|\[\s*\d+\s*\]", "", code)
    return [n for n in _NUMBER.findall(code) if n not in ("0", "1")]


@pytest.mark.parametrize("name", sorted(LUA))
def test_a_script_spells_no_key_and_holds_no_tunable(name):
    lua = LUA[name]
    assert key_spellings(lua) == []
    assert unnamed_keys(lua) == []
    assert tunable_numbers(lua) == []


def test_the_checks_catch_a_spelled_key_and_a_bare_number():
    assert key_spellings("redis.call('LPUSH', P .. 'events:recent', line)") == ["'events:recent'"]
    assert key_spellings("redis.call('SET', P .. 'processed:' .. ev.key, '1')") == ["'processed:'"]
    assert key_spellings("local t = key .. ':timeline'") == ["':timeline'"]
    assert key_spellings("redis.call('ZADD', K.DEVICES, NOW, device)") == []
    assert unnamed_keys("local key = 'x' .. cid\nredis.call('DEL', key)") == ["DEL key"]
    assert unnamed_keys("local key = K.command(cid)\nredis.call('DEL', key)") == []
    assert tunable_numbers("redis.call('LTRIM', K.RECENT_EVENTS, 0, 999)") == ["999"]
    assert tunable_numbers("local lo, hi = at - tonumber(ARGV[6]), at + 30000") == ["30000"]
    assert tunable_numbers("local v = cur[2] .. ARGV[6 + i * 5]\nlocal a, b = unpack(ARGV, 5 + i * 5, 9 + i * 5)\n"
                           "redis.call('LTRIM', k, 0, D.CAP - 1)") == []


def test_every_name_a_script_uses_is_in_keys_and_defaults():
    for name in NAMES:
        source(name)  # raises on a K.x / D.x that keys.py / defaults.py do not define
    with pytest.raises(LookupError):
        header("redis.call('GET', K.NO_SUCH_KEY)")
    with pytest.raises(LookupError):
        header("local n = D.NO_SUCH_TUNABLE")


def test_the_generated_lua_spells_keys_and_tunables_exactly_as_python(r):
    functions = _key_functions()
    constants = sorted(_key_constants())
    tunables = ["RECENT_CAP", "CORRELATION_WINDOW_MS", "PROCESSED_TTL_S", "DRAIN_FLAG_TTL_S"]
    calls = {name: [f"v{i}_{name}" for i in range(len(key_parts(fn)[1]))] for name, fn in functions.items()}
    body = "return cjson.encode({" + ", ".join(
        [f"{n} = K.{n}" for n in constants]
        + [f"{n} = K.{n}({', '.join(repr(a) for a in args)})" for n, args in calls.items()]
        + [f"{n} = D.{n}" for n in tunables] + ["LATENCY_BUCKETS_MS = D.LATENCY_BUCKETS_MS"]) + "})"
    got = json.loads(r.eval(header(body) + body, 0))
    expected = {n: getattr(keys, n) for n in constants} | {n: functions[n](*args) for n, args in calls.items()}
    expected |= {n: getattr(defaults, n) for n in tunables}
    expected["LATENCY_BUCKETS_MS"] = list(defaults.LATENCY_BUCKETS_MS)
    assert got == expected


def _patterns() -> dict[str, re.Pattern]:
    """keys.py as regular expressions, one per constant and per function (arguments: anything)."""
    out = {name: re.compile(re.escape(value) + "$") for name, value in _key_constants().items()}
    for name, fn in _key_functions().items():
        out[name] = re.compile(".+".join(re.escape(piece) for piece in key_parts(fn)[0]) + "$")
    return out


def _body(event: dict) -> bytes:
    return json.dumps(event).encode()


def _iso(ms: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms / 1000)) + f".{ms % 1000:03d}Z"


def test_every_key_the_scripts_write_is_named_in_keys_py(r):
    """Run every script path that writes, then find each key Redis holds in keys.py."""
    scripts, store, now = Scripts(r), CommandStore(r), int(time.time() * 1000)
    ingest_args = [3600, retention_min_id(now, 3600), 3,
                   "seam", "msg_a", "event", "{}", _body({"event_type": "lock.locked"}),
                   "seam", "msg_a", "event", "{}", _body({"event_type": "lock.locked"}),
                   "seam", "msg_q", "quarantine", "{}", b"not json"]
    assert scripts.ingest(args=Scripts.args(now, *ingest_args)) == [1, 0, 1, 1]
    assert scripts.auth_attempt(args=Scripts.args(now, "192.0.2.1", 0)) == [1, 1]  # a wrong token, counted

    by_custom, _ = store.register("dev_k", "unlock", "device_cloud", custom_id="req_k", idempotency_key="idem_k",
                                  schedule_expiry=False)
    store.register("dev_k", "lock", "seam", status="rejected", error_code="x", schedule_expiry=False)
    by_window, _ = store.register("dev_k", "lock", "external", schedule_expiry=False)
    late, _ = store.register("dev_k", "lock", "seam", timeout_s=0, schedule_expiry=False)
    attached, _ = store.register("dev_k2", "lock", "seam", schedule_expiry=False)
    store.register("dev_k3", "unlock", "seam", schedule_expiry=False)  # stays pending
    discarded, _ = store.register("dev_k", "unlock", "seam", custom_id="req_gone", schedule_expiry=False)
    assert store.expire(late.command_id) == "command.timed_out"
    store.discard(discarded.command_id)
    events = [
        {"event_type": "lock.action_completed", "device_id": "dev_k", "custom_id": "req_k", "action": "unlock",
         "status": "success", "timestamp": _iso(now)},
        {"event_id": "evt_window", "event_type": "lock.locked", "device_id": "dev_k", "occurred_at": _iso(now + 1),
         "method": "remote"},
        {"event_id": "evt_stale", "event_type": "lock.unlocked", "device_id": "dev_k", "occurred_at": _iso(now - 1),
         "method": "keypad"},
        {"event_id": "evt_parked", "event_type": "action_attempt.lock_door.succeeded", "device_id": "dev_k",
         "action_attempt_id": "aa_never"},
        {"event_id": "evt_attach", "event_type": "action_attempt.lock_door.succeeded", "device_id": "dev_k",
         "action_attempt_id": "aa_attach"},
        *({"event_id": f"evt_denied_{i}", "event_type": "lock.access_denied", "device_id": "dev_k",
           "access_code_id": "ac_k"} for i in range(3)),
        {"event_id": "evt_keypad", "event_type": "lock.unlocked", "device_id": "dev_k4", "occurred_at": _iso(now),
         "method": "keycode", "access_code_id": "ac_1"},  # unexplained, watched: event record, watch checks
    ]

    def sender(event: dict) -> str:  # each sender confirms only what was issued through it
        return "device-cloud" if event["event_type"] == "lock.action_completed" else "seam"

    entries = [(f"{now}-{i}".encode(), {"endpoint": sender(e), "delivery_id": f"msg_{i}", "body": _body(e),
                                         "received_at": str(now)}) for i, e in enumerate(events)]
    watched = Rules(watch=LockWatch(left_unlocked_ms=0, auto_relock_ms=60_000))
    assert len(apply_entries(r, entries, watched)) == len(events)
    assert store.attach_ids(attached.command_id, action_attempt_id="aa_attach").status == "succeeded"
    assert store.get(by_custom.command_id).status == "succeeded"
    assert store.get(by_window.command_id).status == "succeeded"

    patterns = _patterns()
    named: dict[str, str] = {}
    for raw in r.scan_iter(count=1000):
        key = raw.decode()
        if key.startswith("rq:"):  # RQ's own (the watch check's scheduled job)
            continue
        matches = [n for n, p in patterns.items() if p.match(key)]
        assert matches, f"{key} is written by a script but not named in lockhook.keys"
        named[key] = max(matches, key=lambda n: len(patterns[n].pattern))  # lh:cmd:x:timeline is a timeline
    used = set(re.findall(r"\bK\.(\w+)", "".join(LUA.values()))) - {"command_channel"}  # pub/sub, not a key
    assert used - set(named.values()) == set(), "the scenario should write every key the scripts name"
