"""The notifications bench: its arithmetic, the sink's reading of lockhook's bodies, and small runs of its pieces."""

from __future__ import annotations

import json
import math

import pytest

from bench import notifications as nb
from bench.common import BenchRedis
from bench.notify_sink import Recorder, parse
from lockhook.notifications.payloads import slack_body
from lockhook.outcomes import Outcome
from tests.support.processes import exclusive, run_dir


def test_per_second_and_expected_counts():
    assert nb.per_second(1200, 10.0, 12.0) == 600.0
    assert nb.per_second(0, 10.0, 12.0) == 0.0
    assert nb.per_second(5, 3.0, 3.0) == 0.0
    assert nb.expected_notifications(600, 1) == 1200
    assert nb.expected_notifications(100, 2) == 400


def test_tail_counts_missing_items_as_infinitely_late():
    values = [0.01 * i for i in range(1, 101)]
    assert nb.tail(values, 100, 99) == pytest.approx(0.99)
    assert nb.tail(values, 101, 99) == pytest.approx(1.0)  # one missing out of 101: still inside p99
    assert math.isinf(nb.tail(values, 110, 99))
    assert math.isinf(nb.tail([], 5, 50))


def test_latencies_map_command_and_device_keys_to_their_confirmation_at_first_arrival():
    index = nb.key_index(["cmd_a", "cmd_b"])
    sent = {0: 100.0, 1: 101.0}
    records = [(100.5, "msg_1", "command.succeeded", "cmd_a"), (101.25, "msg_2", "lock.state_changed", "dev_1"),
               (102.0, "msg_3", "command.succeeded", "cmd_unknown"), (103.0, None, None, None),
               (104.0, "msg_1", "command.succeeded", "cmd_a")]  # sent again: counts once, at its first arrival
    assert sorted(nb.latencies(records, sent, index)) == [0.25, 0.5]


def test_throughput_counts_distinct_notifications_until_the_last_first_arrival():
    records = [(10.5, "msg_1", "command.succeeded", "cmd_a"), (11.0, "msg_2", "lock.state_changed", "dev_0"),
               (14.0, "msg_1", "command.succeeded", "cmd_a")]
    t = nb.Throughput.from_records("x", 2, 10.0, records)
    assert t.complete and t.arrived == 2 and t.requests == 3 and t.duplicates == 1 and t.webhook_ids == 2
    assert t.seconds == 1.0 and t.rate == 2.0
    assert t.first_after == 0.5 and t.span == 0.5
    assert t.by_type == {"command.succeeded": 1, "lock.state_changed": 1}
    short = nb.Throughput.from_records("x", 3, 10.0, records, waited_until=20.0)
    assert not short.complete and short.seconds == 10.0  # incomplete: the rate over the whole wait


def test_goals_compare_ratios_or_absolute_values():
    assert nb.Goal("b", 1500, 0.5, True, baseline=2000).passed
    assert not nb.Goal("b", 900, 0.5, True, baseline=2000).passed
    assert nb.Goal("p99", 0.08, 0.100, False, unit="ms").passed
    assert not nb.Goal("p99", math.inf, 0.100, False, unit="ms").passed
    assert not nb.Goal("left", 3, 0, False).passed and nb.Goal("left", 0, 0, False).passed
    assert nb.Goal("iso", 0.03, 2, False, baseline=0.02).passed
    assert not nb.Goal("iso", 0.05, 2, False, baseline=0.02).passed
    # a baseline that never completed proves nothing
    assert not nb.Goal("iso", 0.03, 2, False, baseline=math.inf).passed
    table = nb.summary([nb.Goal("iso", 0.05, 2, False, baseline=0.02, unit="ms"),
                        nb.Goal("p99", math.inf, 0.1, False, unit="ms")]).markdown()
    assert "| iso | 50.0 ms | 20.0 ms | 2.50x | <= 2x | FAIL |" in table
    assert "| p99 | > run end | - | - | <= 100 ms | FAIL |" in table


def test_sink_reads_lockhook_webhook_and_slack_bodies():
    body = json.dumps({"type": "command.succeeded", "id": "msg_1", "created_at": "x",
                       "data": {"command_id": "cmd_1", "device_id": "dev_7"}}).encode()
    assert parse(body) == ("command.succeeded", "cmd_1")
    body = json.dumps({"type": "lock.state_changed", "id": "msg_2", "data": {"device_id": "dev_7"}}).encode()
    assert parse(body) == ("lock.state_changed", "dev_7")
    command = Outcome("command.succeeded", 0, command_id="cmd_9", device_id="dev_9")
    text = slack_body(command, {"command_id": "cmd_9", "device_id": "dev_9", "action": "lock"})
    assert parse(text.encode()) == ("command.succeeded", "cmd_9")
    state = Outcome("lock.state_changed", 0, device_id="dev_9", event="evt_1")
    assert parse(slack_body(state, {"device_id": "dev_9", "locked": True}).encode()) == ("lock.state_changed",
                                                                                           "dev_9")
    assert parse(b"not json") == (None, None)


def test_sink_recorder_counts_requests_and_distinct_notifications():
    rec = Recorder()
    body = json.dumps({"type": "command.succeeded", "id": "msg_1", "data": {"command_id": "cmd_1"}}).encode()
    for _ in range(2):
        rec.add("/hook", {"webhook-id": "msg_1"}, body)
    rec.add("/hook", {"webhook-id": "msg_2"}, b'{"text": "lock.state_changed: device dev_1 is locked (via x)"}')
    assert len(rec.records["/hook"]) == 3 and len(rec.distinct["/hook"]) == 2
    assert [r[1:] for r in rec.records["/hook"]][-1] == ("msg_2", "lock.state_changed", "dev_1")


@pytest.fixture(scope="module")
def bench_ports(tmp_path_factory):
    """bench.common takes the lowest free port of its range: one xdist worker at a time starts its servers."""
    with exclusive("bench-ports", run_dir(tmp_path_factory)):
        yield


@pytest.fixture(scope="module")
def bench_redis(bench_ports):
    r = BenchRedis()
    yield r
    r.stop()


@pytest.fixture(scope="module")
def sink(bench_ports):
    s = nb.Sink()
    yield s
    s.stop()


def test_baselines_send_signed_bodies_to_the_sink(bench_redis, sink):
    a = nb.burst_baseline(bench_redis, sink, "a", 30, timeout_s=30)
    b = nb.burst_baseline(bench_redis, sink, "b", 200, timeout_s=30)
    for t, count in ((a, 30), (b, 200)):
        assert t.complete and t.arrived == count and t.webhook_ids == count and t.errors == 0 and not t.duplicates
        assert t.by_type == {"command.succeeded": count // 2, "lock.state_changed": count // 2}
        assert t.rate > 0


def test_lockhook_burst_and_latency_run_count_every_notification(bench_redis, sink):
    burst = nb.burst_lockhook(bench_redis, sink, 20, timeout_s=60)
    assert burst.complete and burst.webhook_ids == 40 and burst.errors == 0 and burst.duplicates == 0
    assert burst.by_type == {"command.succeeded": 20, "lock.state_changed": 20}
    run = nb.latency_run(bench_redis, sink, "test", rate=20, seconds=1, drain_s=30, webhook_paths=["/t/webhook"],
                         slack_path="/t/slack")
    assert run.errors == 0 and run.webhook_ids == 40 and run.duplicates() == 0 and run.left_after_1s >= 0
    assert {p: len(v) for p, v in run.lat.items()} == {"/t/webhook": 40, "/t/slack": 40}
    assert all(x > 0 for x in run.all_latencies())
