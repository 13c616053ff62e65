"""Interop with real agents built with the official `a2a-sdk` 1.x (issue 13).

The matrix: agent kind (default 1.0-only server, 1.0 with 0.3 compatibility, a Task with
artifacts, a task that ends failed) × delivery kind (schedule run, inbound chat message,
approval notice) × the workspace's `a2a_protocol` (auto, 1.0, 0.3). Each delivery runs the
service functions in-process against the agent on 127.0.0.1, and the version used is recorded.
"""

from __future__ import annotations

import pytest
from django.core.cache import cache
from django.utils import timezone

from access.principal import Principal
from approvals import services as approval_services
from approvals.models import ApprovalEvent
from channels_app import services as channel_services
from channels_app.models import ChannelMessage
from schedules import services as schedule_services
from schedules.models import ScheduleRun
from tests.channels_app.helpers import post_telegram, telegram_channel, telegram_update
from tests.support.factories import bearer, make_workspace, make_workspace_token
from tests.support.sdk_agents import FAILURE_TEXT, KINDS, start_sdk_agent
from tests.support.worker import run_due_jobs

pytestmark = pytest.mark.django_db

PROMPT = "status report please"
CARD = ("GET", "/.well-known/agent-card.json", "")
OPERATOR = Principal(kind="workspace_token", name="operator-1", role="operator")


@pytest.fixture(autouse=True)
def _no_remembered_versions():
    cache.clear()
    yield
    cache.clear()


def expected(kind: str, setting: str) -> tuple[str, str | None, str | None]:
    """(version sent, reply text, failure reason) for an agent `kind` and a workspace setting."""
    if setting == "0.3" and kind != "compat":
        return "0.3", None, "agent returned JSON-RPC error -32601 (method not found)"
    version = "0.3" if setting == "0.3" else "1.0"
    if kind == "failed":
        return version, None, "agent task ended as failed"
    if kind == "task":
        return version, f"first: {PROMPT}\nsecond part", None
    return version, f"echo: {PROMPT}", None


def expected_requests(setting: str, version: str) -> list[tuple[str, str, str]]:
    post = ("POST", "/", version)
    return [CARD, post] if setting == "auto" else [post]


def _requests(agent) -> list[tuple[str, str, str]]:
    return [(r["method"], r["path"], r["version"]) for r in agent.requests]


def _schedule_run(workspace) -> ScheduleRun:
    schedule = schedule_services.schedule_create(workspace=workspace, expression="0 9 * * *", prompt=PROMPT)
    run = ScheduleRun.objects.create(schedule=schedule, scheduled_for=timezone.now().replace(microsecond=0))
    run_due_jobs()  # the relay publishes the run, the task delivers it
    run.refresh_from_db()
    return run


@pytest.mark.parametrize("setting", ["auto", "1.0", "0.3"])
@pytest.mark.parametrize("kind", KINDS)
def test_schedule_run(kind, setting):
    version, text, reason = expected(kind, setting)
    with start_sdk_agent(kind) as agent:
        workspace = make_workspace("sdk", url=agent.url, a2a_protocol=setting)
        run = _schedule_run(workspace)
    assert run.a2a_protocol == version
    assert _requests(agent) == expected_requests(setting, version)
    if reason is None:
        assert (run.status, run.response_excerpt, run.error_detail) == ("success", text, None)
        assert [m["messageId"] for m in agent.messages] == [str(run.pk)]
        assert agent.messages[0]["text"] == PROMPT
        assert agent.messages[0]["metadata"]["run_id"] == str(run.pk)
    else:
        assert (run.status, run.error_detail) == ("error", reason)
        assert FAILURE_TEXT not in run.error_detail


@pytest.mark.parametrize("setting", ["auto", "1.0", "0.3"])
@pytest.mark.parametrize("kind", KINDS)
def test_inbound_chat_message(client, kind, setting):
    version, text, reason = expected(kind, setting)
    with start_sdk_agent(kind) as agent:
        workspace = make_workspace("sdk", url=agent.url, a2a_protocol=setting)
        channel = telegram_channel(workspace)
        assert post_telegram(client, telegram_update(1, text=PROMPT)).status_code == 200
        message = ChannelMessage.objects.get(channel=channel, direction="inbound")
        channel_services.message_process_inbound(message_id=message.pk)
    message.refresh_from_db()
    assert message.a2a_protocol == version
    assert _requests(agent) == expected_requests(setting, version)
    reply = ChannelMessage.objects.filter(reply_to=message).first()
    if reason is None:
        assert reply is not None and reply.text == text
        assert [m["messageId"] for m in agent.messages] == [str(message.pk)]
        assert agent.messages[0]["metadata"]["chat_id"] == "42"
    else:
        assert reply is None
        assert (message.status, message.error) == ("failed", reason)


@pytest.mark.parametrize("setting", ["auto", "1.0", "0.3"])
@pytest.mark.parametrize("kind", KINDS)
def test_approval_notice(kind, setting):
    version, _text, reason = expected(kind, setting)
    with start_sdk_agent(kind) as agent:
        workspace = make_workspace("sdk", url=agent.url, a2a_protocol=setting)
        approval = approval_services.approval_create(
            workspace=workspace, action="deploy", created_by="agent-1"
        )
        approval_services.approval_decide(approval=approval, decision="approve", actor=OPERATOR)
        outcome = approval_services.approval_notify(approval_id=approval.id)
    assert _requests(agent) == expected_requests(setting, version)
    approval.refresh_from_db()
    if reason is None:
        assert outcome == "sent" and approval.notified_at is not None
        event = ApprovalEvent.objects.get(approval=approval, kind="notified")
        assert event.details["a2a_protocol"] == version
        assert [m["messageId"] for m in agent.messages] == [event.details["message_id"]]
        assert agent.messages[0]["metadata"]["status"] == "approved"
    else:
        assert outcome == "failed" and approval.notify_error == reason
        event = ApprovalEvent.objects.get(approval=approval, kind="notify_failed")
        assert event.details == {"reason": reason, "a2a_protocol": version}


@pytest.mark.parametrize("kind", ["default", "compat"])
def test_auto_without_a_card_speaks_1_0_first_and_remembers_it(kind):
    with start_sdk_agent(kind, card=False) as agent:
        workspace = make_workspace("sdk", url=agent.url)
        first, second = _schedule_run(workspace), _schedule_run(workspace)
    assert (first.status, first.a2a_protocol, second.status, second.a2a_protocol) == (
        "success",
        "1.0",
        "success",
        "1.0",
    )
    cards = [("GET", "/.well-known/agent-card.json", ""), ("GET", "/.well-known/agent.json", "")]
    assert _requests(agent) == [*cards, ("POST", "/", "1.0"), ("POST", "/", "1.0")]


def test_versions_in_the_run_history_and_message_log_api(api):
    with start_sdk_agent("compat") as agent:
        workspace = make_workspace("sdk", url=agent.url, a2a_protocol="0.3")
        run = _schedule_run(workspace)
        api.credentials(**bearer(make_workspace_token(workspace)))
        history = api.get(f"/workspaces/{workspace.id}/schedules/{run.schedule_id}/history").json()
        assert [(r["id"], r["status"], r["a2a_protocol"]) for r in history] == [
            (str(run.pk), "success", "0.3")
        ]
        channel = telegram_channel(workspace)
        post_telegram(api, telegram_update(1, text=PROMPT))
        inbound = ChannelMessage.objects.get(channel=channel, direction="inbound")
        channel_services.message_process_inbound(message_id=inbound.pk)
    log = api.get(f"/workspaces/{workspace.id}/channels/{channel.id}/messages").json()
    by_direction = {m["direction"]: m for m in log}
    assert by_direction["inbound"]["a2a_protocol"] == "0.3"
    assert by_direction["outbound"]["a2a_protocol"] == ""  # a reply to the chat is not an A2A request
