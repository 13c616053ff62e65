"""Discord and Lark webhook URLs are checked after normalisation, on save (400) and again before
every send (a URL stored before the rule is never called)."""

from __future__ import annotations

import json

import pytest

from channels_app import services
from channels_app.models import Channel, ChannelMessage

pytestmark = pytest.mark.django_db

DISCORD_PREFIX = "https://discord.com/api/webhooks/"
LARK_PREFIX = "https://open.feishu.cn/open-apis/bot/v2/hook/"
ESCAPES = [
    "../../x",
    "1/../../../x",
    "%2e%2e/%2e%2e/x",
    "..%2f..%2fx",
    "..\\..\\x",
    "1/a@evil.example",
    "./1/a",
    "1//a",
]


def _create(as_agent, workspace, platform: str, url: str):
    return as_agent.post(
        f"/workspaces/{workspace.id}/channels",
        {"platform": platform, "config": {"webhook_url": url}},
        format="json",
    )


@pytest.mark.parametrize("suffix", ESCAPES)
@pytest.mark.parametrize(("platform", "prefix"), [("discord", DISCORD_PREFIX), ("lark", LARK_PREFIX)])
def test_webhook_url_leaving_the_prefix_is_400(as_agent, workspace, platform, prefix, suffix):
    response = _create(as_agent, workspace, platform, prefix + suffix)
    assert response.status_code == 400, response.json()
    body = response.json()
    assert body["code"] == "invalid_config"
    assert "webhook_url" in body["details"]["config"]
    assert not Channel.objects.exists()


def test_user_info_before_the_host_is_400(as_agent, workspace):
    response = _create(as_agent, workspace, "discord", "https://discord.com@evil.example/api/webhooks/1/a")
    assert response.status_code == 400


@pytest.mark.parametrize(
    ("platform", "url"),
    [("discord", DISCORD_PREFIX + "123456/tok-EN_abc"), ("lark", LARK_PREFIX + "0f1e2d3c-aaaa-bbbb")],
)
def test_plain_webhook_urls_are_accepted(as_agent, workspace, platform, url):
    assert _create(as_agent, workspace, platform, url).status_code == 201


@pytest.mark.parametrize("platform", ["discord", "lark"])
def test_a_stored_url_that_escapes_is_never_called(workspace, settings, fake_http, platform):
    """A URL saved before the rule (written straight to the row) fails the send permanently,
    and the fake platform sees no request."""
    settings.DISCORD_WEBHOOK_BASE_URL = f"{fake_http.url}/api/webhooks/"
    settings.LARK_WEBHOOK_BASE_URLS = [f"{fake_http.url}/open-apis/bot/v2/hook/"]
    prefix = (
        settings.DISCORD_WEBHOOK_BASE_URL if platform == "discord" else settings.LARK_WEBHOOK_BASE_URLS[0]
    )
    channel = services.channel_create(
        workspace=workspace, platform=platform, config={"webhook_url": prefix + "1/ok"}
    )
    channel.secret_config = json.dumps({"webhook_url": prefix + "../../../admin"})
    channel.save(update_fields=["secret_config"])
    message = services.channel_send(channel=channel, text="hi")
    assert services.message_send_attempt(message_id=message.pk) is None
    message = ChannelMessage.objects.get(pk=message.pk)
    assert message.status == "failed" and "no webhook url" in message.error
    assert fake_http.requests == []
