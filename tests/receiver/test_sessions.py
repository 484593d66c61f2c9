"""Dashboard sessions, auth throttling, the same-origin rule and the login body's limits, over real HTTP
against the Procfile's web process."""

from __future__ import annotations

import hashlib
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlsplit

import httpx

from lockhook import defaults, keys
from receiver.dashboard import COOKIE
from tests.support.config import API_TOKEN
from tools.devserver import free_port

FORM = {"content-type": "application/x-www-form-urlencoded"}
AUTH = {"authorization": f"Bearer {API_TOKEN}"}
SIGNED_IN_ONLY = "/dashboard/commands/cmd_missing"  # 404 with a session, 401 without


def sign_in(base: str, token: str = API_TOKEN, **headers) -> httpx.Response:
    return httpx.post(base + "/dashboard/login", content=f"token={token}", headers={**FORM, **headers},
                      follow_redirects=False)


def with_cookie(base: str, cookie: str, path: str = SIGNED_IN_ONLY, method: str = "GET", **headers):
    return httpx.request(method, base + path, headers={"cookie": f"{COOKIE}={cookie}", **headers},
                         follow_redirects=False)


def from_address(address: str) -> dict[str, str]:
    """uvicorn takes the client address from X-Forwarded-For when the peer is trusted (127.0.0.1 by default)."""
    return {"x-forwarded-for": address}


def test_each_sign_in_is_a_new_session_that_logout_ends(start_web, r):
    base = start_web()
    first, second = sign_in(base), sign_in(base)
    assert first.status_code == second.status_code == 303
    one, two = first.cookies[COOKIE], second.cookies[COOKIE]
    assert one != two and API_TOKEN not in one + two  # a random id per sign-in, never the token
    for header in (first.headers["set-cookie"], second.headers["set-cookie"]):
        assert "HttpOnly" in header and "samesite=strict" in header.lower() and "Path=/dashboard" in header
    assert "Secure" in sign_in(base, **{"x-forwarded-proto": "https"}).headers["set-cookie"]

    stored = r.get(keys.dashboard_session(hashlib.sha256(one.encode()).hexdigest()))
    assert stored is not None and one.encode() not in stored  # Redis holds neither the id nor the token
    assert 0 < r.ttl(keys.dashboard_session(hashlib.sha256(one.encode()).hexdigest())) \
        <= defaults.DASHBOARD_SESSION_TTL_S
    assert with_cookie(base, one).status_code == with_cookie(base, two).status_code == 404

    out = with_cookie(base, one, "/dashboard/logout", "POST", origin=base)
    assert out.status_code == 303 and f'{COOKIE}=""' in out.headers["set-cookie"]
    assert with_cookie(base, one).status_code == 401  # a copy of the cookie kept after logout is dead
    assert with_cookie(base, two).status_code == 404  # the other sign-in lives on
    assert with_cookie(base, "A" * 43).status_code == 401  # a made-up id


def test_logout_ends_an_open_live_stream(start_web):
    base = start_web()
    cookie = sign_in(base).cookies[COOKIE]
    with httpx.stream("GET", base + "/dashboard/events", headers={"cookie": f"{COOKIE}={cookie}"},
                      timeout=httpx.Timeout(5, read=30)) as stream:
        assert stream.status_code == 200
        lines = stream.iter_lines()
        assert next(lines).startswith("retry:")
        assert with_cookie(base, cookie, "/dashboard/logout", "POST", origin=base).status_code == 303
        started = time.monotonic()
        for _ in lines:  # keep-alives and updates until the server ends the stream
            assert time.monotonic() - started < 3 * defaults.DASHBOARD_SESSION_RECHECK_S + 15, "stream outlived logout"
    assert with_cookie(base, cookie, "/dashboard/events").status_code == 401  # and its reconnect is refused


def test_a_token_rotation_ends_the_sessions_made_with_the_old_token(start_web):
    base = start_web()
    cookie = sign_in(base).cookies[COOKIE]
    assert with_cookie(base, cookie).status_code == 404
    start_web.live.stop()

    rotated = start_web(LOCKHOOK_API_TOKEN="rotated-token-9f2c")
    assert with_cookie(rotated, cookie).status_code == 401
    assert sign_in(rotated).status_code == 401  # the old token signs in no more
    fresh = sign_in(rotated, "rotated-token-9f2c").cookies[COOKIE]
    assert with_cookie(rotated, fresh).status_code == 404


def test_failed_tokens_are_throttled_per_address(start_web):
    base = start_web()
    limit = defaults.AUTH_FAILURES_MAX
    attacker, bystander = from_address("203.0.113.7"), from_address("198.51.100.2")
    session = sign_in(base, **attacker).cookies[COOKIE]  # signed in before the attack

    wrong = [httpx.get(base + "/metrics", headers={"authorization": f"Bearer guess-{n}", **attacker})
             for n in range(limit - 1)]
    assert {w.status_code for w in wrong} == {401}
    assert sign_in(base, "guess-form", **attacker).status_code == 401  # sign-ins and bearer tokens share a count

    throttled = httpx.get(base + "/metrics", headers={"authorization": "Bearer guess-more", **attacker})
    assert throttled.status_code == 429 and throttled.json()["error"] == "too_many_attempts"
    assert 1 <= int(throttled.headers["retry-after"]) <= defaults.AUTH_FAILURE_WINDOW_S
    # while throttled the answer does not depend on the token, or a right guess would stand out
    assert httpx.get(base + "/metrics", headers={**AUTH, **attacker}).status_code == 429
    refused = sign_in(base, **attacker)
    assert refused.status_code == 429 and COOKIE not in refused.cookies
    assert refused.json()["error"] == "too_many_attempts"
    in_browser = sign_in(base, **attacker, accept="text/html,application/xhtml+xml")  # the form, with the reason
    assert in_browser.status_code == 429 and "Too many failed sign-ins" in in_browser.text
    assert 1 <= int(in_browser.headers["retry-after"]) <= defaults.AUTH_FAILURE_WINDOW_S
    assert with_cookie(base, session, **attacker).status_code == 404  # an existing session is not locked out

    assert httpx.get(base + "/metrics", headers={**AUTH, **bystander}).status_code == 200
    assert httpx.get(base + "/metrics", headers={"authorization": "Bearer x", **bystander}).status_code == 401
    assert sign_in(base, **bystander).status_code == 303


def test_concurrent_guesses_do_not_slip_past_the_limit(start_web):
    base = start_web()
    with httpx.Client(base_url=base, limits=httpx.Limits(max_connections=50)) as http:
        def guess(n: int) -> int:
            return http.get("/openapi.json", headers={"authorization": f"Bearer guess-{n}",
                                                      **from_address("192.0.2.99")}).status_code

        with ThreadPoolExecutor(50) as pool:
            answers = list(pool.map(guess, range(300)))
    assert answers.count(401) == defaults.AUTH_FAILURES_MAX
    assert answers.count(429) == 300 - defaults.AUTH_FAILURES_MAX


def test_web_processes_share_the_count(start_web):
    bases = [start_web(), start_web()]
    for n in range(defaults.AUTH_FAILURES_MAX):
        wrong = httpx.get(bases[n % 2] + "/openapi.json", headers={"authorization": f"Bearer guess-{n}"})
        assert wrong.status_code == 401
    for base in bases:
        assert httpx.get(base + "/openapi.json", headers={"authorization": "Bearer one-more"}).status_code == 429


def test_without_redis_the_throttle_fails_open_and_the_token_check_stays(start_web):
    base = start_web(REDIS_URL=f"redis://127.0.0.1:{free_port()}/0")  # nothing listens there
    for n in range(defaults.AUTH_FAILURES_MAX + 5):
        assert httpx.get(base + "/openapi.json", headers={"authorization": f"Bearer guess-{n}"}).status_code == 401
    assert httpx.get(base + "/openapi.json", headers=AUTH).status_code == 200


def test_dashboard_posts_from_another_origin_are_refused_before_any_lookup(start_web):
    base = start_web()
    cookie = sign_in(base, origin=base).cookies[COOKIE]
    resend = "/dashboard/notifications/ntf_unknown/retry"
    cross_site = [{"origin": "null"}, {"origin": "https://evil.example"}, {"origin": base + ".evil.example"},
                  {"sec-fetch-site": "cross-site"}]
    for headers in cross_site:
        for path in (resend, "/dashboard/logout"):
            for credentials in ({"cookie": f"{COOKIE}={cookie}"}, {}):
                refused = httpx.post(base + path, headers={**headers, **credentials})
                assert refused.status_code == 403, (path, headers, credentials)  # not 404 / 401: nothing looked up
                assert refused.json()["error"] == "cross_origin_refused"
        refused = sign_in(base, **headers)
        assert refused.status_code == 403 and COOKIE not in refused.cookies
    assert with_cookie(base, cookie).status_code == 404  # the refused logouts ended nothing

    assert with_cookie(base, cookie, resend, "POST", origin=base).status_code == 404
    assert with_cookie(base, cookie, resend, "POST", **{"sec-fetch-site": "same-origin"}).status_code == 404
    assert httpx.post(base + resend, headers=AUTH).status_code == 404  # scripts send no Origin: allowed


def test_an_oversized_login_body_is_413(start_web):
    base = start_web()
    huge = httpx.post(base + "/dashboard/login", content="token=" + "x" * 5000, headers=FORM)
    assert huge.status_code == 413 and huge.json()["error"] == "payload_too_large"


def test_a_login_body_not_sent_in_time_is_408(start_web):
    base = start_web()
    port = urlsplit(base).port
    with socket.create_connection(("127.0.0.1", port), timeout=defaults.BODY_READ_TIMEOUT_S + 10) as sock:
        sock.sendall(b"POST /dashboard/login HTTP/1.1\r\nHost: x\r\n"
                     b"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 100\r\n\r\ntoken=")
        answer = b""
        while b"\r\n\r\n" not in answer and (chunk := sock.recv(4096)):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
    assert httpx.get(base + "/healthz").status_code in (200, 503)  # the web process answers as before


def test_behind_one_proxy_failures_are_counted_per_forwarded_address(start_web):
    """TRUSTED_PROXY_HOPS=1 (Heroku, Render): the router's X-Forwarded-For entry names the caller."""
    import httpx

    base = start_web(TRUSTED_PROXY_HOPS=1)

    def guess(forwarded: str) -> int:
        return httpx.get(base + "/metrics", timeout=10, headers={"authorization": "Bearer wrong",
                                                                "x-forwarded-for": forwarded}).status_code

    statuses = [guess("6.6.6.6, 203.0.113.9") for _ in range(12)]  # the leftmost entry is the client's to choose
    assert statuses[-1] == 429
    assert guess("7.7.7.7, 203.0.113.9") == 429  # changing it does not dodge the throttle
    assert guess("203.0.113.10") == 401  # another caller behind the same router is not throttled
