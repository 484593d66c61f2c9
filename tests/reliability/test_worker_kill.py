"""Fault 2: the worker SIGKILLed mid-batch; its unacknowledged inbox entries are reclaimed and the command
resolves once (RQ's own abandoned-job handling would move the job to the failed registry: we recover
through the stream's consumer group instead)."""

from __future__ import annotations

import json
import os
import signal
import time

import httpx
import psutil

from lockhook import defaults, keys
from tests.reliability.helpers import FILLERS, body, busy_worker, diagnose, inbox_settled, other_event
from tests.support.config import signed
from tests.support.waiting import wait_for


def test_sigkilled_worker_work_is_rerun_and_the_command_resolves_once(r, start_worker, start_web):
    store, command, worker = busy_worker(r, start_worker, "kill")
    # kill the whole worker (process group: workers, scheduler, notifier) once the batch is read, not acked
    os.killpg(worker.proc.pid, signal.SIGKILL)
    killed_at = time.monotonic()
    worker.proc.wait(10)
    pending = r.xpending(keys.INBOX, keys.INBOX_GROUP)["pending"]
    assert pending == defaults.DRAIN_BATCH, pending  # the whole batch was read and none acknowledged
    assert not r.exists(keys.processed("seam", "event:evt_kill"))  # killed before the event was applied
    assert store.get(command.command_id).status == "pending"

    # a delivery that arrives while no worker runs, behind the dead drain's flag
    base = start_web()
    late = body(other_event(99_999, "dev_kill"))
    assert r.exists(keys.DRAIN_FLAG)
    assert httpx.post(base + "/webhooks/seam", content=late, headers=signed(late, "msg_late")).status_code == 202

    replacement = start_worker()  # the platform restarts the dyno
    try:
        wait_for(lambda: store.get(command.command_id).status == "succeeded", timeout=40)
    except AssertionError:
        raise AssertionError(diagnose(r, replacement)) from None
    recovered_s = time.monotonic() - killed_at
    wait_for(lambda: inbox_settled(r), timeout=40)
    wait_for(lambda: r.exists(keys.processed("seam", "event:evt_other_99999")), timeout=20)
    settled_s = time.monotonic() - killed_at

    resolved = [e for e in store.timeline(command.command_id) if e["kind"] == "resolved"]
    assert len(resolved) == 1
    assert int(r.hget(keys.COMMAND_STATS, "succeeded")) == 1
    applied = sum(int(v) for v in r.hgetall(keys.EVENT_STATS).values())
    assert applied == FILLERS + 2  # every entry applied once: fillers, the confirmation, the late delivery
    events = [json.loads(x)["event"] for x in r.lrange(keys.device_events("dev_kill"), 0, -1)]
    assert sorted(events) == ["event:evt_kill", "event:evt_other_99999"]
    assert recovered_s < defaults.RECLAIM_IDLE_MS / 1000 + 3 * defaults.MAINTENANCE_INTERVAL_S + 10
    print(f"\ncommand resolved {recovered_s:.1f} s after the SIGKILL (reclaim idle "
          f"{defaults.RECLAIM_IDLE_MS / 1000:g} s); inbox settled after {settled_s:.1f} s")


def test_the_notifier_child_does_not_outlive_a_killed_worker(start_worker):
    worker = start_worker()
    parent = psutil.Process(worker.proc.pid)
    children = wait_for(lambda: parent.children(recursive=True), timeout=30)
    os.kill(worker.proc.pid, signal.SIGKILL)
    worker.proc.wait(10)
    gone, alive = psutil.wait_procs(children, timeout=15)
    assert not alive, f"orphaned: {[p.cmdline() for p in alive]}"
