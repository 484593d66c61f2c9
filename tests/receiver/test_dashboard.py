"""The dashboard over HTTP and in a real headless Chromium (Playwright): login, live resolution, re-send."""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import threading
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from lockhook.commands.store import CommandStore
from receiver.dashboard import COOKIE
from tests.support.config import API_TOKEN, DEVICE_CLOUD_SECRET, SECRET, signed
from tests.support.processes import ROOT
from tests.support.waiting import wait_for
from workers.drain import drain

AUTH = {"authorization": f"Bearer {API_TOKEN}"}
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
NOTIFY_SECRET = "whsec_" + base64.b64encode(b"lockhook-dashboard-notify-secret").decode()


def post(client, endpoint: str, body: dict | bytes, delivery_id: str | None = None):
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    secret = SECRET if endpoint == "seam" else DEVICE_CLOUD_SECRET
    return client.post(f"/webhooks/{endpoint}", content=raw,
                       headers=signed(raw, delivery_id or "msg_" + uuid.uuid4().hex, secret=secret))


def login(client) -> None:
    response = client.post("/dashboard/login", content=f"token={API_TOKEN}", follow_redirects=False,
                           headers={"content-type": "application/x-www-form-urlencoded"})
    assert response.status_code == 303
    client.cookies.set(COOKIE, response.cookies[COOKIE])


# -- over HTTP --------------------------------------------------------------------------------------------


def test_login_form_cookie_and_token(client, make_app):
    from starlette.testclient import TestClient

    form = client.get("/dashboard")
    assert form.status_code == 200 and 'action="/dashboard/login"' in form.text and "Pending" not in form.text
    style = client.get("/dashboard/static/dashboard.css")  # the sign-in form is styled too
    assert style.status_code == 200 and style.headers["content-type"].startswith("text/css")
    for path in ("/dashboard/events", "/dashboard/static/dashboard.js", "/dashboard/commands/cmd_x"):
        assert client.get(path).status_code == 401
    wrong = client.post("/dashboard/login", content="token=nope",
                        headers={"content-type": "application/x-www-form-urlencoded"})
    assert wrong.status_code == 401 and "not the API token" in wrong.text

    response = client.post("/dashboard/login", content=f"token={API_TOKEN}", follow_redirects=False,
                           headers={"content-type": "application/x-www-form-urlencoded"})
    assert response.status_code == 303 and response.headers["location"] == "/dashboard"
    cookie = response.headers["set-cookie"]
    assert "HttpOnly" in cookie and "samesite=strict" in cookie.lower() and "Path=/dashboard" in cookie
    assert API_TOKEN not in cookie  # the cookie holds a derived value, not the API token
    behind_tls = client.post("/dashboard/login", content=f"token={API_TOKEN}", follow_redirects=False,
                             headers={"content-type": "application/x-www-form-urlencoded",
                                      "x-forwarded-proto": "https"})
    assert "Secure" in behind_tls.headers["set-cookie"] and "Secure" not in cookie
    client.cookies.set(COOKIE, response.cookies[COOKIE])
    page = client.get("/dashboard")
    assert page.status_code == 200 and "Pending" in page.text
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert "style-src 'self'" in page.headers["content-security-policy"]
    assert "unsafe-inline" not in page.headers["content-security-policy"]  # no inline style or script at all
    client.cookies.clear()
    assert "Pending" in client.get("/dashboard", headers=AUTH).text  # a bearer token works too
    client.cookies.set(COOKIE, "0" * 64)
    assert "Pending" not in client.get("/dashboard").text

    with TestClient(make_app(redis_url="redis://127.0.0.1:1/0")) as down:
        response = down.get("/dashboard", headers=AUTH)
        assert response.status_code == 503 and response.json()["error"] == "storage_unavailable"
    with TestClient(make_app(lockhook_api_token=None)) as disabled:
        assert disabled.get("/dashboard").status_code == 503
        assert disabled.get("/dashboard/events", headers=AUTH).json()["error"] == "api_disabled"


def test_pages_show_commands_locks_and_escaped_deliveries(client, r):
    login(client)
    store = CommandStore(r)
    done, _ = store.register("front-door", "unlock", "external", action_attempt_id="aa-1", schedule_expiry=False)
    waiting, _ = store.register("back-door", "lock", "device_cloud", custom_id="cu-2", schedule_expiry=False)
    post(client, "seam", {"event_type": "action_attempt.unlock_door.succeeded", "event_id": "ev-1",
                          "action_attempt_id": "aa-1", "device_id": "front-door"}, "msg_1")
    post(client, "seam", {"event_type": "lock.unlocked", "event_id": "ev-2", "device_id": "front-door",
                          "method": "keycode"}, "msg_2")
    post(client, "seam", {"event_type": "lock.unlocked", "event_id": "ev-2", "device_id": "front-door"}, "msg_2")
    post(client, "device-cloud", b"<script>alert('x')</script>", "msg_evil")
    drain(r)

    page = client.get("/dashboard").text
    assert f'data-command="{waiting.command_id}" data-status="pending"' in page
    assert f'data-command="{done.command_id}" data-status="succeeded"' in page
    assert page.index(waiting.command_id) < page.index(done.command_id)  # pending first
    assert "keycode" in page and "b-unlocked" in page  # the lock's state and how it changed
    assert "msg_2" in page.split("Duplicates")[1]  # the duplicate delivery is listed
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in page and "<script>alert" not in page

    def commands_section(params: dict) -> str:
        text = client.get("/dashboard", params=params).text
        return text.split('<section id="commands">')[1].split("</section>")[0]

    only_back = commands_section({"device": "back-door"})
    assert waiting.command_id in only_back and done.command_id not in only_back
    succeeded = commands_section({"status": "succeeded"})
    assert done.command_id in succeeded and waiting.command_id not in succeeded
    assert client.get("/dashboard", params={"status": "<bogus>"}).status_code == 200

    detail = client.get(f"/dashboard/commands/{done.command_id}").text
    for kind in ("registered", "event", "resolved"):
        assert f'class="k-{kind}"' in detail
    assert client.get("/dashboard/commands/cmd_missing").status_code == 404


def test_resend_refuses_cross_site_and_unknown(client):
    login(client)
    cross = client.post("/dashboard/notifications/n1/retry", headers={"origin": "https://evil.example"})
    assert cross.status_code == 403 and cross.json()["error"] == "cross_origin_refused"
    assert client.post("/dashboard/notifications/n1/retry").status_code == 404


# -- in a real browser ------------------------------------------------------------------------------------


class Target:
    """A local notification receiver that fails (400) until told to accept."""

    def __init__(self):
        self.requests: list[dict] = []
        self.failing = True
        target = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                status = 400 if target.failing else 200
                target.requests.append({"id": self.headers.get("webhook-id"), "body": json.loads(body),
                                        "status": status})
                self.send_response(status)
                self.send_header("content-length", "0")
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def target():
    t = Target()
    yield t
    t.close()


@pytest.fixture
def browser():
    """Headless Chromium; list it after start_web so it closes first (its live streams end before web stops)."""
    from playwright.sync_api import sync_playwright

    assert shutil.which(CHROMIUM), "chromium missing: run scripts/test-deps.sh (make test installs it)"
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


def shot(page, name: str) -> Path:
    path = ARTIFACTS / name
    page.screenshot(path=str(path), full_page=True)
    return path


def test_browser_login_live_resolution_and_resend(start_web, start_worker, target, browser):
    env = {"NOTIFY_WEBHOOK_URL": target.url, "NOTIFY_WEBHOOK_SECRET": NOTIFY_SECRET}
    base = start_web(**env)
    start_worker(**env)
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    dialogs = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    refused = []  # anything the Content-Security-Policy blocked
    page.on("console", lambda m: refused.append(m.text) if "Content Security Policy" in m.text else None)

    page.goto(base + "/dashboard")
    page.fill("#token", "not-the-token")
    page.click("button[type=submit]")
    assert "not the API token" in page.inner_text("[role=alert]")
    page.fill("#token", API_TOKEN)
    page.click("button[type=submit]")
    page.wait_for_selector("#commands h2")
    cookie = next(c for c in context.cookies() if c["name"] == COOKIE)
    assert cookie["httpOnly"] and cookie["value"] != API_TOKEN
    page.wait_for_selector("#live.on")
    page.evaluate("window.__sameDocument = true")
    assert page.evaluate("getComputedStyle(document.querySelector('header')).display") == "flex"  # styled

    with httpx.Client(base_url=base, timeout=10) as http:
        command = http.post("/commands", headers=AUTH, json={
            "device_id": "front-door", "action": "unlock", "via": "external", "action_attempt_id": "aa-live",
            "metadata": {"who": "<b>guest</b>"}}).json()
        row = f'tr[data-command="{command["command_id"]}"]'
        page.wait_for_selector(row + '[data-status="pending"]', timeout=15_000)
        shot(page, "dashboard-1-pending.png")

        quarantined = b"<img src=x onerror=alert(1)>"
        http.post("/webhooks/seam", content=quarantined, headers=signed(quarantined, "msg_quarantine"))
        for delivery_id, event in (
            ("msg_unlock", {"event_type": "action_attempt.unlock_door.succeeded", "event_id": "ev-aa",
                            "action_attempt_id": "aa-live", "device_id": "front-door"}),
            ("msg_lock_state", {"event_type": "lock.unlocked", "event_id": "ev-state", "device_id": "front-door",
                                "action_attempt_id": "aa-live", "method": "seamapi"}),
        ):
            body = json.dumps(event).encode()
            assert http.post("/webhooks/seam", content=body, headers=signed(body, delivery_id)).status_code == 202

        page.wait_for_selector(row + '[data-status="succeeded"]', timeout=15_000)
        assert page.evaluate("window.__sameDocument") is True  # updated live, without a reload
        page.wait_for_selector('#locks .b-unlocked', timeout=15_000)
        assert "ms" in page.inner_text(row) or " s" in page.inner_text(row)  # time to confirmation
        shot(page, "dashboard-2-resolved.png")

        # the notification target answered 400: the command's notification is listed as failed, live
        failed_row = 'tr[data-notification]:has-text("command.succeeded")'
        page.wait_for_selector(failed_row, timeout=20_000)
        page.click('#deliveries details summary')
        shot(page, "dashboard-3-failed-notification.png")
        failed_id = wait_for(lambda: next((x["id"] for x in target.requests
                                           if x["body"]["type"] == "command.succeeded"), None))
        target.failing = False
        with page.expect_response(lambda resp: resp.url.endswith("/retry")) as resent:
            page.click(failed_row + " button")
        assert resent.value.status == 202 and resent.value.json()["resent"] is True
        wait_for(lambda: [x for x in target.requests if x["id"] == failed_id and x["status"] == 200], timeout=20)
        page.wait_for_selector(failed_row, state="detached", timeout=15_000)  # no longer failed, live
        shot(page, "dashboard-4-resent.png")
        assert len([x for x in target.requests if x["id"] == failed_id]) == 2  # same webhook-id, sent again

        # /metrics agrees: two notifications failed (command + lock state), one re-sent and delivered
        metrics = {f.name: {tuple(sorted(x.labels.items())): x.value for x in f.samples}
                   for f in text_string_to_metric_families(http.get("/metrics", headers=AUTH).text)}
        assert metrics["lockhook_notifications"][(("outcome", "delivered"),)] == 1
        assert metrics["lockhook_notifications"][(("outcome", "failed"),)] == 2
        assert metrics["lockhook_notifications_failed"][()] == 1
        assert sum(metrics["lockhook_notification_attempts"].values()) == 3
        assert metrics["lockhook_commands"][(("outcome", "succeeded"),)] == 1

    page.click(f'{row} a[href^="/dashboard/commands/"]')
    page.wait_for_selector("#command ol.timeline li.k-resolved")
    page.wait_for_selector("#command ol.timeline li.k-notification", timeout=15_000)
    timeline = page.inner_text("#command")
    assert "action_attempt.unlock_door.succeeded" in timeline and "aa-live" in timeline
    shot(page, "dashboard-5-command-timeline.png")
    assert dialogs == []  # nothing from the deliveries ran as script
    assert refused == []

    phone = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True, device_scale_factor=2)
    phone.add_cookies([cookie])
    mobile = phone.new_page()
    mobile.goto(base + "/dashboard")
    mobile.wait_for_selector("#commands h2")
    assert mobile.evaluate("document.documentElement.scrollWidth") <= 392  # no sideways scrolling of the page
    shot(mobile, "dashboard-6-phone.png")
    phone.close()
    context.close()


def test_demo_run_on_the_dashboard_matches_metrics(start_web, start_worker, settings, tmp_path, browser):
    """A demo-style run (simulator, commands through the API) shows live and agrees with /metrics."""
    from tests.support.processes import PYTHON, process_env
    from tools.demo import issue_and_wait, plan
    from tools.devserver import free_port

    sim_port = free_port()
    sim_url = f"http://127.0.0.1:{sim_port}"
    base = start_web(DEVICE_CLOUD_URL=sim_url)
    start_worker(DEVICE_CLOUD_URL=sim_url)
    with open(tmp_path / "simulator.log", "w") as log:
        simulator = subprocess.Popen(
            [PYTHON, "-m", "tools.cli", "simulate", "--port", str(sim_port), "--receiver-url", base,
             "--secret", DEVICE_CLOUD_SECRET, "--delay", "0.2", "--delay-max", "1.0", "--failure-rate", "0.3",
             "--offline", "garage", "--duplicate-rate", "0.3", "--seed", "7"],
            env=process_env(settings), cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        try:
            wait_for(lambda: _answers(sim_url + "/healthz"), timeout=20)
            page.goto(base + "/dashboard")
            page.fill("#token", API_TOKEN)
            page.click("button[type=submit]")
            page.wait_for_selector("#live.on")
            page.evaluate("window.__sameDocument = true")
            with ThreadPoolExecutor(max_workers=8) as pool:
                results = list(pool.map(lambda p: issue_and_wait(base, API_TOKEN, *p), plan(16)))
            statuses = Counter(c["status"] for c in results)
            assert sum(statuses.values()) == 16 and not statuses.get("pending"), statuses

            def cards() -> dict[str, int]:
                return {el.get_attribute("data-count"): int(el.text_content())
                        for el in page.query_selector_all("#summary .card b")}

            wait_for(lambda: all(cards().get(s) == statuses.get(s, 0) for s in ("succeeded", "failed", "rejected")),
                     timeout=10)
            assert page.evaluate("window.__sameDocument") is True  # all of it arrived live
            rows = {el.get_attribute("data-command"): el.get_attribute("data-status")
                    for el in page.query_selector_all("#commands tr[data-command]")}
            assert rows == {c["command_id"]: c["status"] for c in results}
            assert page.query_selector_all("#locks tbody tr"), "lock states are shown"
            shot(page, "dashboard-7-demo.png")

            text = httpx.get(base + "/metrics", headers=AUTH, timeout=10).text
            m = {f.name: f.samples for f in text_string_to_metric_families(text)}
            commands = {s.labels["outcome"]: s.value for s in m["lockhook_commands"]}
            assert commands == {k: float(v) for k, v in statuses.items()}
            board = cards()
            deliveries = {s.labels["outcome"]: s.value for s in m["lockhook_deliveries"]
                          if s.labels["scope"] == "cluster" and s.labels["endpoint"] == "device-cloud"}
            wait_for(lambda: cards().get("duplicates") == deliveries.get("duplicate", 0), timeout=5)
            assert board["accepted"] == deliveries["accepted"] == statuses["succeeded"] + statuses["failed"]
            events = sum(s.value for s in m["lockhook_events"])
            assert board["events"] == events == deliveries["accepted"]
            confirmed = [s.value for s in m["lockhook_confirmation_latency_seconds"]
                         if s.name.endswith("_count") and s.labels["via"] == "device_cloud"]
            assert confirmed == [statuses["succeeded"] + statuses["failed"]]
        finally:
            page.close()  # ends its live stream, so the web process stops at once
            simulator.terminate()
            simulator.wait(10)


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.HTTPError:
        return False
