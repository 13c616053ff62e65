"""Agent I/O at scale, on the worker the Procfile starts (`agents`: Celery's gevent pool).

The fake agent holds every request until released, so these tests assert what is in flight at
once (concurrency), never how long anything took (that is bench/agents.py's job).
"""

from __future__ import annotations

import json

import pytest
from django.db import connection
from django.test import Client

from channels_app.models import ChannelMessage, Direction, MessageStatus
from schedules.models import RunStatus, Schedule, ScheduleRun
from schedules.services import schedule_run_now
from tests.channels_app.helpers import telegram_channel, telegram_update
from tests.support.factories import make_workspace
from tests.support.fake_http import FakeHttpServer, json_response
from tests.support.held_agent import HeldAgent
from tests.support.worker import run_procfile_process, run_relay, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

APPLICATION_NAME = "integrations-agents"  # the Procfile's agents line names its connections


@pytest.fixture
def platform():
    with FakeHttpServer() as server:
        server.route_prefix("POST", "/bot", json_response({"ok": True, "result": True}))
        yield server


@pytest.fixture
def agents_worker(platform, settings):
    """The relay and the Procfile's two workers: `agents` (agent calls) and `worker` (the rest,
    here the replies' sends)."""
    settings.TELEGRAM_API_BASE_URL = platform.url
    env = {"TELEGRAM_API_BASE_URL": platform.url, "SCHEDULE_BUSY_GRACE_SECONDS": "600"}
    with (
        run_relay(env=env),
        run_procfile_process("worker", env=env),
        run_procfile_process("agents", env=env) as process,
    ):
        yield process


def _workspace_with_schedule(agent: HeldAgent, name: str, **fields) -> Schedule:
    workspace = make_workspace(name, url=agent.url_for(name), a2a_protocol="1.0", **fields)
    return Schedule.objects.create(
        workspace=workspace, name=f"{name}-job", expression="0 9 * * *", prompt="hi"
    )


def _statuses(**filters) -> list[str]:
    return list(ScheduleRun.objects.filter(**filters).values_list("status", flat=True))


def _agent_connections() -> int:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s AND datname = %s",
            [APPLICATION_NAME, connection.settings_dict["NAME"]],
        )
        return cursor.fetchone()[0]


def test_forty_run_now_are_in_flight_at_once(agents_worker, api, admin_token):
    with HeldAgent() as agent:
        schedules = [_workspace_with_schedule(agent, f"ws-{i}") for i in range(40)]
        for schedule in schedules:
            response = api.post(
                f"/workspaces/{schedule.workspace_id}/schedules/{schedule.pk}/run",
                HTTP_AUTHORIZATION=f"Bearer {admin_token}",
            )
            assert response.status_code == 202, response.content
        wait_for(lambda: agent.in_flight() == 40, timeout=60, message="40 prompts in flight")
        assert _statuses() == [RunStatus.RUNNING] * 40
        agent.release()
        wait_for(
            lambda: _statuses(status=RunStatus.SUCCESS).__len__() == 40, timeout=60, message="40 successes"
        )
    assert agent.peak_total == 40
    assert sorted(agent.message_ids()) == sorted(
        str(pk) for pk in ScheduleRun.objects.values_list("pk", flat=True)
    )


def test_twenty_chats_are_in_flight_at_once_and_all_answered(agents_worker, platform):
    client = Client()
    with HeldAgent(reply="the answer") as agent:
        channels = []
        for i in range(20):
            workspace = make_workspace(f"chat-{i}", url=agent.url_for(f"chat-{i}"), a2a_protocol="1.0")
            # One bot per workspace (chats of a shared bot would fan out to every channel of it).
            channels.append(
                telegram_channel(
                    workspace,
                    bot_token=f"{1000 + i}:AAbot-token-{i:02d}-abcdefghijklmnop",
                    webhook_secret=f"secret-{i:02d}-abcdefgh",
                )
            )
        for i, channel in enumerate(channels):
            response = client.post(
                f"/webhooks/telegram?channel={channel.pk}",
                data=json.dumps(telegram_update(1000 + i, text=f"question {i}", chat_id=500 + i)),
                content_type="application/json",
                HTTP_X_TELEGRAM_BOT_API_SECRET_TOKEN=f"secret-{i:02d}-abcdefgh",
            )
            assert response.status_code == 200, response.content
        wait_for(lambda: agent.in_flight() == 20, timeout=60, message="20 chats in flight")
        agent.release()

        def sent() -> list[int]:
            with platform.lock:
                return [r.json()["chat_id"] for r in platform.requests if r.path.endswith("/sendMessage")]

        wait_for(lambda: len(sent()) == 20, timeout=60, message="20 replies sent")
    assert sorted(int(chat) for chat in sent()) == list(range(500, 520))
    outbound = ChannelMessage.objects.filter(direction=Direction.OUTBOUND)
    wait_for(
        lambda: outbound.filter(status=MessageStatus.SENT).count() == 20, message="replies recorded sent"
    )
    assert set(outbound.values_list("text", flat=True)) == {"the answer"}


def test_a_stuck_tenant_delays_nobody_else(agents_worker):
    with HeldAgent(hold=lambda path: path.endswith("/stuck")) as agent:
        stuck = _workspace_with_schedule(agent, "stuck", max_concurrent_tasks=30)
        for _ in range(30):
            schedule_run_now(schedule=stuck)
        wait_for(lambda: agent.in_flight("/agents/stuck") == 30, timeout=60, message="30 held calls")
        healthy = _workspace_with_schedule(agent, "healthy")
        run = schedule_run_now(schedule=healthy)
        wait_for(
            lambda: ScheduleRun.objects.get(pk=run.pk).status == RunStatus.SUCCESS,
            timeout=60,
            message="the healthy run",
        )
        assert agent.in_flight("/agents/stuck") == 30  # still held: the healthy run did not wait
        agent.release()
        wait_for(lambda: len(_statuses(schedule=stuck, status=RunStatus.SUCCESS)) == 30, timeout=60)


def test_max_concurrent_tasks_bounds_what_is_in_flight(agents_worker):
    with HeldAgent() as agent:
        schedule = _workspace_with_schedule(agent, "pair", max_concurrent_tasks=2)
        for _ in range(10):
            schedule_run_now(schedule=schedule)
        wait_for(lambda: agent.in_flight("/agents/pair") == 2, timeout=60, message="two in flight")
        # The other eight wait as due rows (busy), re-checked; none reaches the agent meanwhile.
        wait_for(lambda: ScheduleRun.objects.filter(busy_since__isnull=False).count() == 8, timeout=30)
        assert agent.in_flight("/agents/pair") == 2
        agent.release()
        wait_for(lambda: len(_statuses(status=RunStatus.SUCCESS)) == 10, timeout=120, message="ten successes")
    assert agent.peak["/agents/pair"] == 2


def test_two_hundred_held_calls_use_at_most_twenty_connections(agents_worker):
    with HeldAgent() as agent:
        schedules = [_workspace_with_schedule(agent, f"w{i}") for i in range(200)]
        for schedule in schedules:
            schedule_run_now(schedule=schedule)
        peak = 0

        def all_held() -> bool:
            nonlocal peak
            peak = max(peak, _agent_connections())
            return agent.in_flight() == 200

        wait_for(all_held, timeout=90, interval=0.05, message="200 held calls")
        for _ in range(20):  # and while they stay held
            peak = max(peak, _agent_connections())
        assert 0 < peak <= 20
        agent.release()
        wait_for(lambda: len(_statuses(status=RunStatus.SUCCESS)) == 200, timeout=90, message="200 successes")
