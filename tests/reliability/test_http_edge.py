"""The request head is bounded: a huge header gets 431 at once, a trickled one is cut off; others are served."""

from __future__ import annotations

import contextlib
import select
import socket
import threading
import time
import uuid

import httpx
import psutil

from tests.support.config import signed
from tests.support.waiting import wait_for


def _webhook(base: str) -> int:
    body = b'{"event_type":"lock.locked","event_id":"%s","device_id":"dev_edge"}' % uuid.uuid4().hex.encode()
    return httpx.post(base + "/webhooks/seam", content=body, headers=signed(body, "msg_" + uuid.uuid4().hex),
                      timeout=10).status_code


def _connect(base: str) -> socket.socket:
    port = int(base.rsplit(":", 1)[1])
    return socket.create_connection(("127.0.0.1", port), timeout=10)


def test_a_streamed_huge_header_is_refused_and_others_keep_being_answered(start_web):
    base = start_web()
    web = psutil.Process(start_web.live.proc.pid)
    rss_before = web.memory_info().rss
    sock = _connect(base)
    sock.sendall(b"POST /webhooks/seam HTTP/1.1\r\nHost: x\r\nX-Big: ")
    sent, refused = 0, False
    answers: list[int] = []
    stop = threading.Event()

    def others() -> None:  # a genuine sender, meanwhile
        while not stop.is_set():
            answers.append(_webhook(base))

    thread = threading.Thread(target=others)
    thread.start()
    try:
        while sent < 120 * 1024 * 1024:
            sock.sendall(b"a" * 65536)
            sent += 65536
    except OSError:
        refused = True
    reply = b""
    with contextlib.suppress(OSError):
        reply = sock.recv(4096)
    wait_for(lambda: len(answers) >= 5, timeout=20)
    stop.set()
    thread.join()
    sock.close()
    assert refused, "the server kept reading a 120 MB header"
    assert sent < 16 * 1024 * 1024
    assert reply == b"" or reply.startswith(b"HTTP/1.1 431")
    assert set(answers) == {202}
    assert web.memory_info().rss - rss_before < 32 * 1024 * 1024


def test_a_trickled_header_is_cut_off_after_the_head_timeout(start_web):
    base = start_web(HEADER_READ_TIMEOUT_S=2)
    sock = _connect(base)
    sock.sendall(b"POST /webhooks/seam HTTP/1.1\r\nHost: x\r\nX-Slow: ")
    started = time.monotonic()
    closed_after = None
    while time.monotonic() - started < 30:
        try:
            sock.sendall(b"a")
            readable, _, _ = select.select([sock], [], [], 0)
            if readable and sock.recv(1) == b"":
                closed_after = time.monotonic() - started
                break
        except OSError:
            closed_after = time.monotonic() - started
            break
        assert _webhook(base) == 202  # everyone else is answered meanwhile
        time.sleep(0.5)  # the trickle's pace
    sock.close()
    assert closed_after is not None, "a header trickled for 30 s was still being read"
    assert closed_after < 15


def test_a_large_but_legal_head_and_body_are_served(start_web):
    base = start_web()
    body = b'{"event_type":"lock.locked","event_id":"big","device_id":"dev_edge","pad":"' + b"x" * 200_000 + b'"}'
    headers = signed(body, "msg_big_head") | {"x-padding": "p" * 30_000}
    assert httpx.post(base + "/webhooks/seam", content=body, headers=headers, timeout=10).status_code == 202
