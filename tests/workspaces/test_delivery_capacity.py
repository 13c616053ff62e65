"""Per-workspace delivery limits: `max_concurrent_tasks`, bounded server-wide by
WORKSPACE_MAX_CONCURRENT_DELIVERIES; a chat message past the limit waits without an attempt."""

from __future__ import annotations

import pytest

from channels_app import services as channel_services
from channels_app.models import ChannelMessage
from tests.channels_app.helpers import post_telegram, telegram_channel, telegram_update
from tests.support.factories import make_workspace
from workspaces.models import AgentDelivery
from workspaces.selectors import delivery_capacity

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(("tasks", "cap", "expected"), [(49, 50, 49), (50, 50, 50), (51, 50, 50), (5, 2, 2)])
def test_capacity_is_max_concurrent_tasks_bounded_server_wide(settings, tasks, cap, expected):
    settings.WORKSPACE_MAX_CONCURRENT_DELIVERIES = cap
    assert delivery_capacity(make_workspace("w", max_concurrent_tasks=tasks)) == expected


@pytest.mark.parametrize(("in_flight", "admitted"), [(1, True), (2, False)])
def test_a_chat_message_past_the_limit_waits_without_an_attempt(
    client, fake_http, settings, in_flight, admitted
):
    """Capacity 2: with one delivery in flight the message goes (limit − 1), with two it waits
    (limit), is tried again after DELIVERY_RECHECK_SECONDS and keeps its attempts."""
    from tests.support.a2a_fakes import a2a_agent

    settings.DELIVERY_RECHECK_SECONDS = 0.5
    fake_http.route("POST", "/", a2a_agent(versions=("1.0",)))
    workspace = make_workspace("busy", url=fake_http.url + "/", a2a_protocol="1.0", max_concurrent_tasks=2)
    channel = telegram_channel(workspace)
    for _ in range(in_flight):
        AgentDelivery.objects.create(workspace=workspace, source="channel", reference="other")
    assert post_telegram(client, telegram_update(1)).status_code == 200
    message = ChannelMessage.objects.get(channel=channel, direction="inbound")
    delay = channel_services.message_process_inbound(message_id=message.pk)
    message.refresh_from_db()
    if admitted:
        assert delay is None and message.attempts == 1 and len(fake_http.requests) == 1
    else:
        assert delay == 0.5
        assert (message.status, message.attempts, len(fake_http.requests)) == ("received", 0, 0)
