"""Baselines of the notification burst, each in its own process, sending signed bodies to the same sink.

(a) `rq`: one RQ job per notification on a SimpleWorker, each job signing its body (svix) and POSTing it
with one kept `httpx.Client` (the typical hand-written design). (b) `aiohttp`: a bare `aiohttp` sender with
64 requests in flight over one session, signing each body as it goes. Both print `ready`, wait for a line
on stdin, then work and print `{"start", "end", "count", "errors"}` as one JSON line.

    python -m bench.baselines.notify_senders rq REDIS_URL
    python -m bench.baselines.notify_senders aiohttp URL COUNT CONCURRENCY RUN
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from datetime import UTC, datetime

QUEUE = "bench-notify"
SECRET_ENV = "NOTIFY_WEBHOOK_SECRET"


def sample_notification(run: str, i: int) -> tuple[str, str]:
    """(webhook-id, body) shaped like lockhook's: command.succeeded for even i, lock.state_changed for odd i."""
    now = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    n = i // 2
    if i % 2 == 0:
        kind = "command.succeeded"
        data = {"command_id": f"cmd_{run}_{n}", "device_id": f"dev_{run}_{n}", "action": "lock",
                "via": "external", "status": "succeeded", "custom_id": None, "action_id": None,
                "action_attempt_id": f"aa_{run}_{n}", "error_code": None, "error_message": None,
                "performed_via": None, "method": None, "created_at": now, "deadline_at": now, "resolved_at": now,
                "resolved_by": f"evt_{run}_{n}", "resolved_via": "webhook", "late": False, "metadata": None,
                "callback_url": None}
    else:
        kind = "lock.state_changed"
        data = {"device_id": f"dev_{run}_{n}", "locked": True, "occurred_at": now, "method": None,
                "performed_via": None, "source_event": f"evt_{run}_{n}", "event_type":
                "action_attempt.lock_door.succeeded", "updated_at": now}
    msg_id = f"msg_{run}_{i:08d}"
    body = json.dumps({"type": kind, "id": msg_id, "created_at": now, "data": data}, separators=(",", ":"),
                      sort_keys=True)
    return msg_id, body


def signed_headers(webhook, msg_id: str, body: str) -> dict[str, str]:
    now = datetime.now(UTC)
    return {"content-type": "application/json", "webhook-id": msg_id,
            "webhook-timestamp": str(int(now.timestamp())), "webhook-signature": webhook.sign(msg_id, now, body)}


# -- (a) one RQ job per notification ------------------------------------------------------------------------

_kept: dict = {}


def send_notification(url: str, msg_id: str, body: str) -> int:
    """RQ job: sign and POST one notification with the worker's one kept httpx client; raise on non-2xx."""
    if not _kept:
        import httpx
        from svix.webhooks import Webhook

        _kept["http"] = httpx.Client(timeout=10)
        _kept["webhook"] = Webhook(os.environ[SECRET_ENV])
    response = _kept["http"].post(url, content=body.encode(), headers=signed_headers(_kept["webhook"], msg_id, body))
    response.raise_for_status()
    return response.status_code


def enqueue_rq(client, url: str, run: str, count: int) -> None:
    """Queue `count` send jobs (pipelined) for the worker to run once told to go."""
    from rq import Queue

    queue = Queue(QUEUE, connection=client)
    for lo in range(0, count, 1000):
        jobs = [Queue.prepare_data(f"{__name__}.send_notification", args=(url, *sample_notification(run, i)),
                                   result_ttl=0, failure_ttl=3600)
                for i in range(lo, min(lo + 1000, count))]
        with client.pipeline() as pipe:
            queue.enqueue_many(jobs, pipeline=pipe)
            pipe.execute()


def _rq_worker(redis_url: str) -> dict:
    import redis
    from rq import Queue, SimpleWorker

    client = redis.Redis.from_url(redis_url)
    queue = Queue(QUEUE, connection=client)
    worker = SimpleWorker([queue], connection=client)
    before = queue.count
    print("ready", flush=True)
    sys.stdin.readline()
    start = time.time()
    worker.work(burst=True, logging_level="WARNING")
    end = time.time()
    failed = queue.failed_job_registry.count
    return {"start": start, "end": end, "count": before - queue.count - failed, "errors": failed}


# -- (b) bare aiohttp, N in flight --------------------------------------------------------------------------

async def _aiohttp_sender(url: str, count: int, concurrency: int, run: str) -> dict:
    import aiohttp
    from svix.webhooks import Webhook

    webhook = Webhook(os.environ[SECRET_ENV])
    bodies = [sample_notification(run, i) for i in range(count)]
    errors = 0
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=10)) as session:
        print("ready", flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
        start = time.time()
        pending = iter(bodies)

        async def lane() -> None:
            nonlocal errors
            for msg_id, body in pending:
                try:
                    async with session.post(url, data=body.encode(),
                                            headers=signed_headers(webhook, msg_id, body)) as response:
                        await response.read()
                        if response.status >= 300:
                            errors += 1
                except (TimeoutError, aiohttp.ClientError):
                    errors += 1

        await asyncio.gather(*(lane() for _ in range(concurrency)))
        end = time.time()
    return {"start": start, "end": end, "count": count - errors, "errors": errors}


def main(argv: list[str]) -> None:
    if argv[0] == "rq":
        report = _rq_worker(argv[1])
    else:
        from bench.loadgen import run_async

        report = run_async(_aiohttp_sender(argv[1], int(argv[2]), int(argv[3]), argv[4]))
    print(json.dumps(report), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
