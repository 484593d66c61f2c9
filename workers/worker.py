"""The worker process: RQ workers that survive Redis outages and finish their job on SIGTERM.

`lockhook worker` runs the events queue (drain, deadlines; with RQ's scheduler and a maintenance thread) in this
process and the notifications queue in a child process, so a slow notification target never delays
event processing. Both use a non-forking worker: an RQ fork per job costs more than our jobs do.
"""

from __future__ import annotations

import ctypes
import logging
import multiprocessing
import os
import signal
import sys
import threading
import time

from redis.exceptions import RedisError
from rq import Queue, SimpleWorker

from lockhook import defaults, keys
from lockhook.logs import configure_logging
from lockhook.redis_client import eviction_warning, sync_client
from lockhook.settings import Settings
from lockhook.streams import ensure_group
from workers import notifications  # noqa: F401  (registers the outcome subscribers)
from workers.maintenance import mark_alive, run_in_thread

log = logging.getLogger("lockhook.worker")

PR_SET_PDEATHSIG = 1
"""prctl(2) option: the signal this process gets when its parent dies."""

RQ_MAINTENANCE_S = 15
"""RQ retries its scheduler lock only at this interval (default 10 min): a lock left by a worker that died
with Redis down expires after ~61 s, and scheduled jobs (retries, deadlines) wait until it is retaken."""


class LockhookWorker(SimpleWorker):
    """Runs jobs in-process: SIGTERM is a warm shutdown, the running job finishes before exit."""


def prepare(client) -> None:
    """Consumer groups exist before any job runs; the worker is marked alive."""
    ensure_group(client, keys.INBOX, keys.INBOX_GROUP)
    ensure_group(client, keys.OUTBOX, keys.OUTBOX_GROUP)
    mark_alive(client)
    warning = eviction_warning(client.info("memory"))
    if warning:
        log.warning(warning)


def serve(settings: Settings, queue_names: list[str], with_scheduler: bool, burst: bool = False) -> None:
    """Run an RQ worker, restarting it (with backoff) after Redis errors until asked to stop."""
    configure_logging(settings)
    if defaults.QUEUE_EVENTS in queue_names and not burst:  # recovery must not wait on RQ's scheduler
        run_in_thread(settings, threading.Event())
    backoff = 0.5
    while True:
        client = sync_client(settings)
        worker = None
        started = time.monotonic()
        try:
            prepare(client)
            queues = [Queue(name, connection=client) for name in queue_names]
            worker = LockhookWorker(queues, connection=client, worker_ttl=60, job_monitoring_interval=5,
                                    maintenance_interval=RQ_MAINTENANCE_S)
            worker.work(burst=burst, with_scheduler=with_scheduler, logging_level="WARNING",
                        max_idle_time=None)
        except (RedisError, OSError) as exc:
            log.warning("redis unavailable (%s); retrying in %.1f s", type(exc).__name__, backoff)
        if burst or (worker is not None and _asked_to_stop(worker)):
            return
        if time.monotonic() - started > 30:  # it had been working: this is a new outage, start over
            backoff = 0.5
        time.sleep(backoff)
        backoff = min(backoff * 2, 10.0)


def _asked_to_stop(worker: LockhookWorker) -> bool:
    """RQ records the time of a SIGTERM/SIGINT; a worker that returned without one hit an error."""
    return worker._stop_requested or getattr(worker, "_shutdown_requested_date", None) is not None


def die_with_parent(parent_pid: int) -> None:
    """A child process ends when the worker that started it dies, even by SIGKILL (Linux: PR_SET_PDEATHSIG).

    Without it, a notifier whose parent was killed before it could stop it runs on, orphaned.
    """
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent_pid:  # the parent died before the line above took effect
        os.kill(os.getpid(), signal.SIGTERM)


def _notifier(parent_pid: int, settings: Settings, burst: bool) -> None:
    die_with_parent(parent_pid)
    serve(settings, [defaults.QUEUE_NOTIFICATIONS], True, burst)


def run(settings: Settings, queues: list[str] | None = None, burst: bool = False) -> None:
    """Entry point of `lockhook worker`."""
    if queues:
        serve(settings, queues, with_scheduler=defaults.QUEUE_EVENTS in queues, burst=burst)
        return
    notifier = multiprocessing.get_context("fork").Process(
        target=_notifier, args=(os.getpid(), settings, burst), name="lockhook-notifier")
    notifier.start()
    try:
        # events only: a notification send (up to NOTIFY_TIMEOUT_S to a hanging target) must never delay a drain
        own = [defaults.QUEUE_EVENTS, defaults.QUEUE_NOTIFICATIONS] if burst else [defaults.QUEUE_EVENTS]
        serve(settings, own, with_scheduler=True, burst=burst)
    finally:
        if notifier.is_alive():
            notifier.terminate()  # SIGTERM: a warm shutdown, its running job finishes
        notifier.join(60)
