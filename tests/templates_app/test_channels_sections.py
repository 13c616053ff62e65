"""Channels in org imports and bundles: created through the channels app's services, secrets
never exported, recreated disabled by bundles, and all-or-nothing with the rest of the tree."""

from __future__ import annotations

import copy

import pytest

from channels_app.selectors import channel_list, channel_public_config
from channels_app.services import channel_create
from tests.support.factories import make_workspace
from workspaces.models import Workspace

pytestmark = pytest.mark.django_db

BOT_TOKEN = "123456:ABCDEFGHIJKLMNOPQRSTUVWXYZabcd"
ORG = """
name: Chatty
workspaces:
  - name: first
    channels: [{platform: telegram, name: tg, config: {bot_token: "${TG_TOKEN}", chat_ids: ["-1001"]}, allowlist: [7]}]
    children:
      - name: second
      - name: third
        channels: [{platform: PLATFORM, config: {}}]
"""


@pytest.fixture(autouse=True)
def no_webhook_registration(settings, monkeypatch):
    settings.PUBLIC_BASE_URL = ""
    settings.ORG_IMPORT_ENV_ALLOW = ["TG_TOKEN"]
    monkeypatch.setenv("TG_TOKEN", BOT_TOKEN)


def test_org_channels_created_enabled_with_secrets(as_admin):
    response = as_admin.post("/org/import", {"org_yaml": ORG.replace("PLATFORM", "discord")}, format="json")
    assert response.status_code == 400  # discord needs webhook_url or application_id + public_key
    text = ORG.replace("        channels: [{platform: PLATFORM, config: {}}]\n", "")
    response = as_admin.post("/org/import", {"org_yaml": text}, format="json")
    assert response.status_code == 201, response.json()
    channel = channel_list(workspace=Workspace.objects.get(name="first")).get()
    assert (channel.platform, channel.name, channel.enabled, channel.allowlist) == (
        "telegram",
        "tg",
        True,
        ["7"],
    )
    assert channel_public_config(channel=channel) == {"chat_ids": ["-1001"]}
    assert BOT_TOKEN not in response.content.decode()


def test_invalid_channel_on_third_node_creates_nothing(as_admin):
    response = as_admin.post("/org/import", {"org_yaml": ORG.replace("PLATFORM", "telegram")}, format="json")
    assert response.status_code == 400 and response.json()["code"] == "invalid_config"
    assert "workspaces[0].children[1]" in response.json()["error"]
    assert not Workspace.objects.exists()
    unknown = as_admin.post("/org/import", {"org_yaml": ORG.replace("PLATFORM", "myspace")}, format="json")
    assert unknown.status_code == 400
    assert not Workspace.objects.exists()


def test_bundle_channels_round_trip_disabled_without_secrets(as_admin):
    root = make_workspace("root")
    kid = make_workspace("kid", parent_id=root.pk)
    channel_create(
        workspace=root, platform="telegram", config={"bot_token": BOT_TOKEN, "chat_ids": ["-1"]}, name="a"
    )
    channel_create(
        workspace=kid,
        platform="slack",
        config={"bot_token": "xoxb-1-2-secret", "signing_secret": "s" * 32, "channel_id": "C1"},
        allowlist=["U1"],
        name="b",
    )
    first = as_admin.get(f"/bundles/export/{root.pk}")
    text = first.content.decode()
    assert BOT_TOKEN not in text and "xoxb-1-2-secret" not in text and "s" * 32 not in text
    bundle = first.json()
    assert bundle["workspace"]["channels"] == [
        {
            "platform": "telegram",
            "name": "a",
            "allowlist": [],
            "enabled": True,
            "config": {"chat_ids": ["-1"]},
        }
    ]
    response = as_admin.post("/bundles/import", bundle, format="json")
    assert response.status_code == 201, response.json()
    new_root = Workspace.objects.get(pk=response.json()["root_id"])
    assert [c.enabled for c in channel_list(workspace=new_root)] == [False]
    second = as_admin.get(f"/bundles/export/{new_root.pk}").json()

    def strip(document):
        document = copy.deepcopy(document)
        document.pop("exported_at")
        stack = [document["workspace"]]
        while stack:
            node = stack.pop()
            for channel in node["channels"]:
                assert channel.pop("enabled") in (True, False)
            stack.extend(node["children"])
        return document

    assert second["workspace"]["children"][0]["channels"][0]["enabled"] is False
    assert strip(second) == strip(bundle)
