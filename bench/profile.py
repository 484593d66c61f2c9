"""Profiles of running bench processes with py-spy (sampling, non-blocking), summarised as top frames."""

from __future__ import annotations

import shutil
import subprocess
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from bench.common import work_dir


@dataclass
class Spy:
    proc: subprocess.Popen
    out: Path


def start(pid: int, seconds: float, name: str, delay_s: float = 0) -> Spy | None:
    """Sample `pid` and its children for `seconds`, after `delay_s` (None when py-spy is missing)."""
    exe = shutil.which("py-spy")
    if exe is None:
        return None
    out = work_dir() / f"profile-{name}.txt"
    out.unlink(missing_ok=True)
    argv = [exe, "record", "-p", str(pid), "-d", str(max(1, int(seconds))), "-f", "raw", "-o", str(out),
            "--nonblocking", "--subprocesses", "-r", "200"]
    # bash waits, then becomes py-spy: a delayed start without a thread here
    proc = subprocess.Popen(["bash", "-c", f"sleep {float(delay_s)}; exec \"$@\"", "py-spy", *argv],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return Spy(proc, out)


def _frame(frame: str) -> str:
    """`fn (path/to/file.py:12)` -> `fn (file.py)` with the package folder kept for our code."""
    name, _, where = frame.partition(" (")
    path = where.rstrip(")").rsplit(":", 1)[0]
    parts = Path(path).parts
    short = "/".join(parts[-2:]) if len(parts) >= 2 else path
    return f"{name} ({short})"


def summarise(raw: str, top: int = 16) -> list[tuple[str, float]]:
    """Inclusive share of samples per frame (each frame counted once per stack), busiest first."""
    inclusive: Counter = Counter()
    total = 0
    for line in raw.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        frames = stack.split(";")
        if frames and frames[0].startswith("process "):
            frames = frames[1:]
        if frames and frames[0].startswith("thread "):
            frames = frames[1:]
        total += n
        for f in {_frame(f) for f in frames if not _spine(f)}:
            inclusive[f] += n
    if not total:
        return []
    return [(f, c / total) for f, c in inclusive.most_common(top)]


# frames every sample passes through (process start, event loop, ASGI middleware, RQ's loop): not informative
_SPINE_FILES = ("click/", "uvicorn/main.py", "uvicorn/server.py", "uvicorn/_compat.py", "asyncio/", "runpy.py",
                "starlette/applications.py", "starlette/middleware/", "starlette/routing.py",
                "starlette/_exception_handler.py", "uvicorn/middleware/", "uvicorn/protocols/", "multiprocessing/",
                "rq/worker/", "rq/cli/", "typer/", "_click/", "threading.py", "concurrent/futures/", "anyio/")
_SPINE_NAMES = ("<module>", "main (", "_worker (", "work (", "_worker.<locals>.work (", "_run_code (",
                "_run_module_as_main (", "serve (", "run (", "process ", "worker (")


# the Redis client's internals: keep only the command methods and pipeline calls that lead into them
_CLIENT_FILES = ("redis/client.py", "redis/connection.py", "redis/retry.py", "_parsers/", "redis/utils.py")
_CLIENT_KEEP = ("Pipeline.execute (", "Pipeline.watch (", "Pipeline.execute_command (")


def _spine(frame: str) -> bool:
    where = frame.rpartition(" (")[2]
    if frame.startswith(_SPINE_NAMES) or frame.startswith("process ") or "genexpr" in frame:
        return True
    if any(where.startswith(p) or ("/" + p) in ("/" + where) for p in _CLIENT_FILES):
        return not frame.startswith(_CLIENT_KEEP)
    return any(where.startswith(p) or ("/" + p) in ("/" + where) for p in _SPINE_FILES)


def finish(spy: Spy, timeout: float = 60) -> list[tuple[str, float]]:
    try:
        spy.proc.wait(timeout)
    except subprocess.TimeoutExpired:
        spy.proc.terminate()
        spy.proc.wait()
    if not spy.out.exists():
        return []
    return summarise(spy.out.read_text(errors="replace"))


def markdown(title: str, rows: list[tuple[str, float]]) -> str:
    if not rows:
        return ""
    lines = [f"**{title}** (py-spy, share of samples that include the frame)", ""]
    lines += [f"- {share * 100:4.0f}%  `{frame}`" for frame, share in rows]
    return "\n".join(lines) + "\n"
