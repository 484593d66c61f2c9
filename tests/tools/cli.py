"""Run the installed `lockhook` console script as a user would, in a folder of the test's own."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

CLEARED = ("LOCKHOOK_", "SEAM_", "DEVICE_CLOUD_", "REDIS_", "NOTIFY_", "SLACK_", "LOG_FORMAT", "PORT")


def lockhook(*args: str, cwd: Path, timeout: float = 60, **env) -> subprocess.CompletedProcess:
    """`lockhook ARGS` with only the given settings in the environment (none inherited from the shell)."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(CLEARED)}
    clean.update({k: str(v) for k, v in env.items()})
    return subprocess.run(["lockhook", *args], env=clean, cwd=cwd, capture_output=True, text=True, timeout=timeout)


def assert_one_clear_line(done: subprocess.CompletedProcess) -> str:
    """A failed command explains itself in one stderr line, not a traceback or a bare exception name."""
    assert done.returncode != 0, done.stdout
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert lines and all(line.startswith("lockhook: ") for line in lines), done.stderr
    assert "Traceback" not in done.stderr + done.stdout
    return lines[-1]
