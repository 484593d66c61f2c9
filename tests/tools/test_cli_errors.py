"""CLI errors say what happened and what to do, in one line; `sign` and `replay` take their secrets from the env."""

from __future__ import annotations

import json

from lockhook.ingest.signatures import verify
from tests.support.config import DEVICE_CLOUD_SECRET, SECRET
from tests.tools.cli import assert_one_clear_line, lockhook
from tools.devserver import free_port

EVENT = {"event_id": "evt_cli_1", "event_type": "lock.locked", "device_id": "d1"}


def body_file(tmp_path):
    path = tmp_path / "event.json"
    path.write_text(json.dumps(EVENT))
    return path


def test_an_unreachable_receiver_says_to_start_lockhook(tmp_path):
    port = free_port()  # nothing listens there
    done = lockhook("replay", str(body_file(tmp_path)), "--endpoint", "seam", "--url", f"http://127.0.0.1:{port}",
                    cwd=tmp_path, SEAM_WEBHOOK_SECRET=SECRET)
    line = assert_one_clear_line(done)
    assert line == (f"lockhook: cannot reach http://127.0.0.1:{port}: is lockhook running? "
                    "try `make run` (or pass --url)")
    assert "ConnectError" not in done.stdout and "replaying" not in done.stdout  # no progress, no table of errors


def test_a_url_without_scheme_is_taken_as_http_and_said(start_web, tmp_path):
    base = start_web()
    bare = base.removeprefix("http://")
    done = lockhook("replay", str(body_file(tmp_path)), "--endpoint", "seam", "--url", bare, cwd=tmp_path,
                    SEAM_WEBHOOK_SECRET=SECRET)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"--url {bare} has no scheme: using {base}" in done.stderr


def test_other_schemes_and_missing_files_are_refused(tmp_path):
    done = lockhook("replay", str(body_file(tmp_path)), "--endpoint", "seam", "--url", "ftp://127.0.0.1:21",
                    cwd=tmp_path, SEAM_WEBHOOK_SECRET=SECRET)
    assert "only http:// and https:// URLs are supported" in assert_one_clear_line(done)
    done = lockhook("replay", str(tmp_path / "missing.json"), cwd=tmp_path, SEAM_WEBHOOK_SECRET=SECRET)
    assert assert_one_clear_line(done) == f"lockhook: no such file or folder: {tmp_path / 'missing.json'}"
    done = lockhook("sign", str(tmp_path / "missing.json"), cwd=tmp_path, SEAM_WEBHOOK_SECRET=SECRET)
    assert "no such file" in assert_one_clear_line(done)


def headers_of(output: str) -> dict[str, str]:
    return dict(line.split("'")[1].split(": ", 1) for line in output.strip().splitlines())


def test_sign_reads_the_endpoint_secret_from_the_environment(tmp_path):
    path = body_file(tmp_path)
    seam = lockhook("sign", str(path), cwd=tmp_path, SEAM_WEBHOOK_SECRET=SECRET,
                    DEVICE_CLOUD_WEBHOOK_SECRET=DEVICE_CLOUD_SECRET)
    assert seam.returncode == 0, seam.stderr
    assert verify([SECRET], headers_of(seam.stdout), path.read_bytes())
    cloud = lockhook("sign", str(path), "--endpoint", "device-cloud", cwd=tmp_path, SEAM_WEBHOOK_SECRET=SECRET,
                     DEVICE_CLOUD_WEBHOOK_SECRET=DEVICE_CLOUD_SECRET)
    assert verify([DEVICE_CLOUD_SECRET], headers_of(cloud.stdout), path.read_bytes())
    assert SECRET not in seam.stdout + seam.stderr and DEVICE_CLOUD_SECRET not in cloud.stdout + cloud.stderr


def test_no_secret_anywhere_says_which_variable(tmp_path):
    done = lockhook("sign", str(body_file(tmp_path)), "--endpoint", "device-cloud", cwd=tmp_path)
    assert "set DEVICE_CLOUD_WEBHOOK_SECRET" in assert_one_clear_line(done)
    done = lockhook("replay", str(body_file(tmp_path)), "--endpoint", "seam", cwd=tmp_path)
    assert "set SEAM_WEBHOOK_SECRET" in assert_one_clear_line(done)
    done = lockhook("sign", str(body_file(tmp_path)), "--secret", "not base64 !!", cwd=tmp_path)
    assert "not a whsec_" in assert_one_clear_line(done)


def test_make_run_secrets_are_used_when_the_environment_has_none(start_web, tmp_path):
    """In another terminal next to `make run`: its generated secret (.lockhook/dev.env) signs the deliveries."""
    base = start_web()
    (tmp_path / ".lockhook").mkdir()
    (tmp_path / ".lockhook" / "dev.env").write_text(f"SEAM_WEBHOOK_SECRET={SECRET}\n")
    done = lockhook("replay", str(body_file(tmp_path)), "--endpoint", "seam", "--url", base, cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "the secret `make run` generated" in done.stderr


def test_bad_settings_and_an_unreachable_redis(tmp_path):
    done = lockhook("notifications", "failed", cwd=tmp_path, REDIS_TLS_VERIFY="maybe")
    line = assert_one_clear_line(done)
    assert "invalid setting REDIS_TLS_VERIFY" in line and "maybe" not in line  # the value is not echoed
    port = free_port()
    done = lockhook("notifications", "failed", cwd=tmp_path, REDIS_URL=f"redis://:hunter2@127.0.0.1:{port}/0")
    line = assert_one_clear_line(done)
    assert f"cannot reach Redis at redis://127.0.0.1:{port}" in line and "hunter2" not in done.stderr
