"""Issuing clients (Seam SDK against the fake, a local device cloud) and the Seam poll job racing webhooks."""

from __future__ import annotations

import json
import threading

import pytest

from lockhook.commands import issuing
from lockhook.commands.store import CommandStore
from lockhook.errors import UpstreamError, ValidationFailed
from tests.support.config import DEVICE_CLOUD_API_KEY, SEAM_API_KEY, configured, signed
from tests.support.processes import SEAM_DEVICE
from tests.support.servers import closed_port_url
from workers.drain import drain
from workers.issuing import poll_seam_command


@pytest.fixture
def seam_settings(settings, fake_seam):
    return configured(settings, seam_api_key=SEAM_API_KEY, seam_endpoint=fake_seam.url)


def seam_command(r, seam_settings, action="lock") -> str:
    """Reserve then issue, as POST /commands does."""
    store = CommandStore(r)
    command, _ = store.register(SEAM_DEVICE, action, "seam", timeout_s=60)
    issued = issuing.issue_seam(seam_settings, SEAM_DEVICE, action)
    store.attach_ids(command.command_id, action_attempt_id=issued.action_attempt_id)
    return command.command_id


def command_outcomes(r, command_id: str) -> list[str]:
    """Each resolution the command went through (its timeline; outbox entries are deleted once dispatched)."""
    return ["command." + e["status"] for e in CommandStore(r).timeline(command_id) if e["kind"] == "resolved"]


def webhook_event(client, attempt_id: str, succeeded: bool, event_id: str, action="lock") -> None:
    kind = "succeeded" if succeeded else "failed"
    event = {"event_id": event_id, "event_type": f"action_attempt.{action}_door.{kind}", "workspace_id": "ws",
             "action_attempt_id": attempt_id, "action_type": f"{action.upper()}_DOOR",
             "status": "success" if succeeded else "error", "created_at": "2025-05-22T10:45:12Z"}
    body = json.dumps(event).encode()
    assert client.post("/webhooks/seam", content=body, headers=signed(body, "msg_" + event_id)).status_code == 202


# -- Seam client ------------------------------------------------------------------------------------

def test_seam_issue_returns_a_pending_attempt(seam_settings):
    issued = issuing.issue_seam(seam_settings, SEAM_DEVICE, "unlock")
    assert issued.status == "pending" and issued.action_attempt_id.startswith("action_attempt")


def test_seam_refusal_carries_the_error_type(seam_settings):
    with pytest.raises(issuing.Refused) as caught:
        issuing.issue_seam(seam_settings, "missing_device", "lock")
    assert caught.value.error_code == "device_not_found"


def test_seam_bad_key_is_a_refusal_and_the_key_never_shows(seam_settings):
    bad = configured(seam_settings, seam_api_key="seam_wrongkey_token")
    with pytest.raises(issuing.Refused) as caught:
        issuing.issue_seam(bad, SEAM_DEVICE, "lock")
    assert caught.value.error_code == "unauthorized" and "seam_wrongkey_token" not in str(caught.value.to_json())


def test_seam_unreachable_is_an_upstream_error(settings):
    down = configured(settings, seam_api_key=SEAM_API_KEY, seam_endpoint=closed_port_url())
    with pytest.raises(UpstreamError):
        issuing.issue_seam(down, SEAM_DEVICE, "lock")


def test_seam_without_a_usable_api_key_is_not_configured(settings):
    with pytest.raises(issuing.IssuerNotConfigured):
        issuing.seam_client(settings)
    with pytest.raises(issuing.IssuerNotConfigured):
        issuing.seam_client(configured(settings, seam_api_key="not-a-seam-key"))


# -- poll job ---------------------------------------------------------------------------------------

def test_poll_resolves_a_pending_seam_command(r, seam_settings):
    command_id = seam_command(r, seam_settings)
    assert poll_seam_command(command_id, connection=r, settings=seam_settings) == "command.succeeded"
    command = CommandStore(r).get(command_id)
    assert command.status == "succeeded" and command.resolved_by == "poll"
    assert poll_seam_command(command_id, connection=r, settings=seam_settings) == "noop"
    assert command_outcomes(r, command_id) == ["command.succeeded"]


def test_poll_of_an_error_attempt_fails_with_its_error_type(r, seam_settings, fake_seam):
    command_id = seam_command(r, seam_settings)
    attempt = CommandStore(r).get(command_id).action_attempt_id
    fake_seam.set_attempt(attempt, "error", {"type": "lock_jammed", "message": "the bolt is jammed"})
    assert poll_seam_command(command_id, connection=r, settings=seam_settings) == "command.failed"
    command = CommandStore(r).get(command_id)
    assert (command.status, command.error_code, command.error_message) == ("failed", "lock_jammed",
                                                                          "the bolt is jammed")


def test_poll_of_a_still_pending_attempt_polls_again_later(r, seam_settings, fake_seam):
    command_id = seam_command(r, seam_settings)
    fake_seam.set_attempt(CommandStore(r).get(command_id).action_attempt_id, "pending")
    assert poll_seam_command(command_id, connection=r, settings=seam_settings) == "pending"
    assert CommandStore(r).get(command_id).status == "pending"
    scheduled = [r.hget(f"rq:job:{j.decode()}", "description") for j in r.zrange("rq:scheduled:polls", 0, -1)]
    assert any(b"poll_seam_command" in (d or b"") and command_id.encode() in d for d in scheduled)


def test_poll_ignores_unknown_and_non_seam_commands(r, seam_settings):
    assert poll_seam_command("cmd_missing", connection=r, settings=seam_settings) == "noop"
    command, _ = CommandStore(r).register("dev", "lock", "external", action_attempt_id="x")
    assert poll_seam_command(command.command_id, connection=r, settings=seam_settings) == "noop"


def test_webhook_first_then_poll_resolves_once(client, r, seam_settings):
    command_id = seam_command(r, seam_settings)
    attempt = CommandStore(r).get(command_id).action_attempt_id
    webhook_event(client, attempt, succeeded=True, event_id="evt_first")
    drain(r)
    assert poll_seam_command(command_id, connection=r, settings=seam_settings) == "noop"
    command = CommandStore(r).get(command_id)
    assert (command.resolved_by, command.resolved_via) == ("evt_first", "webhook")
    assert command_outcomes(r, command_id) == ["command.succeeded"]


def test_poll_first_then_webhook_resolves_once(client, r, seam_settings, fake_seam):
    command_id = seam_command(r, seam_settings)
    attempt = CommandStore(r).get(command_id).action_attempt_id
    fake_seam.set_attempt(attempt, "error", {"type": "device_offline", "message": "offline"})
    assert poll_seam_command(command_id, connection=r, settings=seam_settings) == "command.failed"
    webhook_event(client, attempt, succeeded=False, event_id="evt_second")
    drain(r)
    command = CommandStore(r).get(command_id)
    assert (command.status, command.resolved_by, command.error_code) == ("failed", "poll", "device_offline")
    assert command_outcomes(r, command_id) == ["command.failed"]


def test_webhook_and_poll_racing_resolve_each_command_once(client, r, seam_settings):
    ids = [seam_command(r, seam_settings) for _ in range(10)]
    store = CommandStore(r)
    for n, command_id in enumerate(ids):
        webhook_event(client, store.get(command_id).action_attempt_id, succeeded=True, event_id=f"evt_race_{n}")
    threads = [threading.Thread(target=drain, args=(r,))]
    threads += [threading.Thread(target=poll_seam_command, args=(c,), kwargs={"connection": r,
                                                                           "settings": seam_settings}) for c in ids]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    for command_id in ids:
        assert store.get(command_id).status == "succeeded"
        assert command_outcomes(r, command_id) == ["command.succeeded"]


# -- device cloud client ----------------------------------------------------------------------------

def test_device_cloud_accepts_and_returns_ids(settings, device_cloud):
    dc = configured(settings, device_cloud_url=device_cloud.url + "/",
                                     device_cloud_api_key=DEVICE_CLOUD_API_KEY)
    with pytest.raises(ValidationFailed):  # outside the id pattern: never turned into a path
        issuing.issue_device_cloud(dc, "lock/../weird id", "lock", "req_1")
    issued = issuing.issue_device_cloud(dc, "lock.front~1", "lock", "req_1")
    assert issued.action_id == "act_1" and issued.custom_id == "req_1"
    assert device_cloud.calls[0]["path"] == "/locks/lock.front~1/actions"


def test_device_cloud_refusal_is_typed(settings, device_cloud):
    device_cloud.refuse["jammed"] = ("BOLT_OBSTRUCTED", "The lock mechanism is obstructed.")
    dc = configured(settings, device_cloud_url=device_cloud.url)
    with pytest.raises(issuing.Refused) as caught:
        issuing.issue_device_cloud(dc, "jammed", "lock", "req_2")
    assert (caught.value.error_code, caught.value.message) == ("BOLT_OBSTRUCTED", "The lock mechanism is obstructed.")


def test_device_cloud_4xx_without_error_code_is_a_refusal(settings, device_cloud):
    dc = configured(settings, device_cloud_url=device_cloud.url + "/wrong")
    with pytest.raises(issuing.Refused) as caught:
        issuing.issue_device_cloud(dc, "x", "lock", "req_3")
    assert caught.value.error_code in ("NOT_FOUND", "http_404")


def test_device_cloud_retries_are_bounded(settings, device_cloud):
    device_cloud.fail_next = 100
    dc = configured(settings, device_cloud_url=device_cloud.url, device_cloud_attempts=3)
    with pytest.raises(UpstreamError):
        issuing.issue_device_cloud(dc, "x", "lock", "req_4")
    assert len(device_cloud.calls) == 3 and {c["body"]["custom_id"] for c in device_cloud.calls} == {"req_4"}
