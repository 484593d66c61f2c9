"""Slow clients: a body trickled byte by byte is cut off with 408 by the app's read timeout (uvicorn has none),
while other clients are served at full speed."""

from __future__ import annotations

import socket
import threading
import time
from urllib.parse import urlsplit

import httpx
import pytest

from lockhook import defaults
from tests.reliability.helpers import body, other_event
from tests.support.config import signed

SLOW_CLIENTS = 20


def trickle(port: int, results: list, index: int) -> None:
    sock = socket.create_connection(("127.0.0.1", port), timeout=defaults.BODY_READ_TIMEOUT_S + 10)
    started = time.monotonic()
    sock.sendall(b"POST /webhooks/seam HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                 b"Content-Length: 1000\r\nsvix-id: msg_slow\r\nsvix-timestamp: 1\r\nsvix-signature: v1,x\r\n\r\n")
    answer = b""
    answered = None
    sock.settimeout(0.5)
    try:
        for _ in range(int(defaults.BODY_READ_TIMEOUT_S * 2) + 20):  # one byte per 0.5 s: never done in time
            try:
                sock.sendall(b"{")
            except OSError:
                break
            try:
                chunk = sock.recv(4096)
                if chunk:
                    answer += chunk
                    answered = time.monotonic() - started
                    break
            except TimeoutError:
                continue
        sock.settimeout(2)
        try:
            while chunk := sock.recv(4096):
                answer += chunk
        except (TimeoutError, OSError):
            pass
    finally:
        sock.close()
    results[index] = (answer, answered)


@pytest.mark.one_at_a_time
def test_trickled_bodies_get_408_while_others_are_served(start_web, r):
    base = start_web()
    port = urlsplit(base).port
    results: list = [None] * SLOW_CLIENTS
    threads = [threading.Thread(target=trickle, args=(port, results, i)) for i in range(SLOW_CLIENTS)]
    for t in threads:
        t.start()

    # meanwhile, ordinary senders are served promptly
    latencies = []
    n = 0
    while any(t.is_alive() for t in threads) and n < 200:
        raw = body(other_event(n, "dev_slow"))
        started = time.monotonic()
        resp = httpx.post(base + "/webhooks/seam", content=raw, headers=signed(raw, f"msg_fast_{n}"), timeout=5)
        latencies.append(time.monotonic() - started)
        assert resp.status_code == 202
        n += 1
        time.sleep(0.05)  # paces the ordinary senders
    for t in threads:
        t.join(defaults.BODY_READ_TIMEOUT_S + 30)

    for answer, seconds in results:
        assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
        assert b"body_read_timeout" in answer
        assert defaults.BODY_READ_TIMEOUT_S - 1 <= seconds <= defaults.BODY_READ_TIMEOUT_S + 2, seconds
    # served all along: a sender held up behind the trickling clients would wait for their cut-off
    assert n >= 20 and max(latencies) < defaults.BODY_READ_TIMEOUT_S / 2, max(latencies)
    assert httpx.get(base + "/healthz").status_code == 200
    print(f"\n{SLOW_CLIENTS} trickling clients cut off after {max(s for _, s in results):.1f} s; "
          f"{n} other deliveries served meanwhile, slowest {max(latencies) * 1000:.0f} ms")
