"""SSRF through per-command callback URLs: internal addresses are refused at POST /commands (also behind DNS
names that resolve to loopback), the allowlist admits only its hosts, send time re-checks (DNS rebinding),
and redirects are never followed."""

from __future__ import annotations

import socket

import httpx
import pytest
from pydantic import SecretStr

from lockhook import keys
from lockhook.commands.store import CommandStore
from lockhook.errors import CallbackUrlRefused
from lockhook.notifications import callback_policy
from lockhook.notifications.callback_policy import check_callback_url
from lockhook.notifications.store import NotificationStore
from tests.reliability.helpers import attempt_succeeded, body
from tests.support.config import API_TOKEN, signed
from tests.support.servers import NotifyTarget
from tests.support.waiting import wait_for
from tests.workers.notify import deliver
from workers.notifier import create_notifications

AUTH = {"authorization": f"Bearer {API_TOKEN}"}
REFUSED = {"callback_url_refused", "callback_url_unresolvable"}
SECRET = SecretStr("whsec_c3NyZi10ZXN0LXNlY3JldC0xMjM0NTY3OA==")

INTERNAL = [
    "http://127.0.0.1:8000/cb", "http://localhost:8000/cb", "http://LOCALHOST./cb", "http://localhost.localdomain/",
    "http://127.1/cb", "http://2130706433/cb", "http://0x7f000001/cb", "http://017700000001/cb", "http://0/cb",
    "http://0.0.0.0:8000/", "http://[::1]:8000/", "http://[::ffff:127.0.0.1]/", "http://[fe80::1]/",
    "http://169.254.169.254/latest/meta-data/", "http://10.0.0.1/", "http://172.16.0.1/", "http://192.168.0.1/",
    "http://100.64.0.1/", "http://user:pw@127.0.0.1/", "http://hooks.example.com@127.0.0.1/",
    "http://127.0.0.1.nip.io/cb", "file:///etc/passwd", "gopher://127.0.0.1:6379/_INFO", "ftp://127.0.0.1/",
    f"http://{socket.gethostname()}:8000/cb",  # this machine's own name (loopback or a private address)
]


def post_command(base: str, callback_url: str, n: int) -> httpx.Response:
    return httpx.post(base + "/commands", headers=AUTH, timeout=15,
                      json={"device_id": "dev_ssrf", "action": "lock", "via": "external",
                            "action_attempt_id": f"aa_ssrf_{n}", "callback_url": callback_url})


def test_internal_callback_urls_are_refused_over_http(start_web):
    base = start_web()
    for n, url in enumerate(INTERNAL):
        resp = post_command(base, url, n)
        assert resp.status_code == 422, (url, resp.status_code, resp.text)
        assert resp.json()["error"] in REFUSED | {"validation_error"}, (url, resp.text)
    # names that do resolve, to loopback, are refused as such (not merely as unresolvable)
    for n, host in enumerate(["localhost", "127.1", "2130706433", socket.gethostname()]):
        resp = post_command(base, f"http://{host}:8000/cb", 100 + n)
        assert resp.json()["error"] == "callback_url_refused", (host, resp.text)
    assert httpx.get(base + "/commands?device_id=dev_ssrf", headers=AUTH).json()["count"] == 0  # none stored


def test_the_allowlist_admits_only_its_hosts(start_web):
    base = start_web(NOTIFY_ALLOWED_HOSTS="hooks.example.test")
    assert post_command(base, "https://hooks.example.test/cb?t=1", 0).status_code == 201
    for n, url in enumerate(["https://hooks.example.test.evil.test/cb", "https://evil.test/hooks.example.test",
                             "https://hooks.example.test@127.0.0.1/cb", "https://evil.test/?h=hooks.example.test",
                             "http://127.0.0.1/cb", "https://xhooks.example.test/"], start=1):
        resp = post_command(base, url, n)
        assert resp.status_code == 422 and resp.json()["error"] in REFUSED, (url, resp.text)


@pytest.fixture
def fake_dns(monkeypatch):
    """Names resolving the way an attacker's DNS would answer (no internet here)."""
    answers: dict[str, list[str]] = {}
    real = socket.getaddrinfo

    def getaddrinfo(host, port, *args, **kwargs):
        if host in answers:
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, port)) for a in answers[host]]
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return answers


def test_names_resolving_to_loopback_and_dns_rebinding(fake_dns, settings, r):
    fake_dns.update({"127.0.0.1.nip.io": ["127.0.0.1"], "mixed.test": ["93.184.216.34", "10.0.0.7"],
                     "rebind.test": ["93.184.216.34"]})
    for url in ("http://127.0.0.1.nip.io/cb", "http://mixed.test/cb"):
        with pytest.raises(CallbackUrlRefused):
            check_callback_url(url, settings)
    # accepted at POST time (public), then the name is re-pointed at loopback before the send
    url = "http://rebind.test:9/cb"
    assert check_callback_url(url, settings) == url
    CommandStore(r).register("dev_rebind", "lock", "external", status="rejected", error_code="E", callback_url=url)
    s = settings.model_copy(update={"notify_webhook_secret": SECRET})
    [nid] = create_notifications(r, s, r.xrange(keys.OUTBOX))
    fake_dns["rebind.test"] = ["127.0.0.1"]
    result = deliver(NotificationStore(r).get(nid), s)
    assert not result.delivered and not result.retryable and result.error.startswith("callback_url_refused"), result


def test_both_idna_forms_are_checked_as_the_client_connects(settings):
    """`faß.example` is `xn--fa-hia.example` in IDNA 2008 (what the client connects to), `fass.example` in
    IDNA 2003 (what socket.getaddrinfo would look up): whoever owns both must not get a check on one and a
    connection to the other."""
    answers = {"xn--fa-hia.example": ["10.0.0.8"], "fass.example": ["93.184.216.34"]}
    looked_up = []

    def resolve(host, port):
        looked_up.append(host)
        return answers[host]

    for url in ("http://faß.example/cb", "http://FASS.example/cb".replace("SS", "ß"), "http://xn--fa-hia.example/cb",
                "http://ｆａß.example/cb"):
        with pytest.raises(CallbackUrlRefused):
            check_callback_url(url, settings, resolve)
    assert set(looked_up) == {"xn--fa-hia.example"}
    assert check_callback_url("http://fass.example/cb", settings, resolve)  # really another name
    answers.update({"xn--fa-hia.example": ["93.184.216.34"], "fass.example": ["127.0.0.1"]})
    assert check_callback_url("http://faß.example/cb", settings, resolve)


def test_the_sender_connects_only_to_the_address_it_checked(r, settings, monkeypatch):
    """Resolve once per connection, check every address, connect to exactly that answer (Host kept): a name
    answering a checked address first and an internal one next is never connected on the second answer."""
    first, second = NotifyTarget(), NotifyTarget()
    calls: list[tuple[str, int]] = []

    def resolve(host, port):  # 127.0.0.1 plays the public address; 10.0.0.7 the internal one it rebinds to
        calls.append((host, port))
        return ["127.0.0.1"] if len(calls) == 1 else ["10.0.0.7"]

    try:
        s = settings.model_copy(update={"notify_webhook_secret": SECRET})
        ports = [t.server.server_address[1] for t in (first, second)]
        for port in ports:
            CommandStore(r).register("dev_bind", "lock", "external", status="rejected", error_code="E",
                                     callback_url=f"http://faß.example:{port}/hook")
        nids = create_notifications(r, s, r.xrange(keys.OUTBOX))
        by_port = {NotificationStore(r).get(n).label.rsplit(":", 1)[1]: n for n in nids}
        monkeypatch.setattr(callback_policy, "_public", lambda a: a == "127.0.0.1")  # the stand-in public address
        ok = deliver(NotificationStore(r).get(by_port[str(ports[0])]), s, resolve=resolve)
        refused = deliver(NotificationStore(r).get(by_port[str(ports[1])]), s, resolve=resolve)
    finally:
        first.close()
        second.close()
    assert ok.delivered, ok
    [got] = first.requests
    assert got["headers"]["host"] == f"xn--fa-hia.example:{ports[0]}", "the original Host, not the address"
    assert not refused.delivered and not refused.retryable and refused.error.startswith("callback_url_refused")
    assert second.requests == []
    assert calls == [("xn--fa-hia.example", ports[0]), ("xn--fa-hia.example", ports[1])], "one lookup each"


def test_redirects_from_a_callback_are_not_followed(start_web, start_worker, r):
    internal = NotifyTarget()
    bouncer = NotifyTarget(status=302, headers={"location": internal.url})
    try:
        env = dict(NOTIFY_ALLOWED_HOSTS="127.0.0.1", NOTIFY_WEBHOOK_SECRET="whsec_c3NyZi10ZXN0LXNlY3JldC0xMjM0NTY3OA==")
        base = start_web(**env)
        start_worker(**env)
        assert post_command(base, bouncer.url, 0).status_code == 201
        raw = body(attempt_succeeded(0, "dev_ssrf") | {"action_attempt_id": "aa_ssrf_0"})
        assert httpx.post(base + "/webhooks/seam", content=raw, headers=signed(raw, "msg_ssrf")).status_code == 202
        wait_for(lambda: bouncer.requests, timeout=20)
        wait_for(lambda: r.zcard(keys.NOTIFY_FAILED) == 1, timeout=10)  # a 3xx is final
        [failed] = NotificationStore(r).failed()
        assert failed.last_error == "http_302" and failed.attempts == 1
        assert internal.requests == []  # the 302 to another address was not followed
    finally:
        internal.close()
        bouncer.close()
