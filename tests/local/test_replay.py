"""Replay, record and sign: the recorded fixture set replays accepted/duplicate over real HTTP."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from starlette.testclient import TestClient
from typer.testing import CliRunner

from lockhook.ingest.fixtures import read_fixtures
from lockhook.ingest.signatures import verify
from tests.support.config import DEVICE_CLOUD_SECRET, SECRET, signed
from tools.cli import app
from tools.replay import load, replay

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "deliveries"
runner = CliRunner()


class PacedClock:
    """Stands in for `time` in tools.replay: monotonic time moves only when replay sleeps; posts are timed."""

    def __init__(self, client):
        self.now = 0.0
        self.sent_at: list[float] = []
        self.client = client

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        assert seconds >= 0
        self.now += seconds

    def post(self, *args, **kwargs):
        self.sent_at.append(self.now)
        return self.client.post(*args, **kwargs)

    def __getattr__(self, name):  # time.time() and the rest stay real
        return getattr(time, name)


def _summary(output: str) -> dict[str, int]:
    counts = {}
    for line in output.splitlines():
        cells = [c.strip() for c in line.replace("┃", "│").split("│") if c.strip()]
        if len(cells) == 2 and cells[1].isdigit():
            counts[cells[0]] = int(cells[1])
    return counts


def test_fixture_set_covers_what_processing_handles():
    items = list(read_fixtures(FIXTURES))
    events = [(source, fx, json.loads(fx["body"])) for source, fx in items]
    types = {e["event_type"] for _, _, e in events}
    assert {"lock.locked", "lock.unlocked", "lock.access_denied", "lock.action_completed",
            "action_attempt.lock_door.succeeded", "action_attempt.lock_door.failed",
            "action_attempt.unlock_door.succeeded", "action_attempt.unlock_door.failed"} <= types
    assert types - {"lock.locked", "lock.unlocked", "lock.access_denied", "lock.action_completed"} - {
        t for t in types if t.startswith("action_attempt.")}, "an unknown event type is included"
    assert any(e["event_type"] == "lock.unlocked" and "device_id" not in e for _, _, e in events)
    completed = [e for _, _, e in events if e["event_type"] == "lock.action_completed"]
    assert {e["status"] for e in completed} == {"success", "failed"}
    assert any(e.get("error_code") == "LOCK_JAMMED" for e in completed)
    ids = [fx["headers"].get("svix-id") or fx["headers"].get("webhook-id") for _, fx, _ in events]
    assert len(ids) - len(set(ids)) == 1, "exactly one duplicated delivery"
    # an out-of-order pair: a lock event delivered after a newer one for the same device
    lock_events = [e for _, _, e in events if e["event_type"] in ("lock.locked", "lock.unlocked") and "device_id" in e]
    assert any(later["device_id"] == earlier["device_id"] and later["occurred_at"] < earlier["occurred_at"]
               for i, earlier in enumerate(lock_events) for later in lock_events[i + 1:])
    assert {fx["endpoint"] for _, fx, _ in events} == {"seam", "device-cloud"}


def test_replay_fixture_set_over_http(start_web):
    base = start_web()
    args = ["replay", str(FIXTURES), "--url", base, "--secret", SECRET, "--device-cloud-secret", DEVICE_CLOUD_SECRET]
    first = runner.invoke(app, args)
    assert first.exit_code == 0, first.output
    total = len(list(read_fixtures(FIXTURES)))
    assert _summary(first.output) == {"accepted": total - 1, "duplicate": 1, "quarantined": 0, "rejected": 0,
                                      "total": total}
    again = runner.invoke(app, args)  # same ids: every delivery is now a duplicate
    assert again.exit_code == 0, again.output
    assert _summary(again.output)["duplicate"] == total
    fresh = runner.invoke(app, [*args, "--new-ids"])  # new ids, but the recorded duplicate stays one
    assert fresh.exit_code == 0, fresh.output
    assert _summary(fresh.output)["accepted"] == total - 1 and _summary(fresh.output)["duplicate"] == 1


def test_replay_exits_non_zero_with_reasons_when_rejected(start_web):
    base = start_web()
    result = runner.invoke(app, ["replay", str(FIXTURES / "01_lock_locked.json"), "--url", base,
                                 "--secret", DEVICE_CLOUD_SECRET])  # the wrong secret for /webhooks/seam
    assert result.exit_code == 1
    assert _summary(result.output)["rejected"] == 1
    assert "invalid_signature" in result.output
    assert SECRET not in result.output and DEVICE_CLOUD_SECRET not in result.output


def test_replay_rate_and_jsonl(client, tmp_path, monkeypatch):
    fixtures = [fx for _, fx in read_fixtures(FIXTURES)][:5]
    jsonl = tmp_path / "five.jsonl"
    jsonl.write_text("\n".join(json.dumps(fx) for fx in fixtures) + "\n")
    items = load([str(jsonl)])
    assert [source.rsplit(":", 1)[1] for source, _ in items] == ["1", "2", "3", "4", "5"]
    clock = PacedClock(client)
    monkeypatch.setattr("tools.replay.time", clock)
    report = replay(items, "http://testserver", {"seam": SECRET, "device-cloud": DEVICE_CLOUD_SECRET},
                    rate=25, client=clock)
    assert clock.sent_at == pytest.approx([0, 0.04, 0.08, 0.12, 0.16])  # one every 1/25 s, from the first
    assert [r.outcome for r in report.results].count("rejected") == 0
    assert report.counts["duplicate"] == 1


def test_record_dir_writes_replayable_fixtures(make_app, tmp_path):
    record = tmp_path / "recorded"
    body = json.dumps({"event_id": "e-rec-1", "event_type": "lock.locked", "device_id": "d1"}).encode()
    with TestClient(make_app(record_dir=str(record))) as http:
        assert http.post("/webhooks/seam", content=body, headers=signed(body, "msg_rec_1")).status_code == 202
        files = sorted(record.glob("*.json"))
        assert [f.name for f in files] == ["seam_msg_rec_1.json"]
        assert not list(record.glob(".rec-*")), "no temp file left behind"
        (source, fixture), = read_fixtures(record)
        assert fixture["endpoint"] == "seam" and fixture["body"] == body.decode()
        assert fixture["headers"]["svix-id"] == "msg_rec_1"
        assert "authorization" not in fixture["headers"]
    # the recording replays into a fresh receiver (and is a duplicate there once stored)
    with TestClient(make_app()) as http:
        report = replay(load([str(record)]), "http://testserver", {"seam": SECRET, "device-cloud": SECRET},
                        client=http)
        assert [r.outcome for r in report.results] == ["duplicate"]  # same Redis, same id


def test_sign_prints_curl_ready_headers_that_verify(tmp_path):
    body = b'{"event_type":"lock.locked","device_id":"d1"}'
    raw = tmp_path / "body.json"
    raw.write_bytes(body)
    result = runner.invoke(app, ["sign", "--secret", SECRET, "--id", "msg_sign_1", str(raw)])
    assert result.exit_code == 0, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 3 and all(line.startswith("-H '") for line in lines)
    headers = dict(line.split("'")[1].split(": ", 1) for line in lines)
    assert set(headers) == {"svix-id", "svix-timestamp", "svix-signature"}
    assert verify([SECRET], headers, body) == "msg_sign_1"

    fixture = FIXTURES / "14_action_completed_success.json"
    recorded = json.loads(fixture.read_text())
    result = runner.invoke(app, ["sign", "--secret", SECRET, str(fixture)])
    headers = dict(line.split("'")[1].split(": ", 1) for line in result.output.strip().splitlines())
    assert verify([SECRET], headers, recorded["body"].encode()) == recorded["headers"]["webhook-id"]
    assert SECRET not in result.output


def test_replay_cli_process_with_one_secret_uses_the_env_device_cloud_secret(settings, start_web):
    """As typed in a shell: `--secret` only; device-cloud deliveries are signed with its configured secret."""
    import subprocess

    from tests.support.processes import process_env

    base = start_web()
    done = subprocess.run(["lockhook", "replay", str(FIXTURES), "--url", base, "--secret", SECRET, "--rate", "100"],
                          env=process_env(settings), capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    total = len(list(read_fixtures(FIXTURES)))
    assert _summary(done.stdout) == {"accepted": total - 1, "duplicate": 1, "quarantined": 0, "rejected": 0,
                                     "total": total}
