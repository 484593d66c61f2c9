"""Memory: Redis bytes per pending command / stored delivery / resolved command, and process RSS under load."""

from __future__ import annotations

from dataclasses import dataclass

from bench.common import BenchRedis, Section, ingest_directly, log, mib, register_pending, signed_deliveries


@dataclass
class RedisBytes:
    per_pending_command: float
    per_stored_delivery: float
    per_resolved: float | None = None
    sizing: dict[str, float] | None = None
    """What each kept thing costs after the drain (the README's sizing table is computed from these)."""


def redis_bytes(r: BenchRedis, n: int = 20_000) -> RedisBytes:
    """INFO used_memory deltas: n pending commands, then n deliveries in the inbox (dedupe key + stream entry)."""
    r.flush()
    log(f"memory: {n:,} pending commands, then {n:,} stored deliveries")
    m0 = r.used_memory()
    register_pending(r.client, "mem", n)
    m1 = r.used_memory()
    ingest_directly(r.client, signed_deliveries("mem", n))
    m2 = r.used_memory()
    return RedisBytes((m1 - m0) / n, (m2 - m1) / n, sizing=_sizing(r.client, n))


def _sizing(client, n: int, devices: int = 500) -> dict[str, float]:
    """Drain what was stored, then MEMORY USAGE of each kind of key, per delivery / command / device."""
    from lockhook import keys
    from lockhook.streams import ensure_group
    from workers.drain import drain

    ensure_group(client, keys.INBOX, keys.INBOX_GROUP)
    while drain(client, max_seconds=60):
        pass

    def total(pattern: str) -> int:
        return sum(client.memory_usage(k) or 0 for k in client.scan_iter(match=keys.PREFIX + pattern, count=1000))

    return {"inbox body (INBOX_RETENTION_S)": (client.memory_usage(keys.INBOX) or 0) / n,
            "dedupe + processed marks (7 days)": (total("dedupe:*") + total("processed:*")) / n,
            "command hash, timeline, id indexes (30 days)": (total("cmd:*") + total("idx:*")) / n,
            "device event log + lock state, per device": (total("device:*:events") + total("lock:*")) / devices}


def section(rb: RedisBytes, rss: list[tuple[str, int]], http_delivery_bytes: int | None,
            resolved_bytes: float | None) -> Section:
    s = Section("Memory", ["what", "measured"])
    s.add("Redis bytes per pending command (hash, id index, deadline + pending zsets, timeline)",
          f"{rb.per_pending_command:,.0f} B")
    s.add("Redis bytes per stored delivery (800-byte body + headers in the inbox stream, dedupe key)",
          f"{rb.per_stored_delivery:,.0f} B")
    if http_delivery_bytes:
        s.add("  same, measured over the ingest (c) run through HTTP", f"{http_delivery_bytes:,} B")
    if resolved_bytes is not None:
        s.add("Redis bytes per event applied and its command resolved (delta after the drain: processed mark, "
              "event logs, outbox/notification records; the inbox entry is trimmed only after the dedupe window)",
              f"{resolved_bytes:,.0f} B")
    for label, value in (rb.sizing or {}).items():
        s.add(f"Redis bytes: {label}", f"{value:,.0f} B")
    for label, value in rss:
        s.add(f"peak RSS: {label}", mib(value))
    s.notes.append("Redis deltas are INFO used_memory differences on the bench's own redis-server "
                   "(no persistence), divided by the number of objects added")
    return s
