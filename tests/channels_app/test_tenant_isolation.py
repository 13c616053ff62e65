"""Tenant isolation on shared platform ids (issue 11, item 1).

A channel receives another channel's traffic only when both hold the same secret credential.
Discord's application id and public key are published, so they never group channels across
workspaces: an application belongs to one workspace (409 for another), and data saved before
that rule still never hands one workspace's interactions or follow-up URLs to another."""

from __future__ import annotations

import json

import pytest

from channels_app import services
from channels_app.adapters.base import credential_digest
from channels_app.models import Channel, ChannelMessage
from tests.channels_app.helpers import (
    RFC8032_PUBLIC,
    SLACK_SIGNING_SECRET,
    discord_command,
    discord_headers,
    lark_message_event,
    rfc8032_key,
    slack_channel,
    slack_headers,
    slack_message_event,
    telegram_channel,
)
from tests.support.factories import bearer, make_workspace, make_workspace_token

pytestmark = pytest.mark.django_db

APP = "111111111111111111"
DISCORD = {"application_id": APP, "public_key": RFC8032_PUBLIC}


def _create(api, workspace, config=DISCORD, **extra):
    token = make_workspace_token(workspace)
    return api.post(
        f"/workspaces/{workspace.id}/channels",
        {"platform": "discord", "config": config, **extra},
        format="json",
        **bearer(token),
    )


def _interaction(interaction_id: str, app_id: str = APP) -> bytes:
    return discord_command(app_id, interaction_id, text="secret plans", token="victim-interaction-token")


def _post_discord(client, body: bytes, channel=None):
    url = "/webhooks/discord" + (f"?channel={channel.pk}" if channel is not None else "")
    return client.post(
        url, data=body, content_type="application/json", **discord_headers(rfc8032_key(), body)
    )


def _legacy_discord(workspace, **config) -> Channel:
    """An enabled Discord channel saved before the rule: created disabled (no claim is made),
    then enabled straight in the table, as the rows of an older version are."""
    channel = services.channel_create(
        workspace=workspace, platform="discord", config={**DISCORD, **config}, enabled=False
    )
    Channel.objects.filter(pk=channel.pk).update(enabled=True)
    channel.refresh_from_db()
    return channel


# --- one workspace per application ---------------------------------------------------------------


def test_attacker_naming_another_workspace_application_is_409(api, workspace, other_workspace):
    assert _create(api, workspace).status_code == 201
    response = _create(api, other_workspace)
    assert response.status_code == 409, response.json()
    body = response.json()
    assert body["code"] == "conflict"
    assert set(body["details"]["config"]) == {"application_id"}
    assert RFC8032_PUBLIC not in json.dumps(body)
    assert not Channel.objects.filter(workspace=other_workspace).exists()


def test_the_same_workspace_may_hold_the_application_twice(api, workspace):
    assert _create(api, workspace, name="one").status_code == 201
    assert _create(api, workspace, name="two").status_code == 201


def test_enabling_or_renaming_into_a_taken_application_is_409(api, workspace, other_workspace):
    assert _create(api, workspace).status_code == 201
    # Disabled, the claim is not made; enabling it makes it, and is refused.
    disabled = _create(api, other_workspace, enabled=False)
    assert disabled.status_code == 201, disabled.json()
    token = make_workspace_token(other_workspace)
    url = f"/workspaces/{other_workspace.id}/channels/{disabled.json()['id']}"
    response = api.patch(url, {"enabled": True}, format="json", **bearer(token))
    assert response.status_code == 409 and response.json()["code"] == "conflict"
    assert Channel.objects.get(pk=disabled.json()["id"]).enabled is False
    # An enabled channel of another application cannot switch to this one either.
    other = _create(api, other_workspace, config={**DISCORD, "application_id": "222222222222222222"})
    assert other.status_code == 201
    url = f"/workspaces/{other_workspace.id}/channels/{other.json()['id']}"
    response = api.patch(url, {"config": {"application_id": APP}}, format="json", **bearer(token))
    assert response.status_code == 409
    assert Channel.objects.get(pk=other.json()["id"]).public_config["application_id"] == "222222222222222222"


def test_a_released_application_can_be_claimed(api, workspace, other_workspace):
    first = _create(api, workspace).json()
    token = make_workspace_token(workspace)
    api.patch(
        f"/workspaces/{workspace.id}/channels/{first['id']}",
        {"enabled": False},
        format="json",
        **bearer(token),
    )
    assert _create(api, other_workspace).status_code == 201


def test_org_import_cannot_claim_a_taken_application(as_admin, workspace):
    services.channel_create(workspace=workspace, platform="discord", config=DISCORD)
    org = (
        "name: Intruder\nworkspaces:\n  - name: spy\n    channels: [{platform: discord, config: "
        f'{{application_id: "{APP}", public_key: "{RFC8032_PUBLIC}"}}}}]\n'
    )
    response = as_admin.post("/org/import", {"org_yaml": org}, format="json")
    assert response.status_code == 409, response.json()
    assert not Channel.objects.exclude(workspace=workspace).exists()


def test_org_import_cannot_give_one_application_to_two_workspaces(as_admin):
    channel = f'channels: [{{platform: discord, config: {{application_id: "{APP}", public_key: "{RFC8032_PUBLIC}"}}}}]'
    org = f"name: Two\nworkspaces:\n  - name: a\n    {channel}\n  - name: b\n    {channel}\n"
    response = as_admin.post("/org/import", {"org_yaml": org}, format="json")
    assert response.status_code == 409, response.json()
    assert not Channel.objects.exists()


# --- data saved before the rule -------------------------------------------------------------------


@pytest.fixture
def shared_before_the_rule(workspace, other_workspace):
    """The attacker's channel is the older one, so any "oldest wins" routing would favour it."""
    attacker = _legacy_discord(other_workspace)
    victim = _legacy_discord(workspace)
    victim_second = _legacy_discord(workspace)
    return attacker, victim, victim_second


def test_existing_shared_application_never_receives_the_other_workspace_traffic(
    client, shared_before_the_rule
):
    attacker, victim, victim_second = shared_before_the_rule
    response = _post_discord(client, _interaction("1001"), channel=victim)
    assert response.status_code == 200 and response.json() == {"type": 5}
    stored = {m.channel_id for m in ChannelMessage.objects.all()}
    # Fan-out stays inside the workspace that owns the named channel.
    assert stored == {victim.pk, victim_second.pk}
    assert not ChannelMessage.objects.filter(channel=attacker).exists()
    # The follow-up URL (a token to post into the victim's chat) is stored on no other tenant.
    for message in ChannelMessage.objects.all():
        assert message.channel.workspace_id == victim.workspace_id


def test_without_channel_parameter_a_shared_application_is_refused(client, shared_before_the_rule):
    response = _post_discord(client, _interaction("1002"))
    assert response.status_code == 401
    assert response.json()["code"] == "invalid_signature"
    assert not ChannelMessage.objects.exists()
    # Even a PING cannot be attributed.
    ping = json.dumps({"type": 1, "id": "1", "application_id": APP}).encode()
    assert _post_discord(client, ping).status_code == 401


def test_without_channel_parameter_a_single_owner_still_receives(client, workspace):
    channel = services.channel_create(workspace=workspace, platform="discord", config=DISCORD)
    assert _post_discord(client, _interaction("1003")).status_code == 200
    assert ChannelMessage.objects.get().channel_id == channel.pk


def test_a_follow_up_url_of_another_application_is_never_used(workspace, settings, fake_http):
    settings.DISCORD_WEBHOOK_BASE_URL = f"{fake_http.url}/api/webhooks/"
    channel = services.channel_create(
        workspace=workspace,
        platform="discord",
        config={**DISCORD, "webhook_url": f"{fake_http.url}/api/webhooks/1/own"},
    )
    inbound = ChannelMessage.objects.create(
        channel=channel,
        direction="inbound",
        status="received",
        meta={"followup_url": f"{fake_http.url}/api/webhooks/222222222222222222/someone-elses-token"},
    )
    reply = ChannelMessage.objects.create(
        channel=channel, direction="outbound", status="queued", text="hi", reply_to=inbound, meta=inbound.meta
    )
    assert services.message_send_attempt(message_id=reply.pk) is None
    reply.refresh_from_db()
    assert reply.status == "failed" and "another application" in reply.error
    assert fake_http.requests == []


# --- fan-out across workspaces only with a shared secret ------------------------------------------


def test_slack_fans_out_across_workspaces_only_with_the_same_signing_secret(
    client, workspace, other_workspace
):
    third = make_workspace("third")
    same_secret = slack_channel(other_workspace)
    mine = slack_channel(workspace)
    other_secret = slack_channel(third, signing_secret="another-signing-secret-0123456789")
    body = slack_message_event("Ev9")
    response = client.post(
        f"/webhooks/slack?channel={mine.pk}",
        data=body,
        content_type="application/json",
        **slack_headers(body),
    )
    assert response.status_code == 200
    assert {m.channel_id for m in ChannelMessage.objects.all()} == {mine.pk, same_secret.pk}
    assert other_secret.pk not in {m.channel_id for m in ChannelMessage.objects.all()}
    assert same_secret.credential_key == credential_digest("slack", SLACK_SIGNING_SECRET)


def test_telegram_fans_out_across_workspaces_only_with_the_same_bot_token(client, workspace, other_workspace):
    from tests.channels_app.helpers import post_telegram, telegram_update

    mine = telegram_channel(workspace)
    same_bot = telegram_channel(other_workspace, webhook_secret="another-webhook-secret-for-b")
    other_bot = telegram_channel(
        make_workspace("third"),
        bot_token="654321:BBEhBP0av28P2aqsU4L5Zq9ZsS6IcX1Yw2F",
        webhook_secret="yet-another-webhook-secret-c",
    )
    assert post_telegram(client, telegram_update(5), channel=mine).status_code == 200
    assert {m.channel_id for m in ChannelMessage.objects.all()} == {mine.pk, same_bot.pk}
    assert other_bot.pk not in {m.channel_id for m in ChannelMessage.objects.all()}


def test_lark_fans_out_across_workspaces_with_the_same_verification_token(client, workspace, other_workspace):
    mine = services.channel_create(
        workspace=workspace, platform="lark", config={"verification_token": "tok-1"}
    )
    same = services.channel_create(
        workspace=other_workspace, platform="lark", config={"verification_token": "tok-1"}
    )
    services.channel_create(
        workspace=make_workspace("third"), platform="lark", config={"verification_token": "tok-2"}
    )
    event = lark_message_event("tok-1", "ev-7")
    response = client.post("/webhooks/lark", data=json.dumps(event), content_type="application/json")
    assert response.status_code == 200
    assert {m.channel_id for m in ChannelMessage.objects.all()} == {mine.pk, same.pk}


def test_console_shows_a_taken_application_as_a_form_error(
    client, django_user_model, workspace, other_workspace
):
    client.force_login(django_user_model.objects.create_superuser("root", "root@example.test", "pw"))
    services.channel_create(workspace=workspace, platform="discord", config=DISCORD)
    response = client.post(
        "/admin/channels_app/channel/add/",
        {
            "workspace": str(other_workspace.pk),
            "platform": "discord",
            "name": "copy",
            "enabled": "on",
            "settings": json.dumps(DISCORD),
            "new_secrets": "",
            "allowlist": "[]",
        },
    )
    assert response.status_code == 200  # the form again, with the error
    assert "another workspace" in response.content.decode()
    assert not Channel.objects.filter(workspace=other_workspace).exists()
