"""`lockhook replay --endpoint`: bare event bodies (files, folders, JSONL, events.list output) signed from the env."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lockhook import keys
from lockhook.ingest.fixtures import read_fixtures
from tests.support.config import DEVICE_CLOUD_SECRET, SECRET
from tests.tools.cli import assert_one_clear_line, lockhook
from tools.replay import load

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "deliveries"


def bodies(endpoint: str) -> list[dict]:
    """The recorded bodies of one endpoint, as Seam's docs or a support ticket show them."""
    return [json.loads(fx["body"]) for _, fx in read_fixtures(FIXTURES) if fx["endpoint"] == endpoint]


def summary(output: str) -> dict[str, int]:
    counts = {}
    for line in output.splitlines():
        cells = [c.strip() for c in line.replace("┃", "│").split("│") if c.strip()]
        if len(cells) == 2 and cells[1].isdigit():
            counts[cells[0]] = int(cells[1])
    return counts


def distinct(events: list[dict]) -> int:
    return len({json.dumps(e, sort_keys=True) for e in events})


def test_a_folder_of_bare_seam_bodies_is_delivered_and_stored(start_web, r, tmp_path):
    base = start_web()
    folder = tmp_path / "ticket"
    folder.mkdir()
    events = bodies("seam")
    for number, event in enumerate(events):
        (folder / f"{number:02d}.json").write_text(json.dumps(event, indent=2))
    done = lockhook("replay", str(folder), "--endpoint", "seam", "--url", base, cwd=tmp_path,
                    SEAM_WEBHOOK_SECRET=SECRET)
    assert done.returncode == 0, done.stdout + done.stderr
    unique = distinct(events)
    assert summary(done.stdout) == {"accepted": unique, "duplicate": len(events) - unique, "quarantined": 0,
                                    "rejected": 0, "total": len(events)}
    assert r.xlen(keys.INBOX) == unique
    again = lockhook("replay", str(folder), "--endpoint", "seam", "--url", base, cwd=tmp_path,
                     SEAM_WEBHOOK_SECRET=SECRET)
    assert summary(again.stdout)["duplicate"] == len(events)  # ids come from the content: a replay is a retry
    fresh = lockhook("replay", str(folder), "--endpoint", "seam", "--url", base, "--new-ids", cwd=tmp_path,
                     SEAM_WEBHOOK_SECRET=SECRET)
    assert summary(fresh.stdout)["accepted"] == unique  # new ids, one per distinct body
    assert r.xlen(keys.INBOX) == 2 * unique


def test_events_list_output_and_jsonl_and_device_cloud_bodies(start_web, tmp_path):
    base = start_web()
    listed = tmp_path / "events.json"
    listed.write_text(json.dumps({"events": bodies("seam")[:4], "ok": True}))
    done = lockhook("replay", str(listed), "--endpoint", "seam", "--url", base, cwd=tmp_path,
                    SEAM_WEBHOOK_SECRET=SECRET)
    assert done.returncode == 0, done.stdout + done.stderr
    assert summary(done.stdout)["total"] == 4 and summary(done.stdout)["rejected"] == 0

    cloud = tmp_path / "cloud.jsonl"
    cloud.write_text("".join(json.dumps(e) + "\n" for e in bodies("device-cloud")))
    done = lockhook("replay", str(cloud), "--endpoint", "device-cloud", "--url", base, cwd=tmp_path,
                    SEAM_WEBHOOK_SECRET=SECRET, DEVICE_CLOUD_WEBHOOK_SECRET=DEVICE_CLOUD_SECRET)
    assert done.returncode == 0, done.stdout + done.stderr
    assert summary(done.stdout)["accepted"] == len(bodies("device-cloud"))


def test_recorded_deliveries_and_bare_bodies_mix(tmp_path):
    bare = tmp_path / "bare.json"
    bare.write_text(json.dumps(bodies("seam")[0]))
    items = load([str(FIXTURES / "14_action_completed_success.json"), str(bare)], endpoint="seam")
    assert [fx["endpoint"] for _, fx in items] == ["device-cloud", "seam"]  # a recording keeps its endpoint
    assert items[1][1]["headers"]["svix-id"].startswith("msg_")


@pytest.mark.parametrize(("content", "args", "said"), [
    ('{"event_type": "lock.locked"}', [], "a bare event body; say where it goes with --endpoint seam"),
    ('{"hello": 1}', ["--endpoint", "seam"], "neither an event body"),
    ("{not json", ["--endpoint", "seam"], "not JSON"),
    ('{"event_type": "lock.locked"}', ["--endpoint", "elsewhere"], "--endpoint 'elsewhere': use seam or device-cloud"),
])
def test_unusable_input_is_refused_clearly(tmp_path, content, args, said):
    path = tmp_path / "in.json"
    path.write_text(content)
    done = lockhook("replay", str(path), *args, "--url", "http://127.0.0.1:9", cwd=tmp_path, SEAM_WEBHOOK_SECRET=SECRET)
    assert said in assert_one_clear_line(done)
