"""`lockhook demo` end to end: every command through POST /commands resolves, the lock watch shows, within a minute."""

from __future__ import annotations

import re
import subprocess
import time

from tests.support.processes import process_env


def test_demo_resolves_every_command(settings, tmp_path):
    env = {k: v for k, v in process_env(settings).items()
           if k not in ("REDIS_URL", "SEAM_WEBHOOK_SECRET", "DEVICE_CLOUD_WEBHOOK_SECRET", "LOCKHOOK_API_TOKEN")}
    started = time.monotonic()
    done = subprocess.run(["lockhook", "demo", "--commands", "8"], env=env, cwd=tmp_path, capture_output=True,
                          text=True, timeout=90)
    elapsed = time.monotonic() - started
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert "time to confirmation" in out and "error code" in out
    rows = [line for line in out.splitlines() if re.search(r"cmd_[0-9a-f]{32}", line)]
    assert len(rows) == 8
    assert all(re.search(r"\b(succeeded|failed|rejected)\b", row) for row in rows), out
    assert sum("DEVICE_OFFLINE" in row for row in rows) == 2  # the offline lock, twice
    assert re.search(r"totals: 8 commands: .*confirmation median \d+ ms", out)
    # the lock watch: an unlock nobody commanded (with its access code), a door left unlocked, an auto-relock
    assert re.search(r"lock.unlocked_without_command .*front_door .*access_code_id ac_guest_1042", out), out
    assert re.search(r"lock.left_unlocked .*back_door .*unlocked for \d+ s", out), out
    assert re.search(r"auto-relock .*back_door .*lock command via device_cloud: (succeeded|failed)", out), out
    assert elapsed < 60
