"""Raw bodies stay in the inbox for INBOX_RETENTION_S once processed; unprocessed ones are never trimmed."""

from __future__ import annotations

import time

from lockhook import keys
from lockhook.streams import ensure_group
from workers.maintenance import maintain


def test_only_finished_entries_past_the_retention_are_trimmed(r):
    ensure_group(r, keys.INBOX, keys.INBOX_GROUP)
    now = int(time.time() * 1000)
    old = now - 3 * 3600 * 1000
    ids = [r.xadd(keys.INBOX, {"body": f"old-{i}"}, id=f"{old + i}-0") for i in range(3)]
    fresh = r.xadd(keys.INBOX, {"body": "fresh"})
    # entries 0 and 1 read by a consumer; 0 finished, 1 still pending (its worker died, say); 2 and fresh unread
    reply = r.xreadgroup(keys.INBOX_GROUP, "c1", {keys.INBOX: ">"}, count=2)
    assert [sid for sid, _ in reply[0][1]] == ids[:2]
    r.xack(keys.INBOX, keys.INBOX_GROUP, ids[0])
    r.xadd(keys.QUARANTINE, {"body": "old"}, id=f"{old}-0")
    r.xadd(keys.QUARANTINE, {"body": "new"})

    maintain(r, inbox_retention_s=3600)
    left = [sid for sid, _ in r.xrange(keys.INBOX)]
    assert left == [ids[1], ids[2], fresh], "only the finished old entry may go"
    assert [f[b"body"] for _, f in r.xrange(keys.QUARANTINE)] == [b"new"]

    # once every old one is finished, they all go; the fresh one stays within its retention
    r.xautoclaim(keys.INBOX, keys.INBOX_GROUP, "c2", min_idle_time=0, start_id="0-0")
    r.xreadgroup(keys.INBOX_GROUP, "c2", {keys.INBOX: ">"})
    r.xack(keys.INBOX, keys.INBOX_GROUP, ids[1], ids[2], fresh)
    maintain(r, inbox_retention_s=3600)
    assert [sid for sid, _ in r.xrange(keys.INBOX)] == [fresh]
