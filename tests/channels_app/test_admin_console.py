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


def test_channel_page_shows_json_config_absolute_url_and_an_empty_secret_box(console, settings):
    settings.PUBLIC_BASE_URL = ""
    settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, "console.example.test"]
    channel = slack_channel(make_workspace("chatty"), channel_id="C1")
    response = console.get(
        f"/admin/channels_app/channel/{channel.pk}/change/", HTTP_HOST="console.example.test"
    )
    assert response.status_code == 200
    html = response.content.decode()
    # The masked config as JSON (double quotes), never a Python dict repr.
    masked = re.search(r"<pre>(.*?)</pre>", html, re.S).group(1)
    assert "&quot;channel_id&quot;: &quot;C1&quot;" in masked and "'channel_id'" not in html
    assert "xoxb-1111-2222-abcdefghijklmnop" not in html
    # The inbound URL is absolute, as the API answers it.
    assert f"http://console.example.test/webhooks/slack?channel={channel.pk}" in html
    # The secret box starts empty, not with `null`.
    box = re.search(r'<textarea name="new_secrets"[^>]*>(.*?)</textarea>', html, re.S).group(1)
    assert box.strip() == ""
    add = console.get("/admin/channels_app/channel/add/").content.decode()
    assert re.search(r'<textarea name="new_secrets"[^>]*>(.*?)</textarea>', add, re.S).group(1).strip() == ""

    settings.PUBLIC_BASE_URL = "https://hooks.example.test"
    html = console.get(f"/admin/channels_app/channel/{channel.pk}/change/").content.decode()
    assert f"https://hooks.example.test/webhooks/slack?channel={channel.pk}" in html


def test_saving_with_an_empty_secret_box_keeps_the_secrets(console):
    channel = slack_channel(make_workspace("keep"), channel_id="C1")
    secrets_before = channel.secrets
    response = console.post(
        f"/admin/channels_app/channel/{channel.pk}/change/",
        {
            "name": "renamed",
            "enabled": "on",
            "settings": '{"channel_id": "C2"}',
            "new_secrets": "",
            "allowlist": "[]",
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    channel.refresh_from_db()
    assert channel.name == "renamed" and channel.secrets == secrets_before


def test_message_list_shows_text_and_error_columns(console):
    channel = slack_channel(make_workspace("talky"))
    ChannelMessage.objects.create(channel=channel, direction="inbound", status="received", text="hello there")
    ChannelMessage.objects.create(
        channel=channel, direction="outbound", status="failed", text="y" * 200, error="chat not found"
    )
    html = console.get("/admin/channels_app/channelmessage/").content.decode()
    assert "column-short_text" in html and "column-short_error" in html
    assert "hello there" in html and "chat not found" in html
    assert "y" * 79 + "…" in html and "y" * 80 not in html
