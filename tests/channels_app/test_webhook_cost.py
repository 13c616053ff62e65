"""What an unauthenticated webhook request can cost (issue 11, item 7): without `?channel=`,
Slack, Discord and Lark requests are verified against at most a few credentials whatever the
number of channels and tenants, and the body is parsed at most once. Counted, never timed."""

from __future__ import annotations

import json
import time

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from channels_app.adapters.base import ChannelAdapter
from channels_app.adapters.discord import DiscordAdapter
from channels_app.adapters.lark import LarkAdapter, lark_encrypt, lark_signature
from channels_app.adapters.slack import SlackAdapter
from channels_app.adapters.telegram import TelegramAdapter
from channels_app.models import ChannelMessage
from channels_app.selectors import WEBHOOK_MAX_VERIFICATIONS
from channels_app.services import channel_create
from tests.channels_app.helpers import (
    TELEGRAM_TOKEN,
    discord_command,
    discord_headers,
    lark_message_event,
    slack_headers,
)
from tests.support.factories import make_workspace

pytestmark = pytest.mark.django_db

TENANTS = 25


class Counter:
    """Counts adapter verifications and parses of the request body (every `json.loads` of it,
    and Slack's form reading)."""

    def __init__(self, monkeypatch) -> None:
        self.verifications = 0
        self.parses = 0
        self.body: bytes = b""
        for adapter in (TelegramAdapter, SlackAdapter, DiscordAdapter, LarkAdapter):
            monkeypatch.setattr(adapter, "verify", self._counting(adapter.verify))
        original_loads = json.loads

        def loads(data, *args, **kwargs):
            if self.body and data in (self.body, self.body.decode("utf-8", "replace")):
                self.parses += 1
            return original_loads(data, *args, **kwargs)

        monkeypatch.setattr(json, "loads", loads)

    def _counting(self, verify):
        def counted(adapter: ChannelAdapter, *args, **kwargs):
            self.verifications += 1
            return verify(adapter, *args, **kwargs)

        return counted

    def post(self, client, platform: str, body: bytes, headers: dict[str, str], channel=None):
        self.body, self.verifications, self.parses = body, 0, 0
        url = f"/webhooks/{platform}" + (f"?channel={channel.pk}" if channel is not None else "")
        return client.post(url, data=body, content_type="application/json", **headers)


@pytest.fixture
def counter(monkeypatch) -> Counter:
    return Counter(monkeypatch)


def _workspaces(count: int):
    return [make_workspace(f"tenant-{i}") for i in range(count)]


def test_the_cap_is_a_few():
    assert 1 <= WEBHOOK_MAX_VERIFICATIONS <= 3


# --- Slack ----------------------------------------------------------------------------------------


def _slack(workspace, secret: str, **config):
    return channel_create(
        workspace=workspace,
        platform="slack",
        config={"bot_token": "xoxb-1-2-abc", "signing_secret": secret, **config},
    )


def _slack_event(event_id: str, app_id: str = "A0TARGET") -> bytes:
    return json.dumps(
        {
            "type": "event_callback",
            "api_app_id": app_id,
            "event_id": event_id,
            "event": {"type": "message", "channel": "C111", "user": "U1", "text": "hi", "ts": "1.1"},
        }
    ).encode()


def test_slack_forged_request_costs_a_bounded_number_of_verifications(client, counter):
    for i, ws in enumerate(_workspaces(TENANTS)):
        _slack(ws, f"signing-secret-of-tenant-{i:04d}")
    body = _slack_event("Ev1")
    response = counter.post(client, "slack", body, slack_headers(body, secret="forged-secret"))
    assert response.status_code == 401
    assert counter.verifications <= WEBHOOK_MAX_VERIFICATIONS
    assert counter.parses <= 1


def test_slack_app_id_finds_its_channel_among_many_in_one_verification(client, counter):
    for i, ws in enumerate(_workspaces(TENANTS)):
        _slack(ws, f"signing-secret-of-tenant-{i:04d}", app_id=f"A0OTHER{i:04d}")
    target = _slack(make_workspace("target"), "the-target-signing-secret", app_id="A0TARGET")
    body = _slack_event("Ev2")
    response = counter.post(client, "slack", body, slack_headers(body, secret="the-target-signing-secret"))
    assert response.status_code == 200, response.content
    assert counter.verifications == 1 and counter.parses == 1
    assert ChannelMessage.objects.get().channel_id == target.pk


def test_slack_channels_without_app_id_are_tried_oldest_first_up_to_the_cap(client, counter):
    """The edge: the cap-th unkeyed channel is still found without `?channel=`, the next one
    only through its own inbound URL."""
    channels = [
        _slack(ws, f"signing-secret-of-tenant-{i:04d}")
        for i, ws in enumerate(_workspaces(WEBHOOK_MAX_VERIFICATIONS + 1))
    ]
    last_in, first_out = channels[WEBHOOK_MAX_VERIFICATIONS - 1], channels[WEBHOOK_MAX_VERIFICATIONS]
    body = _slack_event("Ev3", app_id="A0UNKNOWN")
    secret = f"signing-secret-of-tenant-{WEBHOOK_MAX_VERIFICATIONS - 1:04d}"
    assert counter.post(client, "slack", body, slack_headers(body, secret=secret)).status_code == 200
    assert counter.verifications == WEBHOOK_MAX_VERIFICATIONS
    assert ChannelMessage.objects.get().channel_id == last_in.pk
    body = _slack_event("Ev4", app_id="A0UNKNOWN")
    secret = f"signing-secret-of-tenant-{WEBHOOK_MAX_VERIFICATIONS:04d}"
    assert counter.post(client, "slack", body, slack_headers(body, secret=secret)).status_code == 401
    assert counter.verifications == WEBHOOK_MAX_VERIFICATIONS
    response = counter.post(client, "slack", body, slack_headers(body, secret=secret), channel=first_out)
    assert response.status_code == 200
    assert counter.verifications == 1 and counter.parses == 1


# --- Discord --------------------------------------------------------------------------------------


def _interaction(app_id: str, interaction_id: str) -> bytes:
    return discord_command(app_id, interaction_id)


def test_discord_application_id_routes_in_one_verification(client, counter):
    keys = []
    for i, ws in enumerate(_workspaces(TENANTS)):
        key = Ed25519PrivateKey.generate()
        keys.append(key)
        channel_create(
            workspace=ws,
            platform="discord",
            config={
                "application_id": f"{900000 + i}",
                "public_key": key.public_key().public_bytes_raw().hex(),
            },
        )
    body = _interaction(f"{900000 + TENANTS - 1}", "5001")
    response = counter.post(client, "discord", body, discord_headers(keys[-1], body))
    assert response.status_code == 200, response.content
    assert counter.verifications == 1 and counter.parses == 1
    forged = _interaction(f"{900000 + 3}", "5002")
    response = counter.post(client, "discord", forged, discord_headers(Ed25519PrivateKey.generate(), forged))
    assert response.status_code == 401
    assert counter.verifications <= WEBHOOK_MAX_VERIFICATIONS
    unknown = _interaction("123456789", "5003")
    response = counter.post(client, "discord", unknown, discord_headers(keys[0], unknown))
    assert response.status_code == 401
    assert counter.verifications <= WEBHOOK_MAX_VERIFICATIONS


# --- Lark -----------------------------------------------------------------------------------------


def _lark_event(token: str, event_id: str) -> dict:
    return lark_message_event(token, event_id)


def test_lark_token_routes_in_one_verification_and_one_parse(client, counter):
    for i, ws in enumerate(_workspaces(TENANTS)):
        channel_create(workspace=ws, platform="lark", config={"verification_token": f"lark-token-{i:04d}"})
    body = json.dumps(_lark_event(f"lark-token-{TENANTS - 1:04d}", "ev-1")).encode()
    response = counter.post(client, "lark", body, {})
    assert response.status_code == 200, response.content
    assert counter.verifications == 1 and counter.parses == 1
    forged = json.dumps(_lark_event("not-a-token", "ev-2")).encode()
    assert counter.post(client, "lark", forged, {}).status_code == 401
    assert counter.verifications <= WEBHOOK_MAX_VERIFICATIONS and counter.parses <= 1


def test_lark_encrypted_forgery_costs_a_bounded_number_of_decryptions(client, counter):
    for i, ws in enumerate(_workspaces(TENANTS)):
        channel_create(
            workspace=ws,
            platform="lark",
            config={"verification_token": f"lark-token-{i:04d}", "encrypt_key": f"encrypt-key-{i:04d}"},
        )
    plain = json.dumps(_lark_event("lark-token-0001", "ev-3"))
    body = json.dumps({"encrypt": lark_encrypt(plain, "wrong-key", b"0123456789abcdef")}).encode()
    now = str(int(time.time()))
    headers = {
        "HTTP_X_LARK_REQUEST_TIMESTAMP": now,
        "HTTP_X_LARK_REQUEST_NONCE": "n",
        "HTTP_X_LARK_SIGNATURE": lark_signature(now, "n", "wrong-key", body),
    }
    assert counter.post(client, "lark", body, headers).status_code == 401
    assert counter.verifications <= WEBHOOK_MAX_VERIFICATIONS
    assert counter.parses <= 1


# --- Telegram (indexed by its secret header already) ---------------------------------------------


def test_telegram_forged_secret_costs_no_verification(client, counter):
    for i, ws in enumerate(_workspaces(TENANTS)):
        channel_create(
            workspace=ws,
            platform="telegram",
            config={"bot_token": TELEGRAM_TOKEN, "webhook_secret": f"webhook-secret-{i:04d}"},
        )
    body = json.dumps({"update_id": 1, "message": {"chat": {"id": 1}, "text": "x"}}).encode()
    response = counter.post(client, "telegram", body, {"HTTP_X_TELEGRAM_BOT_API_SECRET_TOKEN": "forged"})
    assert response.status_code == 401
    assert counter.verifications == 0 and counter.parses == 0


@pytest.mark.parametrize("named", [False, True])
def test_every_platform_parses_an_accepted_body_once(client, counter, workspace, named):
    slack = _slack(workspace, "one-signing-secret", app_id="A0TARGET")
    key = Ed25519PrivateKey.generate()
    discord = channel_create(
        workspace=workspace,
        platform="discord",
        config={"application_id": "4242424242", "public_key": key.public_key().public_bytes_raw().hex()},
    )
    lark = channel_create(workspace=workspace, platform="lark", config={"verification_token": "lark-one"})
    cases = [
        ("slack", slack, _slack_event("Ev9"), lambda b: slack_headers(b, secret="one-signing-secret")),
        ("discord", discord, _interaction("4242424242", "9"), lambda b: discord_headers(key, b)),
        ("lark", lark, json.dumps(_lark_event("lark-one", "ev-9")).encode(), lambda b: {}),
    ]
    for platform, channel, body, sign in cases:
        response = counter.post(client, platform, body, sign(body), channel=channel if named else None)
        assert response.status_code == 200, (platform, response.content)
        assert counter.parses == 1, platform
        assert counter.verifications == 1, platform
