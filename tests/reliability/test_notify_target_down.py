"""Fault 5: notification targets down (refusing) and hanging (never answering): their retries stay bounded
(NOTIFY_MAX_ATTEMPTS, then `failed`, re-sendable; an open circuit only delays them), event processing keeps
its pace (notification sends run in their own process), and a healthy target still gets every notification
once."""

from __future__ import annotations

import json
import time
from collections import Counter

import httpx
import pytest

from lockhook import defaults, keys
from lockhook.commands.store import CommandStore
from lockhook.notifications.payloads import notification_id, target_label
from lockhook.notifications.store import NotificationStore
from lockhook.outcomes import Outcome
from tests.reliability.helpers import attempt_succeeded, body
from tests.support.config import signed
from tests.support.servers import NotifyTarget
from tests.support.waiting import wait_for
from tools.devserver import free_port

COMMANDS = 3
MAX_ATTEMPTS = 2
TIMEOUT_S = 3.0


@pytest.mark.one_at_a_time
def test_dead_targets_retry_a_bounded_number_of_times_and_slow_nothing_else(start_web, start_worker, r):
    healthy = NotifyTarget()
    hanging = NotifyTarget(delay_s=30)
    down = f"http://127.0.0.1:{free_port()}/hook"
    try:
        env = dict(NOTIFY_WEBHOOK_URL=f"{down},{hanging.url},{healthy.url}", NOTIFY_MAX_ATTEMPTS=MAX_ATTEMPTS,
                   NOTIFY_EVENTS="command.*",  # the confirmations also move lock state: count commands only
                   NOTIFY_RETRY_DELAYS_S="0.5", NOTIFY_TIMEOUT_S=TIMEOUT_S,
                   NOTIFY_WEBHOOK_SECRET="whsec_ZG93bi10YXJnZXQtdGVzdC1zZWNyZXQtMTIzNA==")
        base = start_web(**env)
        start_worker(**env)
        wait_for(lambda: r.exists(keys.MAINTENANCE_FLAG), timeout=20)
        store = CommandStore(r)
        resolve_s, notify_s = [], []
        resolved_at: dict[str, float] = {}
        commands = []
        for n in range(COMMANDS):
            command, _ = store.register("dev_down_target", "lock", "external", action_attempt_id=f"aa_nt_{n}",
                                        timeout_s=600)
            commands.append(command.command_id)
            raw = body(attempt_succeeded(n, "dev_down_target") | {"action_attempt_id": f"aa_nt_{n}"})
            posted = time.monotonic()
            assert httpx.post(base + "/webhooks/seam", content=raw,
                              headers=signed(raw, f"msg_nt_{n}")).status_code == 202
            wait_for(lambda cid=command.command_id: store.get(cid).status == "succeeded", timeout=20, interval=0.01)
            resolve_s.append(time.monotonic() - posted)
            resolved_at[command.command_id] = time.monotonic()
            time.sleep(0.5)
        wait_for(lambda: len(healthy.delivered("command.succeeded")) == COMMANDS, timeout=60)
        with healthy.lock:
            for req in healthy.requests:
                data = json.loads(req["body"])
                if data["type"] == "command.succeeded":
                    notify_s.append(req["at"] - resolved_at[data["data"]["command_id"]])

        # the dead targets: exactly MAX_ATTEMPTS attempts each, then failed and left alone
        notifications = NotificationStore(r)
        dead = [notification_id(Outcome(type="command.succeeded", at_ms=0, command_id=cid), f"webhook:{url}")
                for cid in commands for url in (down, hanging.url)]
        deadline_s = COMMANDS * 2 * MAX_ATTEMPTS * (TIMEOUT_S + 0.5) + defaults.NOTIFY_CIRCUIT_COOLDOWN_S + 10
        wait_for(lambda: all(notifications.get(nid).status == "failed" for nid in dead), timeout=deadline_s)
        for nid in dead:
            assert notifications.get(nid).attempts == MAX_ATTEMPTS
        assert r.zcard(keys.NOTIFY_FAILED) == len(dead)
        per_id = Counter(hanging.ids() + [req["headers"].get("webhook-id") for req in hanging.requests])
        assert max(per_id.values()) <= 2 * MAX_ATTEMPTS  # (each attempt counted by ids() and requests alike)
        time.sleep(1.5)
        for url in (down, hanging.url):  # nothing left to send to the dead targets
            assert r.zcard(keys.notify_due(target_label("webhook", url))) == 0
        assert len(healthy.delivered("command.succeeded")) == COMMANDS  # and the healthy one, once each
    finally:
        healthy.close()
        hanging.close()
    assert max(resolve_s) < TIMEOUT_S, resolve_s  # never waits behind a hanging send (one lasts TIMEOUT_S)
    assert max(notify_s) < TIMEOUT_S, notify_s  # the healthy target never waits behind a hanging send either
    print(f"\nwith one target refusing and one hanging: commands resolved in max {max(resolve_s) * 1000:.0f} ms, "
          f"healthy target notified in max {max(notify_s) * 1000:.0f} ms; default retry schedule "
          f"{len(defaults.NOTIFY_RETRY_DELAYS_S)} delays, {sum(defaults.NOTIFY_RETRY_DELAYS_S) / 3600:.1f} h in all")
