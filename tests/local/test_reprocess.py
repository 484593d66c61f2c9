"""Reprocess: stored deliveries re-run past the dedupe, without double notifications."""

from __future__ import annotations

import json
import time

import pytest
from typer.testing import CliRunner

from lockhook import keys
from lockhook.commands.store import CommandStore
from lockhook.errors import ConfigError
from lockhook.processing.apply import apply_entries
from lockhook.settings import get_settings
from tests.support.config import DEVICE_CLOUD_SECRET, signed
from tools.cli import app
from tools.reprocess import parse_since, reprocess


def _deliver(client, endpoint: str, event: dict, delivery_id: str) -> None:
    body = json.dumps(event).encode()
    secret = DEVICE_CLOUD_SECRET if endpoint == "device-cloud" else None
    headers = signed(body, delivery_id, secret) if secret else signed(body, delivery_id)
    assert client.post(f"/webhooks/{endpoint}", content=body, headers=headers).status_code == 202


def _drain(r) -> None:
    """What the drain job does with new entries (without dispatching the outbox, so we can count it)."""
    apply_entries(r, r.xrange(keys.INBOX))


def _outcomes(r) -> list[tuple[str, str]]:
    return [(f[b"type"].decode(), (f.get(b"command_id") or f.get(b"device_id") or b"").decode())
            for _, f in r.xrange(keys.OUTBOX)]


def _completed(custom_id: str, device: str, status: str = "success") -> dict:
    return {"event_type": "lock.action_completed", "device_id": device, "action_id": "act_" + custom_id,
            "custom_id": custom_id, "action": "unlock", "status": status, "performed_via": "pin_code",
            "timestamp": "2026-01-01T10:00:00Z"}


def test_resolved_commands_are_not_notified_again(r, client):
    store = CommandStore(r)
    command, _ = store.register("lock_a", "unlock", "device_cloud", custom_id="req_a", schedule_expiry=False)
    _deliver(client, "device-cloud", _completed("req_a", "lock_a"), "msg_a")
    _deliver(client, "seam", {"event_id": "ev_b", "event_type": "lock.locked", "device_id": "lock_b",
                              "occurred_at": "2026-01-01T10:00:00Z"}, "msg_b")
    _drain(r)
    resolved = store.get(command.command_id)
    assert resolved.status == "succeeded"
    before = _outcomes(r)
    assert sorted(before) == sorted([("command.succeeded", command.command_id), ("lock.state_changed", "lock_a"),
                                     ("lock.state_changed", "lock_b")])

    report = reprocess(r, since_ms=0)
    assert (report.read, report.applied, report.skipped) == (2, 2, 0)
    assert _outcomes(r) == before, "no second command or lock notification"
    again = store.get(command.command_id)
    assert (again.status, again.resolved_at, again.resolved_by) == ("succeeded", resolved.resolved_at,
                                                                     resolved.resolved_by)

    # past the dedupe for real: state lost to a bug is rebuilt from the stored deliveries
    r.delete(keys.lock_state("lock_b"))
    assert reprocess(r, since_ms=0).applied == 2
    assert r.hget(keys.lock_state("lock_b"), "locked") == b"1"


def test_reprocess_resolves_a_command_a_bug_had_missed_exactly_once(r, client):
    _deliver(client, "device-cloud", _completed("req_m", "lock_m", "failed") | {"error_code": "LOCK_JAMMED"},
             "msg_m")
    _drain(r)  # no command yet: the event is parked under its ids
    for key in r.scan_iter(keys.PREFIX + "parked:*"):
        r.delete(key)  # ... and the parking was lost (the "bug")
    store = CommandStore(r)
    command, _ = store.register("lock_m", "unlock", "device_cloud", custom_id="req_m", schedule_expiry=False)
    assert store.get(command.command_id).status == "pending"

    assert reprocess(r, since_ms=0).applied == 1
    fixed = store.get(command.command_id)
    assert (fixed.status, fixed.error_code) == ("failed", "LOCK_JAMMED")
    assert reprocess(r, since_ms=0).applied == 1
    assert _outcomes(r).count(("command.failed", command.command_id)) == 1


def test_since_bounds_the_entries(r, client):
    _deliver(client, "seam", {"event_id": "ev_old", "event_type": "device.connected", "device_id": "d"}, "msg_o")
    _drain(r)
    future = int(time.time() * 1000) + 60_000
    assert reprocess(r, since_ms=future).read == 0
    assert reprocess(r, since_ms=0, endpoint="device-cloud").applied == 0
    assert reprocess(r, since_ms=0, endpoint="seam").applied == 1


def test_cli_reprocess(r, client, redis_url, monkeypatch):
    _deliver(client, "seam", {"event_id": "ev_cli", "event_type": "lock.unlocked", "device_id": "d"}, "msg_cli")
    _drain(r)
    monkeypatch.setenv("REDIS_URL", redis_url)
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(app, ["reprocess", "--since", "10m"])
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 0, result.output
    assert "reprocessed 1 deliveries" in result.output
    bad = CliRunner().invoke(app, ["reprocess", "--since", "yesterday-ish"])
    assert bad.exit_code == 2


def test_parse_since():
    now = 1_800_000_000_000
    assert parse_since("15m", now) == now - 15 * 60_000
    assert parse_since("2h", now) == now - 7_200_000
    assert parse_since("1d", now) == now - 86_400_000
    assert parse_since("1700000000", now) == 1_700_000_000_000
    assert parse_since("1700000000123", now) == 1_700_000_000_123
    assert parse_since("1700000000123-4", now) == 1_700_000_000_123
    assert parse_since("2026-01-01T00:00:00Z", now) == 1_767_225_600_000
    with pytest.raises(ConfigError):
        parse_since("soon", now)
