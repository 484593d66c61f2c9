"""Secrets never leave: all log output of a full run (web, worker, notifier; commands, webhooks good and bad,
notifications delivered and failing, an unreachable device cloud, a refused startup) and every response
are searched for every configured secret."""

from __future__ import annotations

import subprocess

import httpx

from lockhook.notifications.store import NotificationStore
from tests.reliability.helpers import attempt_succeeded, body, lock_event
from tests.support.config import API_TOKEN, DEVICE_CLOUD_SECRET, SECRET, signed
from tests.support.processes import ROOT, process_env
from tests.support.servers import NotifyTarget
from tests.support.waiting import wait_for
from tools.devserver import free_port

NOTIFY_SECRET = "whsec_bm90aWZ5LXNlY3JldC1uZXZlci1sb2dnZWQtOTg3Ng=="
SEAM_API_KEY = "seam_test_k3y_never_logged_5e5e"
DEVICE_CLOUD_API_KEY = "dc_key_never_logged_7c7c"
SLACK_PATH = "/services/T0SECRET/B0SECRET/slackpathsecret42"
QUERY_TOKEN = "qstoken_never_logged_1a1a"
CALLBACK_TOKEN = "cbtoken_never_logged_2b2b"


def secret_forms() -> list[str]:
    """Each secret as configured and in the forms it is used (the base64 key inside a whsec_ value)."""
    values = [SECRET, DEVICE_CLOUD_SECRET, NOTIFY_SECRET, API_TOKEN, SEAM_API_KEY, DEVICE_CLOUD_API_KEY,
              SLACK_PATH, QUERY_TOKEN, CALLBACK_TOKEN]
    return values + [v.removeprefix("whsec_") for v in values if v.startswith("whsec_")]


def assert_clean(text: str, where: str, allowed: tuple[str, ...] = ()) -> None:
    for secret in secret_forms():
        if secret in allowed:
            continue
        assert secret not in text, f"a secret ({secret[:6]}...) appears in {where}"


def notifications_settled(r) -> bool:
    """Every notification record delivered or failed (the failing ones after their last attempt)."""
    found = [NotificationStore(r).get(k.decode().split(":", 2)[2]) for k in r.scan_iter("lh:ntf:msg_*")]
    return bool(found) and all(n and n.status in ("delivered", "failed") for n in found)


def test_no_secret_in_any_log_or_response(start_web, start_worker, r):
    hook = NotifyTarget()
    slack = NotifyTarget(status=500)  # failing: retries and failures are logged too
    callback = NotifyTarget()
    closed = f"http://127.0.0.1:{free_port()}"
    try:
        env = dict(NOTIFY_WEBHOOK_URL=f"{hook.url},{closed}/hook?token={QUERY_TOKEN}",
                   NOTIFY_WEBHOOK_SECRET=NOTIFY_SECRET,
                   SLACK_WEBHOOK_URL=slack.url.replace("/hook", SLACK_PATH), NOTIFY_ALLOWED_HOSTS="127.0.0.1",
                   SEAM_API_KEY=SEAM_API_KEY, DEVICE_CLOUD_URL=closed, DEVICE_CLOUD_API_KEY=DEVICE_CLOUD_API_KEY,
                   NOTIFY_MAX_ATTEMPTS=2)
        base = start_web(**env)
        web = start_web.live
        worker = start_worker(**env)
        auth = {"authorization": f"Bearer {API_TOKEN}"}
        responses = []

        def call(method: str, path: str, **kwargs) -> httpx.Response:
            resp = httpx.request(method, base + path, timeout=30, **kwargs)
            responses.append(f"{resp.status_code} {dict(resp.headers)} {resp.text}")  # not the request we sent
            return resp

        created = call("POST", "/commands", headers=auth, json={
            "device_id": "dev_secret", "action": "unlock", "via": "external", "action_attempt_id": "aa_secret",
            "callback_url": callback.url + f"?token={CALLBACK_TOKEN}"})
        assert created.status_code == 201, created.text
        assert call("POST", "/commands", headers=auth, json={
            "device_id": "dev_secret", "action": "lock", "via": "device_cloud"}).status_code == 502
        call("POST", "/commands", headers={"authorization": "Bearer wrong-" + API_TOKEN}, json={})
        call("GET", "/commands?token=" + API_TOKEN)
        raw = body(attempt_succeeded(0, "dev_secret", action="unlock") | {"action_attempt_id": "aa_secret"})
        assert call("POST", "/webhooks/seam", content=raw, headers=signed(raw, "msg_s1")).status_code == 202
        lock = body(lock_event(5, "dev_secret"))
        call("POST", "/webhooks/device-cloud", content=lock, headers=signed(lock, "msg_s2", DEVICE_CLOUD_SECRET))
        call("POST", "/webhooks/seam", content=lock, headers=signed(lock, "msg_s3", DEVICE_CLOUD_SECRET))  # 401
        call("POST", "/webhooks/seam", content=b"\xff" * 10, headers={"svix-id": "x", "svix-timestamp": "1",
                                                                      "svix-signature": "v1," + SECRET})
        for path in ("/healthz", "/metrics", "/openapi.json", "/dashboard", f"/commands/{created.json()['command_id']}",
                     "/locks/dev_secret"):
            call("GET", path, headers=auth)
        wait_for(lambda: callback.requests and hook.requests and len(slack.requests) >= 2, timeout=30)
        wait_for(lambda: notifications_settled(r), timeout=30)  # retries and failures were logged too
    finally:
        for target in (hook, slack, callback):
            target.close()
    web_log, worker_log = web.output(), worker.output()
    web.stop()  # shutdown messages too
    worker.stop()
    assert "notification" in worker_log and worker_log.count("\n") > 5  # the logs are really there
    assert_clean(web.log_path.read_text(), "the web log")
    assert_clean(worker.log_path.read_text(), "the worker log")
    # the caller's own callback_url is part of the command JSON it may read back (README, API); nothing else
    assert_clean("\n".join(responses), "a response", allowed=(CALLBACK_TOKEN,))
    assert web_log and worker_log


def test_a_refused_startup_does_not_echo_the_bad_secret(settings):
    bad = "whsec_c2VjcmV0LWJ1dC1ub3QtYmFzZTY0a"  # not valid base64: the web must refuse to start
    env = process_env(settings, PORT=free_port(), SEAM_WEBHOOK_SECRET=bad)
    result = subprocess.run(["lockhook", "serve"], env=env, cwd=ROOT, capture_output=True, text=True, timeout=30)
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert "SEAM_WEBHOOK_SECRET" in output or "secret" in output
    assert bad not in output and bad.removeprefix("whsec_") not in output
