"""Schedule results posted to chat channels (`deliver_to`): through the normal outbound path,
marked with the schedule's name; only channels of the same workspace."""

from __future__ import annotations

import pytest
from django.utils import timezone

from channels_app.models import ChannelMessage
from channels_app.services import message_send_attempt
from common.errors import ApplicationError
from schedules import services
from schedules.models import ScheduleRun
from tests.channels_app.helpers import TELEGRAM_TOKEN, slack_channel, telegram_channel
from tests.support.factories import bearer, make_workspace, make_workspace_token
from tests.support.fake_http import json_response
from tests.support.worker import run_due_jobs

pytestmark = pytest.mark.django_db


@pytest.fixture
def platform(fake_http, settings):
    settings.TELEGRAM_API_BASE_URL = fake_http.url
    settings.SLACK_API_BASE_URL = fake_http.url
    fake_http.route("POST", f"/bot{TELEGRAM_TOKEN}/sendMessage", json_response({"ok": True, "result": {}}))
    fake_http.route("POST", "/chat.postMessage", json_response({"ok": True, "ts": "1.1"}))
    return fake_http


def _run(schedule) -> ScheduleRun:
    run = ScheduleRun.objects.create(schedule=schedule, scheduled_for=timezone.now().replace(microsecond=0))
    run_due_jobs()  # the relay publishes the run, the task delivers it
    return run


def test_a_run_result_is_posted_to_each_channel(echo_agent, platform):
    workspace = make_workspace("reporter", url=echo_agent.url)
    telegram = telegram_channel(workspace, chat_ids=["-100"])
    slack = slack_channel(workspace, channel_id="C222")
    schedule = services.schedule_create(
        workspace=workspace,
        expression="0 9 * * *",
        prompt="Daily summary please",
        name="daily-summary",
        deliver_to=[str(telegram.pk), str(slack.pk), str(telegram.pk)],
    )
    assert schedule.deliver_to == [str(telegram.pk), str(slack.pk)]
    run = _run(schedule)
    messages = list(ChannelMessage.objects.filter(direction="outbound").order_by("channel__platform"))
    assert [(m.channel_id, m.chat_id, m.text) for m in messages] == [
        (slack.pk, "C222", "[daily-summary] Daily summary please"),
        (telegram.pk, "-100", "[daily-summary] Daily summary please"),
    ]
    assert messages[0].meta == {"service": "schedule", "schedule_id": str(schedule.pk), "run_id": str(run.pk)}
    for message in messages:
        message_send_attempt(message_id=message.pk)
    sent = {r.path: r.json() for r in platform.requests}
    assert sent[f"/bot{TELEGRAM_TOKEN}/sendMessage"] == {
        "chat_id": "-100",
        "text": "[daily-summary] Daily summary please",
    }
    assert sent["/chat.postMessage"]["channel"] == "C222"
    assert ChannelMessage.objects.filter(status="sent").count() == 2


def test_a_failed_run_posts_its_reason(platform):
    workspace = make_workspace("broken", url="")
    telegram = telegram_channel(workspace, chat_ids=["5"])
    schedule = services.schedule_create(
        workspace=workspace, expression="0 9 * * *", prompt="x", name="nightly", deliver_to=[str(telegram.pk)]
    )
    _run(schedule)
    message = ChannelMessage.objects.get(channel=telegram)
    assert message.text == "[nightly] failed: workspace has no agent url"


def test_without_deliver_to_nothing_is_posted(echo_agent, platform):
    workspace = make_workspace("quiet", url=echo_agent.url)
    telegram_channel(workspace, chat_ids=["5"])
    _run(services.schedule_create(workspace=workspace, expression="0 9 * * *", prompt="x"))
    assert not ChannelMessage.objects.exists()


def test_deliver_to_must_name_channels_of_the_same_workspace(workspace, other_workspace):
    mine = telegram_channel(workspace, chat_ids=["5"])
    theirs = slack_channel(other_workspace, channel_id="C333")
    for value in ([str(theirs.pk)], ["not-a-uuid"], "nope"):
        with pytest.raises(ApplicationError) as caught:
            services.schedule_create(
                workspace=workspace, expression="0 9 * * *", prompt="x", deliver_to=value
            )
        assert "deliver_to" in caught.value.details
    schedule = services.schedule_create(workspace=workspace, expression="0 9 * * *", prompt="x")
    with pytest.raises(ApplicationError):
        services.schedule_update(schedule=schedule, data={"deliver_to": [str(theirs.pk)]})
    updated = services.schedule_update(schedule=schedule, data={"deliver_to": [str(mine.pk)]})
    assert updated.deliver_to == [str(mine.pk)]


def test_deliver_to_limit_is_ten(workspace):
    channels = [
        telegram_channel(workspace, chat_ids=[str(n)], bot_token=f"{n}:{TELEGRAM_TOKEN.split(':')[1]}")
        for n in range(11)
    ]
    ids = [str(c.pk) for c in channels]
    schedule = services.schedule_create(
        workspace=workspace, expression="0 9 * * *", prompt="x", deliver_to=ids[:10]
    )
    assert len(schedule.deliver_to) == 10
    with pytest.raises(ApplicationError):
        services.schedule_update(schedule=schedule, data={"deliver_to": ids})


def test_deliver_to_over_the_api(api, workspace, other_workspace):
    api.credentials(**bearer(make_workspace_token(workspace, role="operator", name="op")))
    mine = slack_channel(workspace, channel_id="C444")
    theirs = slack_channel(other_workspace, channel_id="C555")
    url = f"/workspaces/{workspace.pk}/schedules"
    body = {"expression": "0 9 * * *", "prompt": "hi", "deliver_to": [str(mine.pk)]}
    created = api.post(url, body, format="json")
    assert created.status_code == 201 and created.json()["deliver_to"] == [str(mine.pk)]
    refused = api.patch(f"{url}/{created.json()['id']}", {"deliver_to": [str(theirs.pk)]}, format="json")
    assert refused.status_code == 400
    assert refused.json()["code"] == "invalid_request" and "deliver_to" in refused.json()["details"]
    assert api.post(url, {**body, "deliver_to": ["x"]}, format="json").status_code == 400
