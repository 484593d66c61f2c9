"""Cursor paging over a Redis sorted set, newest (highest score) first: stable while entries are added."""

from __future__ import annotations

import base64
from dataclasses import dataclass

from lockhook.redis_client import text

SCAN_BATCH = 200


class BadCursor(ValueError):
    """A cursor this service did not hand out (or one mangled in transit)."""


@dataclass(frozen=True)
class Position:
    """Just after (score, member) in (score desc, member desc) order: what a cursor stands for."""

    score: float
    member: str

    def encode(self) -> str:
        return base64.urlsafe_b64encode(f"{self.score!r}|{self.member}".encode()).decode().rstrip("=")

    @classmethod
    def decode(cls, cursor: str) -> Position:
        try:
            raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
            score, member = raw.split("|", 1)
            return cls(float(score), member)
        except (ValueError, UnicodeDecodeError):
            raise BadCursor("not a cursor from this API: pass next_cursor as it was returned") from None


def scan_desc(client, key: str, after: Position | None, count: int) -> list[tuple[str, float]]:
    """Up to `count` (member, score) pairs after `after`, highest score first (ties: member descending)."""
    if after is None:
        rows = client.zrevrange(key, 0, count - 1, withscores=True)
        return [(text(m), s) for m, s in rows]
    out: list[tuple[str, float]] = []
    offset = 0
    while len(out) < count:
        # same-score entries at or before the cursor's member come first in this range: skip them
        rows = client.zrevrangebyscore(key, after.score, "-inf", start=offset, num=count + SCAN_BATCH,
                                       withscores=True)
        if not rows:
            break
        offset += len(rows)
        for member, score in rows:
            member = text(member)
            if score < after.score or member < after.member:
                out.append((member, score))
        if len(rows) < count + SCAN_BATCH:
            break
    return out[:count]


def page(client, key: str, cursor: str | None, limit: int, keep, scan_max: int = 2_000):
    """(kept items, next cursor or None): scans at most `scan_max` entries, so a rare filter stays bounded.

    `keep(members)` returns the items to show for a batch of members (e.g. the ones whose status matches). A
    page may hold fewer than `limit` items and still have a next cursor: only `None` means the end.
    """
    after = Position.decode(cursor) if cursor else None
    found: list = []
    scanned = 0
    while len(found) < limit and scanned < scan_max:
        batch = scan_desc(client, key, after, min((limit - len(found)) * 2, scan_max - scanned, SCAN_BATCH))
        if not batch:
            return found, None
        scanned += len(batch)
        for (member, score), item in zip(batch, keep([m for m, _ in batch]), strict=True):
            after = Position(score, member)
            if item is not None:
                found.append(item)
                if len(found) == limit:
                    break
    more = scan_desc(client, key, after, 1) if after is not None else []
    return found, (after.encode() if more else None)
