"""The bench's own tools: signed deliveries lockhook accepts, the open-loop generator, profile summaries."""

from __future__ import annotations

import asyncio

from bench import profile
from bench.common import BODY_BYTES, SECRET, percentile, seam_event, signed_deliveries
from bench.loadgen import open_loop_async, run_async
from lockhook.ingest.signatures import verify


def test_signed_deliveries_are_unique_800_byte_seam_events_that_verify():
    deliveries = signed_deliveries("t", 50)
    assert len({d.delivery_id for d in deliveries}) == 50
    for d in deliveries:
        assert len(d.body) == BODY_BYTES
        assert verify([SECRET], d.headers(), d.body) == d.delivery_id
    assert b'"action_attempt_id":"aa_t_7"' in deliveries[7].body


def test_seam_event_is_padded_exactly():
    assert len(seam_event("evt_1", "dev_1", "aa_1", size=900)) == 900


def test_open_loop_generator_counts_statuses_at_a_fixed_rate():
    async def main():
        async def handle(reader, writer):
            try:
                while True:
                    await reader.readuntil(b"\r\n\r\n")
                    writer.write(b"HTTP/1.1 202 Accepted\r\nContent-Length: 2\r\n\r\nok")
                    await writer.drain()
            except (asyncio.IncompleteReadError, ConnectionError):
                writer.close()

        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        sent = []
        try:
            payloads = [b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"] * 100
            return await open_loop_async(port, payloads, 500, 4, sent.append), sent
        finally:
            server.close()

    result, sent = run_async(main())
    assert result.statuses == {202: 100} and result.errors == 0
    assert sorted(sent) == list(range(100))
    assert 0.15 < result.seconds < 2.0  # 100 requests at 500/s take ~0.2 s
    assert result.p99 is not None and result.p50 <= result.p99


def test_percentile():
    values = [float(i) for i in range(1, 101)]
    assert percentile(values, 50) == 50.0
    assert percentile(values, 99) == 99.0
    assert percentile([], 99) is None


def test_profile_summary_counts_each_frame_once_per_stack_and_hides_the_spine():
    raw = "\n".join([
        "<module> (app.py:1);drain (workers/drain.py:10);apply_entries (workers/processing.py:5) 3",
        "<module> (app.py:1);drain (workers/drain.py:10);dispatch_outbox (workers/outbox.py:7) 1",
    ])
    rows = dict(profile.summarise(raw))
    assert rows["drain (workers/drain.py)"] == 1.0
    assert rows["apply_entries (workers/processing.py)"] == 0.75
    assert not any(f.startswith("<module>") for f in rows)
