"""Discord and Lark signatures carry a timestamp; like Slack's, one more than 300 s away from
now (past or future) is refused with 401, at the edge 300 s is still accepted."""

from __future__ import annotations

import json

import pytest

from channels_app.adapters.lark import lark_encrypt, lark_signature
from channels_app.models import ChannelMessage
from channels_app.services import channel_create
from tests.channels_app.helpers import (
    RFC8032_PUBLIC,
    discord_command,
    discord_headers,
    lark_message_event,
    rfc8032_key,
)

pytestmark = pytest.mark.django_db

SIGNED_AT = 1_800_000_000
APP_ID = "111111111111111111"


def _discord_command(interaction_id: str) -> bytes:
    return discord_command(APP_ID, interaction_id)


def _post_discord(client, channel, body: bytes, timestamp: str):
    return client.post(
        f"/webhooks/discord?channel={channel.pk}",
        data=body,
        content_type="application/json",
        **discord_headers(rfc8032_key(), body, timestamp=timestamp),
    )


@pytest.fixture
def discord(workspace):
    return channel_create(
        workspace=workspace,
        platform="discord",
        config={"application_id": APP_ID, "public_key": RFC8032_PUBLIC},
    )


@pytest.mark.parametrize("age", [-300, 0, 300])
def test_discord_signature_within_five_minutes_is_accepted(client, discord, frozen_clock, age):
    frozen_clock(SIGNED_AT + age)
    response = _post_discord(client, discord, _discord_command("1"), str(SIGNED_AT))
    assert response.status_code == 200, response.content
    assert ChannelMessage.objects.filter(channel=discord).count() == 1


@pytest.mark.parametrize("age", [-301, 301, 86_400])
def test_discord_signature_outside_five_minutes_is_401(client, discord, frozen_clock, age):
    frozen_clock(SIGNED_AT + age)
    response = _post_discord(client, discord, _discord_command("1"), str(SIGNED_AT))
    assert response.status_code == 401
    assert response.json()["code"] == "invalid_signature"
    assert not ChannelMessage.objects.exists()


@pytest.mark.parametrize("timestamp", ["", "abc", "1800000000.5", "1e9", " ", "9" * 40])
def test_discord_timestamp_that_is_not_an_integer_is_401(client, discord, frozen_clock, timestamp):
    frozen_clock(SIGNED_AT)
    response = _post_discord(client, discord, _discord_command("1"), timestamp)
    assert response.status_code == 401


def test_discord_ping_is_held_to_the_window_too(client, discord, frozen_clock):
    body = json.dumps({"type": 1, "id": "1", "application_id": APP_ID}).encode()
    frozen_clock(SIGNED_AT + 301)
    assert _post_discord(client, discord, body, str(SIGNED_AT)).status_code == 401
    frozen_clock(SIGNED_AT + 300)
    assert _post_discord(client, discord, body, str(SIGNED_AT)).json() == {"type": 1}


LARK_KEY = "my-encrypt-key"


@pytest.fixture
def lark(workspace):
    return channel_create(
        workspace=workspace,
        platform="lark",
        config={"verification_token": "lark-verify-token", "encrypt_key": LARK_KEY},
    )


def _lark_body() -> bytes:
    event = lark_message_event("lark-verify-token")
    return json.dumps({"encrypt": lark_encrypt(json.dumps(event), LARK_KEY, b"fedcba9876543210")}).encode()


def _post_lark(client, channel, timestamp: str):
    body = _lark_body()
    return client.post(
        f"/webhooks/lark?channel={channel.pk}",
        data=body,
        content_type="application/json",
        HTTP_X_LARK_REQUEST_TIMESTAMP=timestamp,
        HTTP_X_LARK_REQUEST_NONCE="nonce-1",
        HTTP_X_LARK_SIGNATURE=lark_signature(timestamp, "nonce-1", LARK_KEY, body),
    )


@pytest.mark.parametrize("age", [-300, 0, 300])
def test_lark_signature_within_five_minutes_is_accepted(client, lark, frozen_clock, age):
    frozen_clock(SIGNED_AT + age)
    response = _post_lark(client, lark, str(SIGNED_AT))
    assert response.status_code == 200, response.content
    assert ChannelMessage.objects.filter(channel=lark).count() == 1


@pytest.mark.parametrize("age", [-301, 301, 86_400])
def test_lark_signature_outside_five_minutes_is_401(client, lark, frozen_clock, age):
    frozen_clock(SIGNED_AT + age)
    response = _post_lark(client, lark, str(SIGNED_AT))
    assert response.status_code == 401
    assert response.json()["code"] == "invalid_signature"
    assert not ChannelMessage.objects.exists()


@pytest.mark.parametrize("timestamp", ["", "abc", "1800000000.5", "9" * 40])
def test_lark_timestamp_that_is_not_an_integer_is_401(client, lark, frozen_clock, timestamp):
    frozen_clock(SIGNED_AT)
    assert _post_lark(client, lark, timestamp).status_code == 401
