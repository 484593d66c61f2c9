"""The notifications bench: its arithmetic, the sink's reading of lockhook's bodies, and small runs of its pieces."""

from __future__ import annotations

import json
import math

import pytest

from bench import notifications as nb
from bench.common import BenchRedis
from bench.notify_sink import parse
from lockhook.notifications.payloads import slack_body
from lockhook.outcomes import Outcome


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


def test_latencies_map_command_and_device_keys_to_their_confirmation():
    index = nb.key_index(["cmd_a", "cmd_b"])
    sent = {0: 100.0, 1: 101.0}
    records = [(100.5, "msg_1", "command.succeeded", "cmd_a"), (101.25, "msg_2", "lock.state_changed", "dev_1"),
               (102.0, "msg_3", "command.succeeded", "cmd_unknown"), (103.0, None, None, None)]
    assert nb.latencies(records, sent, index) == [0.5, 0.25]


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


@pytest.fixture(scope="module")
def bench_redis():
    r = BenchRedis()
    yield r
    r.stop()


@pytest.fixture(scope="module")
def sink():
    s = nb.Sink()
    yield s
    s.stop()


def test_baselines_send_signed_bodies_to_the_sink(bench_redis, sink):
    a = nb.burst_baseline(bench_redis, sink, "a", 30, timeout_s=30)
    b = nb.burst_baseline(bench_redis, sink, "b", 200, timeout_s=30)
    for t, count in ((a, 30), (b, 200)):
        assert t.complete and t.arrived == count and t.unique_ids == count and t.errors == 0
        assert t.by_type == {"command.succeeded": count // 2, "lock.state_changed": count // 2}
        assert t.rate > 0


def test_lockhook_burst_and_latency_run_count_every_notification(bench_redis, sink):
    burst = nb.burst_lockhook(bench_redis, sink, 20, timeout_s=60)
    assert burst.complete and burst.unique_ids == 40 and burst.errors == 0
    assert burst.by_type == {"command.succeeded": 20, "lock.state_changed": 20}
    run = nb.latency_run(bench_redis, sink, "test", rate=20, seconds=1, drain_s=30, webhook_paths=["/t/webhook"],
                         slack_path="/t/slack")
    assert run.errors == 0 and run.unique_ids == 40
    assert {p: len(v) for p, v in run.lat.items()} == {"/t/webhook": 40, "/t/slack": 40}
    assert all(x > 0 for x in run.all_latencies())
