"""The inbox's dead-letter stream: entries whose processing kept failing, kept whole, listed and re-processable."""

from __future__ import annotations

from dataclasses import dataclass

from lockhook import jobs, keys
from lockhook.clock import iso
from lockhook.redis_client import text

_OWN_FIELDS = (b"reason", b"inbox_id", b"dead_at")
"""Added when an entry died; dropped again when it goes back to the inbox."""


@dataclass
class DeadLetter:
    id: str
    delivery_id: str
    endpoint: str
    reason: str
    dead_at: str | None

    def to_json(self) -> dict:
        return {"id": self.id, "delivery_id": self.delivery_id, "endpoint": self.endpoint, "reason": self.reason,
                "dead_at": self.dead_at}


def list_dead(client, limit: int = 100) -> list[DeadLetter]:
    """Newest first."""
    out = []
    for stream_id, fields in client.xrevrange(keys.INBOX_DEAD, count=limit):
        f = {text(k): text(v) for k, v in fields.items() if k != b"body"}
        out.append(DeadLetter(text(stream_id), f.get("delivery_id", ""), f.get("endpoint", ""),
                              f.get("reason", ""), iso(f.get("dead_at"))))
    return out


def retry_dead(client, ids: list[str] | None = None) -> list[str]:
    """Put dead entries (these, or all) back into the inbox as new entries; returns the ids moved.

    Applying is idempotent per event, so an entry that got through meanwhile changes nothing.
    """
    entries = client.xrange(keys.INBOX_DEAD) if ids is None else \
        [e for i in ids for e in client.xrange(keys.INBOX_DEAD, min=i, max=i)]
    moved = []
    for stream_id, fields in entries:
        original = {k: v for k, v in fields.items() if k not in _OWN_FIELDS}
        pipe = client.pipeline(transaction=True)
        pipe.xadd(keys.INBOX, original)
        pipe.xdel(keys.INBOX_DEAD, stream_id)
        pipe.execute()
        moved.append(text(stream_id))
    if moved:
        jobs.ensure_drain(client)
    return moved
