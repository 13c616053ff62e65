"""Channels in the admin console: operators find channels and messages by workspace."""

from __future__ import annotations

import re

import pytest

from channels_app.models import ChannelMessage
from tests.channels_app.helpers import slack_channel
from tests.support.factories import make_workspace

pytestmark = pytest.mark.django_db


@pytest.fixture
def console(client, django_user_model):
    client.force_login(django_user_model.objects.create_superuser("root", "root@example.test", "pw"))
    return client


def row_ids(html: str) -> list[str]:
    """Ids of the listed rows (action checkboxes, or change links on read-only lists)."""
    checked = re.findall(r'name="_selected_action" value="([0-9a-f-]{36})"', html)
    return checked or re.findall(r"/admin/\w+/\w+/([0-9a-f-]{36})/change/", html)


def test_channels_and_messages_are_searchable_by_workspace(console, django_assert_max_num_queries):
    mine = slack_channel(make_workspace("billing-bot"))
    theirs = slack_channel(make_workspace("release-bot"))
    for channel in (mine, theirs):
        for index in range(3):
            ChannelMessage.objects.create(
                channel=channel, direction="inbound", status="received", text=f"m{index}"
            )

    assert row_ids(console.get("/admin/channels_app/channel/", {"q": "billing"}).content.decode()) == [
        str(mine.id)
    ]
    response = console.get("/admin/channels_app/channelmessage/", {"q": "release-bot"})
    assert response.status_code == 200
    html = response.content.decode()
    ids = set(row_ids(html))
    assert ids == {str(m) for m in ChannelMessage.objects.filter(channel=theirs).values_list("id", flat=True)}
    assert "release-bot" in html  # the workspace column
    assert (
        console.get("/admin/channels_app/channelmessage/", {"channel__platform": "slack"}).status_code == 200
    )

    with django_assert_max_num_queries(12):  # the workspace column does not cost a query per row
        assert console.get("/admin/channels_app/channelmessage/").status_code == 200
