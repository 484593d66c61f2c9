"""Property: any interleaving of registrations, duplicated and reordered deliveries resolves each command once."""

import json
import time

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lockhook import keys
from lockhook.commands.store import CommandStore
from lockhook.ingest.inbox import retention_min_id
from lockhook.outcomes import Outcome
from lockhook.processing.locks import lock_state
from lockhook.scripts import Scripts
from lockhook.streams import ensure_group
from workers.drain import drain

DEVICE = "dev_p"
BASE_MS = 1_700_000_000_000


def ingest(r, delivery_id: str, event: dict) -> None:
    """The receiver's atomic ingest step, without HTTP (same script, same stream)."""
    now = int(time.time() * 1000)
    Scripts(r).ingest(args=Scripts.args(now, 3600, retention_min_id(now, 3600), 1, "device-cloud", delivery_id,
                                        "event", "{}", json.dumps(event)))


@st.composite
def scenarios(draw):
    n = draw(st.integers(1, 4))
    commands = []
    steps = []
    for i in range(n):
        action = draw(st.sampled_from(["lock", "unlock"]))
        success = draw(st.booleans())
        occurred = BASE_MS + draw(st.integers(0, 10_000)) * 10 + i  # distinct instants
        event = {"event_type": "lock.action_completed", "device_id": DEVICE, "action_id": f"act_{i}",
                 "custom_id": f"req_{i}", "action": action, "status": "success" if success else "failed",
                 "error_code": None if success else "LOCK_JAMMED",
                 "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(occurred / 1000))
                 + f".{occurred % 1000:03d}Z"}
        commands.append((i, action, success, occurred))
        steps.append(("register", i, action))
        copies = draw(st.integers(1, 3))
        for c in range(copies):
            # same delivery id (a Svix retry) or a fresh one (the sender re-sent the event)
            same = draw(st.booleans())
            steps.append(("deliver", f"d_{i}" if same or c == 0 else f"d_{i}_{c}", event))
    order = draw(st.permutations(steps))
    drains = draw(st.lists(st.integers(0, len(order)), max_size=4))
    return commands, order, set(drains)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(scenario=scenarios())
def test_random_interleavings_resolve_each_command_exactly_once(r, scenario):
    commands, order, drain_points = scenario
    r.flushall()
    ensure_group(r, keys.INBOX, keys.INBOX_GROUP)
    ensure_group(r, keys.OUTBOX, keys.OUTBOX_GROUP)
    store = CommandStore(r)
    ids = {}
    for position, step in enumerate(order):
        if position in drain_points:
            drain(r)
        if step[0] == "register":
            _, i, action = step
            cmd, _ = store.register(DEVICE, action, "device_cloud", custom_id=f"req_{i}", timeout_s=3600,
                                    schedule_expiry=False)
            ids[i] = cmd.command_id
        else:
            ingest(r, step[1], step[2])
    drain(r)
    seen = [Outcome.from_stream(sid, f) for sid, f in r.xrange(keys.OUTBOX)]  # no notifier here: all kept

    for i, _action, success, _ in commands:
        cmd = store.get(ids[i])
        assert cmd.status == ("succeeded" if success else "failed")
        resolutions = [o for o in seen if o.command_id == ids[i]]
        assert len(resolutions) == 1, resolutions
    succeeded = [c for c in commands if c[2]]
    state = lock_state(r, DEVICE)
    if succeeded:
        newest = max(succeeded, key=lambda c: c[3])
        assert state["locked"] is (newest[1] == "lock")
    else:
        assert state is None
