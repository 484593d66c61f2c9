"""A graceful stop answers every open long-poll at once with the command as it is (200), never a 503."""

from __future__ import annotations

import signal
import threading
import time

import httpx
import psutil

from lockhook.commands.store import CommandStore
from tests.support.config import API_TOKEN
from tests.support.waiting import wait_for


def test_open_long_polls_answer_200_when_the_web_process_stops(start_web, r):
    base = start_web()
    live = start_web.live
    commands = [CommandStore(r).register("dev_stop", "lock", "external", action_attempt_id=f"aa_stop_{i}",
                                         timeout_s=600)[0] for i in range(5)]
    answers: dict[str, httpx.Response] = {}

    def long_poll(command_id: str) -> None:
        answers[command_id] = httpx.get(f"{base}/commands/{command_id}?wait=30", timeout=60,
                                        headers={"authorization": f"Bearer {API_TOKEN}"})

    pollers = [threading.Thread(target=long_poll, args=(c.command_id,)) for c in commands]
    for poller in pollers:
        poller.start()
    port = int(base.rsplit(":", 1)[1])
    web = psutil.Process(live.proc.pid)

    def parked() -> bool:  # every poll connected, the subscription live, each command read once
        accepted = [c for c in web.net_connections("tcp") if c.laddr.port == port and c.status == "ESTABLISHED"]
        return len(accepted) == len(commands) and r.execute_command("PUBSUB", "NUMPAT") == 1

    wait_for(parked, timeout=20)
    stopped_at = time.monotonic()
    live.proc.send_signal(signal.SIGTERM)
    for poller in pollers:
        poller.join(40)
    answered_within = time.monotonic() - stopped_at
    assert {c: a.status_code for c, a in answers.items()} == {c.command_id: 200 for c in commands}
    assert {a.json()["status"] for a in answers.values()} == {"pending"}
    assert answered_within < 15, f"long-polls held {answered_within:.1f} s into the stop (their wait was 30 s)"
    assert live.proc.wait(25) in (0, -signal.SIGTERM)
