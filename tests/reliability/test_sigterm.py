"""Fault 3: SIGTERM as a PaaS deploy sends it: the web finishes in-flight requests, the worker finishes its
running job, and nothing is left half-done."""

from __future__ import annotations

import os
import signal
import socket
import threading
import time
from urllib.parse import urlsplit

import httpx
import psutil

from lockhook import keys
from lockhook.commands.store import CommandStore
from tests.reliability.helpers import FILLERS, body, busy_worker, other_event
from tests.support.config import API_TOKEN, signed
from tests.support.waiting import wait_for


def raw_request_head(base: str, path: str, headers: dict[str, str], length: int) -> bytes:
    host = urlsplit(base).netloc
    lines = [f"POST {path} HTTP/1.1", f"Host: {host}", f"Content-Length: {length}", "Connection: close"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def holds_connection(pid: int, client_port: int) -> bool:
    """True when process `pid` has accepted the TCP connection made from local port `client_port`."""
    return any(c.raddr and c.raddr.port == client_port for c in psutil.Process(pid).net_connections("tcp"))


def read_response(sock: socket.socket) -> bytes:
    chunks = []
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)


def test_web_sigterm_finishes_in_flight_requests(start_web, r):
    base = start_web()
    live = start_web.live
    command, _ = CommandStore(r).register("dev_term", "lock", "external", timeout_s=600)

    # a webhook whose body is half sent, and a long-poll, both in flight when SIGTERM arrives
    raw = body(other_event(1, "dev_term"))
    sock = socket.create_connection(("127.0.0.1", urlsplit(base).port))
    sock.settimeout(30)
    sock.sendall(raw_request_head(base, "/webhooks/seam", signed(raw, "msg_term"), len(raw)) + raw[:10])
    poll: dict = {}

    def long_poll():
        poll["resp"] = httpx.get(f"{base}/commands/{command.command_id}?wait=3", timeout=30,
                                 headers={"authorization": f"Bearer {API_TOKEN}"})

    poller = threading.Thread(target=long_poll)
    poller.start()
    # both in flight: the web holds the webhook's connection and the long-poll is parked on its subscription
    wait_for(lambda: holds_connection(live.proc.pid, sock.getsockname()[1]))
    wait_for(lambda: r.pubsub_numpat() == 1)  # the web's one subscription, held while a long-poll waits
    live.proc.send_signal(signal.SIGTERM)
    live.wait_until(lambda: "Shutting down" in live.output(), what="the web's graceful shutdown")
    sock.sendall(raw[10:])
    answer = read_response(sock)
    sock.close()
    poller.join(30)

    assert answer.startswith(b"HTTP/1.1 202"), answer[:200]
    assert poll["resp"].status_code == 200 and poll["resp"].json()["status"] == "pending"
    assert live.proc.wait(25) in (0, -signal.SIGTERM)  # uvicorn re-raises the signal after a graceful stop
    assert "Finished server process" in live.output()
    [(_, fields)] = r.xrange(keys.INBOX)
    assert fields[b"delivery_id"] == b"msg_term"  # the in-flight delivery is stored, not lost


def test_worker_sigterm_finishes_the_running_job(start_worker, r):
    store, command, worker = busy_worker(r, start_worker, "term")
    os.killpg(worker.proc.pid, signal.SIGTERM)  # the platform signals every process of the dyno
    signalled = time.monotonic()
    assert worker.proc.wait(30) == 0, worker.output()[-2000:]
    stopped_s = time.monotonic() - signalled

    # the batch in progress was finished and acknowledged before the worker exited
    assert r.xpending(keys.INBOX, keys.INBOX_GROUP)["pending"] == 0
    assert store.get(command.command_id).status == "succeeded"
    assert sum(int(v) for v in r.hgetall(keys.EVENT_STATS).values()) == FILLERS + 1
    assert r.zcard("rq:failed:events") == 0
    print(f"\nworker stopped {stopped_s:.1f} s after SIGTERM, its drain job finished")
