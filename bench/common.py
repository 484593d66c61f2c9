"""Shared bench plumbing: our own Redis, started processes, signed deliveries, RSS sampling, result rows."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import json
import math
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import redis
from honcho.environ import parse_procfile

from tools.devserver import redis_server_binary

ROOT = Path(__file__).resolve().parent.parent
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"  # a bench-only secret, never a real one
BODY_BYTES = 800
PORT_RANGE = range(int(os.environ.get("BENCH_PORT_MIN", 8800)), int(os.environ.get("BENCH_PORT_MAX", 8849)) + 1)
WORK = ROOT / ".lockhook" / "bench"
PY = sys.executable


def work_dir() -> Path:
    WORK.mkdir(parents=True, exist_ok=True)
    return WORK


_taken: set[int] = set()


def free_port() -> int:
    """A free TCP port in the bench's range (BENCH_PORT_MIN..BENCH_PORT_MAX)."""
    for port in PORT_RANGE:
        if port in _taken:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        _taken.add(port)
        return port
    raise RuntimeError(f"no free port in {PORT_RANGE.start}-{PORT_RANGE.stop - 1}")


def release_port(port: int) -> None:
    _taken.discard(port)


# -- processes -------------------------------------------------------------------------------------

class Proc:
    """A process (and its children) we started, in its own session so it is stopped as a group."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str] | None = None,
                 stdin=subprocess.DEVNULL, stdout=None):
        self.name = name
        self.log_path = work_dir() / f"{name}.log"
        self._log = open(self.log_path, "w")  # noqa: SIM115  (closed in stop())
        self.proc = subprocess.Popen(argv, env=env or os.environ.copy(), cwd=ROOT, stdin=stdin,
                                     stdout=stdout if stdout is not None else self._log,
                                     stderr=self._log, start_new_session=True)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def rss_bytes(self) -> int:
        """Resident memory of the process and all its children."""
        try:
            root = psutil.Process(self.proc.pid)
            procs = [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            return 0
        total = 0
        for p in procs:
            with contextlib.suppress(psutil.NoSuchProcess):
                total += p.memory_info().rss
        return total

    def cpu_seconds(self) -> float:
        """User + system CPU used so far by the process and its children that are alive."""
        try:
            root = psutil.Process(self.proc.pid)
            procs = [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            return 0.0
        total = 0.0
        for p in procs:
            with contextlib.suppress(psutil.NoSuchProcess):
                t = p.cpu_times()
                total += t.user + t.system
        return total

    def stop(self, timeout: float = 10) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self._log.close()

    def output(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")


def wait_port(port: int, proc: Proc | None = None, timeout: float = 20) -> None:
    """Until something accepts connections on the port (or the process died)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.proc.poll() is not None:
            raise RuntimeError(f"{proc.name} exited early:\n{proc.output()[-2000:]}")
        with socket.socket() as s, contextlib.suppress(OSError):
            s.settimeout(0.2)
            s.connect(("127.0.0.1", port))
            return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port} after {timeout} s")




class BenchRedis:
    """A redis-server of our own (no persistence) on a port in the bench range; flushed freely."""

    def __init__(self):
        self.port = free_port()
        self.proc = Proc("redis", [redis_server_binary(), "--port", str(self.port), "--bind", "127.0.0.1",
                                   "--save", "", "--appendonly", "no", "--daemonize", "no"])
        wait_port(self.port, self.proc)
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.client = redis.Redis(port=self.port)
        self.client.ping()

    def flush(self) -> None:
        self.client.flushall()

    def used_memory(self) -> int:
        return int(self.client.info("memory")["used_memory"])

    def version(self) -> str:
        return self.client.info("server")["redis_version"]

    def stop(self) -> None:
        self.client.close()
        self.proc.stop()
        release_port(self.port)


def lockhook_env(redis_url: str, **extra) -> dict[str, str]:
    """Environment of a lockhook process: only the variables the README documents, plus JSON logs."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LOCKHOOK_", "SEAM_", "DEVICE_CLOUD_", "NOTIFY_"))}
    env.update(REDIS_URL=redis_url, SEAM_WEBHOOK_SECRET=SECRET, LOG_FORMAT="json", PYTHONUNBUFFERED="1",
               PATH=f"{Path(PY).parent}:{env.get('PATH', '')}")
    env.update({k: str(v) for k, v in extra.items()})
    return env


def procfile_command(name: str) -> str:
    """A process line of the Procfile, parsed by honcho (what `make run` uses)."""
    return parse_procfile((ROOT / "Procfile").read_text()).processes[name]


def start_procfile(name: str, env: dict[str, str], label: str, extra_args: str = "") -> Proc:
    """A Procfile line as it runs in production (PORT etc. from env), plus optional extra arguments."""
    return Proc(label, ["bash", "-c", f"exec {procfile_command(name)} {extra_args}".strip()], env=env)


class RssSampler:
    """Samples the RSS of some processes every 100 ms in a thread; keeps the peak."""

    def __init__(self, procs: list[Proc]):
        self.procs = procs
        self.peak = {p.name: 0 for p in procs}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            for p in self.procs:
                self.peak[p.name] = max(self.peak[p.name], p.rss_bytes())
            self._stop.wait(0.1)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


# -- signed deliveries -----------------------------------------------------------------------------

def _key(secret: str) -> bytes:
    return base64.b64decode(secret.removeprefix("whsec_"))


def signature(key: bytes, delivery_id: str, timestamp: int, body: bytes) -> str:
    """Svix's v1 signature (HMAC-SHA256 over id.timestamp.body); checked against lockhook's once per run."""
    mac = hmac.new(key, f"{delivery_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode()


def iso_now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())


def seam_event(event_id: str, device_id: str, action_attempt_id: str, size: int = BODY_BYTES,
               event_type: str = "action_attempt.lock_door.succeeded") -> bytes:
    """A Seam event confirming a lock command (`action_attempt.lock_door.succeeded` unless told, or e.g.
    `lock.locked`, which also changes the lock's state) padded to exactly `size` bytes."""
    now = iso_now()
    raw = json.dumps({
        "event_id": event_id, "event_type": event_type, "workspace_id": "ws_bench",
        "device_id": device_id, "connected_account_id": "ca_bench", "action_attempt_id": action_attempt_id,
        "action_type": "LOCK_DOOR", "status": "success", "created_at": now, "occurred_at": now,
    }, separators=(",", ":"))
    pad = size - len(raw) - len(',"note":""')
    return (raw[:-1] + ',"note":"' + "x" * max(pad, 0) + '"}').encode()


@dataclass
class Signed:
    delivery_id: str
    timestamp: int
    signature: str
    body: bytes

    def headers(self) -> dict[str, str]:
        return {"svix-id": self.delivery_id, "svix-timestamp": str(self.timestamp),
                "svix-signature": self.signature, "content-type": "application/json"}

    def http(self, host: str, path: str) -> bytes:
        """The raw HTTP/1.1 request (keep-alive), for the open-loop generator."""
        head = (f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
                f"svix-id: {self.delivery_id}\r\nsvix-timestamp: {self.timestamp}\r\n"
                f"svix-signature: {self.signature}\r\nContent-Length: {len(self.body)}\r\n\r\n")
        return head.encode() + self.body


def signed_deliveries(run: str, count: int, device_count: int = 500, start: int = 0,
                      event_type: str = "action_attempt.lock_door.succeeded") -> list[Signed]:
    """`count` unique signed deliveries; delivery i confirms the command with action_attempt_id aa_<run>_<i>."""
    key = _key(SECRET)
    ts = int(time.time())
    out = []
    for i in range(start, start + count):
        delivery_id = f"msg_{run}_{i}"
        body = seam_event(f"evt_{run}_{i}", f"dev_{i % device_count}", f"aa_{run}_{i}", event_type=event_type)
        out.append(Signed(delivery_id, ts, signature(key, delivery_id, ts, body), body))
    if out:
        _check_against_lockhook(out[0])
    return out


def _check_against_lockhook(s: Signed) -> None:
    from lockhook.ingest.signatures import verify

    if verify([SECRET], s.headers(), s.body) != s.delivery_id:
        raise AssertionError("bench signatures do not verify with lockhook.ingest.signatures")


# -- commands --------------------------------------------------------------------------------------

def register_pending(client: redis.Redis, run: str, count: int, start: int = 0, device_count: int = 500,
                     timeout_s: int = 3600, batch: int = 1000) -> None:
    """Register pending Seam commands through lockhook's `register` script, pipelined.

    Same fields as CommandStore.register builds (that method is sequential: one script call, one read and
    one RQ enqueue each, too slow to load 100,000 commands in a bench); no expiry jobs are scheduled.
    """
    from lockhook.scripts import Scripts

    scripts = Scripts(client)
    now = int(time.time() * 1000)
    for lo in range(start, start + count, batch):
        pipe = client.pipeline(transaction=False)
        for i in range(lo, min(lo + batch, start + count)):
            body = json.dumps({
                "command_id": f"cmd_{run}_{i}", "device_id": f"dev_{i % device_count}", "action": "lock",
                "via": "seam", "status": "pending", "action_attempt_id": f"aa_{run}_{i}",
                "created_at": str(now), "deadline_at": str(now + timeout_s * 1000), "late": "0",
            })
            scripts.register(args=Scripts.args(now, body, ""), client=pipe)
        pipe.execute()


def stored_headers(s: Signed, host: str = "127.0.0.1") -> dict[str, str]:
    """The headers a web process stores with a delivery (what Starlette hands the receiver)."""
    return {"host": host, "user-agent": "Svix-Webhooks/1.0", "content-length": str(len(s.body)),
            "content-type": "application/json", "svix-id": s.delivery_id, "svix-timestamp": str(s.timestamp),
            "svix-signature": s.signature}


def ingest_directly(client: redis.Redis, deliveries: list[Signed], batch: int = 256) -> None:
    """Put deliveries into the inbox with lockhook's own `ingest` script (the same call the web makes)."""
    from lockhook.ingest.inbox import retention_min_id
    from lockhook.scripts import Scripts
    from lockhook.settings import Settings

    scripts = Scripts(client)
    ttl = Settings.model_fields["dedupe_ttl_seconds"].default
    for lo in range(0, len(deliveries), batch):
        part = deliveries[lo:lo + batch]
        now = int(time.time() * 1000)
        argv = [ttl, retention_min_id(now, ttl), len(part)]
        for s in part:
            argv += ["seam", s.delivery_id, "event", json.dumps(stored_headers(s), separators=(",", ":")), s.body]
        scripts.ingest(args=Scripts.args(now, *argv))


def count_status(client: redis.Redis, status: str) -> int:
    from lockhook import keys

    return int(client.hget(keys.COMMAND_STATS, status) or 0)


# -- results ---------------------------------------------------------------------------------------

@dataclass
class Section:
    """One table: a title, its columns, rows of already formatted cells, and notes printed below."""

    title: str
    columns: list[str]
    rows: list[list[str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(self, *cells) -> None:
        self.rows.append([str(c) for c in cells])

    def markdown(self) -> str:
        lines = [f"### {self.title}", "", "| " + " | ".join(self.columns) + " |",
                 "|" + "|".join("---" for _ in self.columns) + "|"]
        lines += ["| " + " | ".join(row) + " |" for row in self.rows]
        if self.notes:
            lines += [""] + [f"- {n}" for n in self.notes]
        return "\n".join(lines) + "\n"


def ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1000:.1f} ms"


def ratio(a: float, b: float) -> str:
    return "-" if not b else f"{a / b:.2f}x"


def mib(n: int) -> str:
    return f"{n / 2**20:.0f} MiB"


def percentile(values: list[float], p: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)  # nearest rank
    return ordered[min(len(ordered) - 1, max(0, math.ceil(p / 100 * len(ordered)) - 1))]


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)
