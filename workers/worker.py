"""The worker process: an RQ worker that survives Redis outages and finishes its job on SIGTERM, and the notifier.

`lockhook worker` runs the events queue (drain, deadlines; with RQ's scheduler and a maintenance thread) and
then the polls queue (Seam polls) in this process with a non-forking worker (an RQ fork per job costs more
than our jobs do), and the notifier (workers.notifier: outbox consumer and sender, one asyncio loop) in a
child process, so a slow notification target never delays event processing.
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
from workers import notifier
from workers.maintenance import mark_alive, run_in_thread

log = logging.getLogger("lockhook.worker")

PR_SET_PDEATHSIG = 1
"""prctl(2) option: the signal this process gets when its parent dies."""

RQ_MAINTENANCE_S = 15
"""RQ retries its scheduler lock only at this interval (default 10 min): a lock left by a worker that died
with Redis down expires after ~61 s, and scheduled jobs (retries, deadlines) wait until it is retaken."""


class LockhookWorker(SimpleWorker):
    """Runs jobs in-process: SIGTERM is a warm shutdown, the running job finishes before exit."""

    stop_with: list = []  # the notifier processes: told at once, so none starts new sends while this one stops

    def request_stop(self, signum, frame):
        for child in self.stop_with:
            if child.is_alive():
                child.terminate()
        super().request_stop(signum, frame)


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


_forking_pid = 0


def _remember_parent() -> None:
    global _forking_pid
    _forking_pid = os.getpid()


def _die_with_parent() -> None:
    """In every child the worker forks (the notifiers, RQ's scheduler process): end when the worker dies, even
    by SIGKILL (Linux: PR_SET_PDEATHSIG). SIGKILL, because a parent that died without stopping its child had no
    graceful stop, and a child still starting may not handle SIGTERM yet; leased sends run out and go again."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != _forking_pid:  # the parent died before the line above took effect
        os.kill(os.getpid(), signal.SIGKILL)


def _notifier(settings: Settings) -> None:
    notifier.run(settings)


def run(settings: Settings, queues: list[str] | None = None, burst: bool = False) -> None:
    """Entry point of `lockhook worker` (with --queue or --burst: only those RQ queues, no notifier)."""
    if queues or burst:
        queues = queues or [defaults.QUEUE_EVENTS, defaults.QUEUE_POLLS]
        serve(settings, queues, with_scheduler=defaults.QUEUE_EVENTS in queues, burst=burst)
        return
    os.register_at_fork(before=_remember_parent, after_in_child=_die_with_parent)
    children = [multiprocessing.get_context("fork").Process(target=_notifier, args=(settings,),
                                                            name=f"lockhook-notifier-{n}")
                for n in range(defaults.NOTIFIER_PROCESSES)]
    for child in children:
        child.start()
    LockhookWorker.stop_with = children
    try:
        serve(settings, [defaults.QUEUE_EVENTS, defaults.QUEUE_POLLS], with_scheduler=True)
    finally:
        for child in children:
            if child.is_alive():
                child.terminate()  # SIGTERM: stops leasing, finishes its in-flight sends
        for child in children:
            child.join(60)
