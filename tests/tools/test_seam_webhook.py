"""`lockhook seam webhook`: creates, lists and deletes the Seam webhook on the Seam fake through the official SDK."""

from __future__ import annotations

import pytest

from tests.support.config import SEAM_API_KEY
from tests.support.servers import closed_port_url
from tests.tools.cli import assert_one_clear_line, lockhook


@pytest.fixture
def seam_env(fake_seam):
    return {"SEAM_API_KEY": SEAM_API_KEY, "SEAM_ENDPOINT": fake_seam.url}


def listed(fake_seam) -> dict[str, dict]:
    return {w["webhook_id"]: w for w in fake_seam.call("/webhooks/list")["webhooks"]}


def test_create_prints_the_secret_then_list_and_delete(fake_seam, seam_env, tmp_path):
    created = lockhook("seam", "webhook", "--url", "https://lockhook.example.com/webhooks/seam",
                       "--events", "lock.locked,lock.unlocked", cwd=tmp_path, **seam_env)
    assert created.returncode == 0, created.stderr
    (line,) = created.stdout.splitlines()  # stdout is only the line to paste (or append to an env file)
    name, _, secret = line.partition("=")
    assert name == "SEAM_WEBHOOK_SECRET" and secret
    (webhook_id,) = [w for w, hook in listed(fake_seam).items() if hook["secret"] == secret]
    hook = listed(fake_seam)[webhook_id]
    assert hook["url"] == "https://lockhook.example.com/webhooks/seam"
    assert hook["event_types"] == ["lock.locked", "lock.unlocked"]
    assert webhook_id in created.stderr

    shown = lockhook("seam", "webhook", "--list", cwd=tmp_path, **seam_env)
    assert shown.returncode == 0, shown.stderr
    row = next(r for r in shown.stdout.splitlines() if r.startswith(webhook_id))
    assert "https://lockhook.example.com/webhooks/seam" in row and "lock.locked,lock.unlocked" in row
    assert secret not in shown.stdout + shown.stderr  # listing never shows secrets

    deleted = lockhook("seam", "webhook", "--delete", webhook_id, cwd=tmp_path, **seam_env)
    assert deleted.returncode == 0, deleted.stderr
    assert webhook_id not in listed(fake_seam)


def test_a_base_url_gets_the_webhook_path_and_all_events(fake_seam, seam_env, tmp_path):
    created = lockhook("seam", "webhook", "--url", "https://hooks.example.org", cwd=tmp_path, **seam_env)
    assert created.returncode == 0, created.stderr
    assert "using https://hooks.example.org/webhooks/seam" in created.stderr
    secret = created.stdout.strip().partition("=")[2]
    (hook,) = [h for h in listed(fake_seam).values() if h["secret"] == secret]
    assert hook["url"] == "https://hooks.example.org/webhooks/seam"
    assert "all events" in created.stderr
    lockhook("seam", "webhook", "--delete", hook["webhook_id"], cwd=tmp_path, **seam_env)


@pytest.mark.parametrize(("args", "env", "said"), [
    (["--url", "https://x.example/webhooks/seam"], {}, "SEAM_API_KEY is not set"),
    (["--delete", "webhook_that_is_not_there"], None, "webhook_not_found"),
    (["--url", "lockhook.example.com/webhooks/seam"], None, "is not an absolute URL"),
    (["--url", "https://x.example/webhooks/seam", "--events", "lock.nothing_like_this"], None, "invalid_event_types"),
    (["--list", "--delete", "x"], None, "give one of --url URL (create), --list or --delete ID"),
])
def test_failures_say_what_happened(fake_seam, seam_env, tmp_path, args, env, said):
    done = lockhook("seam", "webhook", *args, cwd=tmp_path, **(seam_env if env is None else env))
    assert said in assert_one_clear_line(done)


def test_an_unreachable_seam_is_explained(tmp_path):
    where = closed_port_url()
    done = lockhook("seam", "webhook", "--list", cwd=tmp_path, SEAM_API_KEY=SEAM_API_KEY, SEAM_ENDPOINT=where)
    assert f"cannot reach Seam at {where}" in assert_one_clear_line(done)
    assert SEAM_API_KEY not in done.stderr
