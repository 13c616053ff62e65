"""Inbound verification vectors: Slack's published example, RFC 8032 test 1, Lark's AES vector,
Telegram's secret header — each on the raw bytes, failing closed (401, never 500)."""

from __future__ import annotations

import json
import time

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from channels_app.adapters.discord import verify_ed25519
from channels_app.adapters.lark import lark_decrypt, lark_encrypt, lark_signature
from channels_app.models import ChannelMessage
from channels_app.services import channel_create
from tests.channels_app.helpers import (
    RFC8032_PUBLIC,
    RFC8032_SIGNATURE,
    SLACK_SIGNING_SECRET,
    discord_command,
    discord_headers,
    lark_message_event,
    post_telegram,
    rfc8032_key,
    slack_channel,
    telegram_channel,
    telegram_update,
)

pytestmark = pytest.mark.django_db

SLACK_EXAMPLE_BODY = (
    b"token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V"
    b"&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text="
    b"&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN"
    b"&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c"
)
SLACK_EXAMPLE_TS = 1531420618
SLACK_EXAMPLE_SIGNATURE = "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503"


def _post_slack(client, body: bytes, *, ts: str = str(SLACK_EXAMPLE_TS), sig: str = SLACK_EXAMPLE_SIGNATURE):
    return client.post(
        "/webhooks/slack",
        data=body,
        content_type="application/x-www-form-urlencoded",
        HTTP_X_SLACK_REQUEST_TIMESTAMP=ts,
        HTTP_X_SLACK_SIGNATURE=sig,
    )


# --- Slack ----------------------------------------------------------------------------------------


def test_slack_published_example_verifies(client, workspace, frozen_clock):
    channel = slack_channel(workspace)
    frozen_clock(SLACK_EXAMPLE_TS)
    response = _post_slack(client, SLACK_EXAMPLE_BODY)
    assert response.status_code == 200, response.content
    message = ChannelMessage.objects.get(channel=channel)
    assert message.chat_id == "G8PSS9T3V"
    assert message.sender_id == "U2CERLKJA"
    assert message.status == "received"


@pytest.mark.parametrize("offset", [-300, 300])
def test_slack_window_edge_is_accepted(client, workspace, frozen_clock, offset):
    slack_channel(workspace)
    frozen_clock(SLACK_EXAMPLE_TS + offset)
    assert _post_slack(client, SLACK_EXAMPLE_BODY).status_code == 200


@pytest.mark.parametrize("offset", [-301, 301])
def test_slack_outside_window_is_refused(client, workspace, frozen_clock, offset):
    slack_channel(workspace)
    frozen_clock(SLACK_EXAMPLE_TS + offset)
    response = _post_slack(client, SLACK_EXAMPLE_BODY)
    assert response.status_code == 401
    assert response.json()["code"] == "invalid_signature"
    assert not ChannelMessage.objects.exists()


def test_slack_one_byte_changed_is_refused(client, workspace, frozen_clock):
    slack_channel(workspace)
    frozen_clock(SLACK_EXAMPLE_TS)
    tampered = SLACK_EXAMPLE_BODY.replace(b"roadrunner", b"roadrunnes")
    assert _post_slack(client, tampered).status_code == 401
    signature = SLACK_EXAMPLE_SIGNATURE[:-1] + "a"
    assert _post_slack(client, SLACK_EXAMPLE_BODY, sig=signature).status_code == 401


@pytest.mark.parametrize("ts", ["abc", "", "1531420618.5", "1e9", " ", "9" * 40])
def test_slack_non_numeric_timestamp_is_401_not_500(client, workspace, frozen_clock, ts):
    slack_channel(workspace)
    frozen_clock(SLACK_EXAMPLE_TS)
    response = _post_slack(client, SLACK_EXAMPLE_BODY, ts=ts)
    assert response.status_code == 401
    assert response.json()["code"] == "invalid_signature"


def test_slack_missing_signature_or_secret_fails_closed(client, workspace, frozen_clock):
    frozen_clock(SLACK_EXAMPLE_TS)
    # No slack channel at all: nothing can verify.
    assert _post_slack(client, SLACK_EXAMPLE_BODY).status_code == 401
    slack_channel(workspace)
    assert _post_slack(client, SLACK_EXAMPLE_BODY, sig="").status_code == 401
    assert _post_slack(client, SLACK_EXAMPLE_BODY, sig="a2114d57b48eac39").status_code == 401


def test_slack_url_verification_is_echoed(client, workspace, frozen_clock):
    from tests.channels_app.helpers import slack_headers

    slack_channel(workspace)
    body = json.dumps(
        {"type": "url_verification", "challenge": "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P"}
    ).encode()
    response = client.post(
        "/webhooks/slack", data=body, content_type="application/json", **slack_headers(body)
    )
    assert response.status_code == 200
    assert response.json() == {"challenge": "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P"}
    wrong = slack_headers(body, secret="another-secret")
    assert (
        client.post("/webhooks/slack", data=body, content_type="application/json", **wrong).status_code == 401
    )


# --- Discord --------------------------------------------------------------------------------------


def test_rfc8032_test_1_verifies():
    assert verify_ed25519(RFC8032_PUBLIC, RFC8032_SIGNATURE, b"")
    assert not verify_ed25519(RFC8032_PUBLIC, RFC8032_SIGNATURE, b"x")
    assert not verify_ed25519(RFC8032_PUBLIC, "zz" * 64, b"")
    assert not verify_ed25519("00" * 31, RFC8032_SIGNATURE, b"")


def _discord_channel(workspace, app_id: str = "111111111111111111", public_key: str = RFC8032_PUBLIC):
    return channel_create(
        workspace=workspace,
        platform="discord",
        config={"application_id": app_id, "public_key": public_key},
    )


def _post_discord(client, body: bytes, headers: dict, channel=None):
    url = "/webhooks/discord" + (f"?channel={channel.pk}" if channel else "")
    return client.post(url, data=body, content_type="application/json", **headers)


def test_discord_ping_is_answered_pong(client, workspace):
    channel = _discord_channel(workspace)
    body = json.dumps({"type": 1, "id": "1", "application_id": "111111111111111111"}).encode()
    response = _post_discord(client, body, discord_headers(rfc8032_key(), body))
    assert response.status_code == 200
    assert response.json() == {"type": 1}
    response = _post_discord(client, body, discord_headers(rfc8032_key(), body), channel=channel)
    assert response.json() == {"type": 1}


def test_discord_bad_requests_are_401(client, workspace):
    _discord_channel(workspace)
    body = json.dumps({"type": 1, "id": "1", "application_id": "111111111111111111"}).encode()
    headers = discord_headers(rfc8032_key(), body)
    reserialised = json.dumps(json.loads(body), indent=1).encode()
    cases = [
        (reserialised, headers),
        (body, {}),
        (body, {"HTTP_X_SIGNATURE_TIMESTAMP": headers["HTTP_X_SIGNATURE_TIMESTAMP"]}),
        (body, {"HTTP_X_SIGNATURE_ED25519": headers["HTTP_X_SIGNATURE_ED25519"]}),
        (body, {**headers, "HTTP_X_SIGNATURE_ED25519": "not-hex-" + "z" * 120}),
        (
            body,
            {**headers, "HTTP_X_SIGNATURE_TIMESTAMP": str(int(headers["HTTP_X_SIGNATURE_TIMESTAMP"]) + 1)},
        ),
    ]
    for payload, case_headers in cases:
        response = _post_discord(client, payload, case_headers)
        assert response.status_code == 401, case_headers
        assert response.json()["code"] == "invalid_signature"


def test_discord_without_public_key_is_401(client, workspace):
    channel = channel_create(
        workspace=workspace,
        platform="discord",
        config={"webhook_url": "https://discord.com/api/webhooks/1/abc"},
    )
    body = json.dumps({"type": 1}).encode()
    headers = discord_headers(rfc8032_key(), body)
    assert _post_discord(client, body, headers).status_code == 401
    assert _post_discord(client, body, headers, channel=channel).status_code == 401


def test_two_discord_applications_each_verify_with_their_own_key(client, workspace, other_workspace):
    key_a = rfc8032_key()
    key_b = Ed25519PrivateKey.generate()
    public_b = key_b.public_key().public_bytes_raw().hex()
    channel_a = _discord_channel(workspace, app_id="111111111111111111")
    channel_b = _discord_channel(other_workspace, app_id="222222222222222222", public_key=public_b)
    command = discord_command
    body_a = command("111111111111111111", "1001")
    body_b = command("222222222222222222", "1002")
    assert _post_discord(client, body_a, discord_headers(key_a, body_a)).json() == {"type": 5}
    assert _post_discord(client, body_b, discord_headers(key_b, body_b)).json() == {"type": 5}
    assert ChannelMessage.objects.get(platform_event_id="1001").channel == channel_a
    assert ChannelMessage.objects.get(platform_event_id="1002").channel == channel_b
    # A request signed by B's key addressed to A's channel does not verify.
    body_c = command("222222222222222222", "1003")
    assert _post_discord(client, body_c, discord_headers(key_b, body_c), channel=channel_a).status_code == 401
    # With the right channel named, it does.
    assert _post_discord(client, body_c, discord_headers(key_b, body_c), channel=channel_b).status_code == 200


# --- Lark -----------------------------------------------------------------------------------------


def test_lark_decryption_vector():
    assert lark_decrypt("P37w+VZImNgPEO1RBhJ6RtKl7n6zymIbEG1pReEzghk=", "test key") == "hello world"


def _lark_channel(workspace, **config):
    return channel_create(
        workspace=workspace, platform="lark", config={"verification_token": "lark-verify-token", **config}
    )


def test_lark_url_verification_only_with_the_right_token(client, workspace):
    _lark_channel(workspace)
    body = {"challenge": "ajls384kdjx98XX", "token": "lark-verify-token", "type": "url_verification"}
    response = client.post("/webhooks/lark", data=json.dumps(body), content_type="application/json")
    assert response.status_code == 200
    assert response.json() == {"challenge": "ajls384kdjx98XX"}
    body["token"] = "wrong-token"
    response = client.post("/webhooks/lark", data=json.dumps(body), content_type="application/json")
    assert response.status_code == 401
    del body["token"]
    assert (
        client.post("/webhooks/lark", data=json.dumps(body), content_type="application/json").status_code
        == 401
    )


def test_lark_encrypted_url_verification_and_bad_ciphertexts(client, workspace):
    _lark_channel(workspace, encrypt_key="my-encrypt-key")
    plain = json.dumps({"challenge": "c-123", "token": "lark-verify-token", "type": "url_verification"})
    good = json.dumps({"encrypt": lark_encrypt(plain, "my-encrypt-key", b"0123456789abcdef")})
    response = client.post("/webhooks/lark", data=good, content_type="application/json")
    assert response.status_code == 200
    assert response.json() == {"challenge": "c-123"}
    wrong_key = json.dumps({"encrypt": lark_encrypt(plain, "other-key", b"0123456789abcdef")})
    # Valid PKCS#7 structure but a final block with impossible padding after decryption.
    import base64

    raw = base64.b64decode(json.loads(good)["encrypt"])
    bad_padding = json.dumps({"encrypt": base64.b64encode(raw[:-16] + bytes(16)).decode()})
    truncated = json.dumps({"encrypt": base64.b64encode(raw[:-3]).decode()})
    not_base64 = json.dumps({"encrypt": "%%%not base64%%%"})
    plaintext_sent = plain
    for body in (wrong_key, bad_padding, truncated, not_base64, plaintext_sent, "not json", "[]"):
        response = client.post("/webhooks/lark", data=body, content_type="application/json")
        assert 400 <= response.status_code < 500, body
        assert response.status_code == 401


def test_lark_encrypted_event_needs_a_valid_signature(client, workspace):
    channel = _lark_channel(workspace, encrypt_key="my-encrypt-key")
    event = lark_message_event("lark-verify-token")
    body = json.dumps(
        {"encrypt": lark_encrypt(json.dumps(event), "my-encrypt-key", b"fedcba9876543210")}
    ).encode()
    now = str(int(time.time()))
    signature = lark_signature(now, "nonce-1", "my-encrypt-key", body)
    headers = {"HTTP_X_LARK_REQUEST_TIMESTAMP": now, "HTTP_X_LARK_REQUEST_NONCE": "nonce-1"}
    unsigned = client.post("/webhooks/lark", data=body, content_type="application/json", **headers)
    assert unsigned.status_code == 401
    bad = client.post(
        "/webhooks/lark",
        data=body,
        content_type="application/json",
        HTTP_X_LARK_SIGNATURE="0" * 64,
        **headers,
    )
    assert bad.status_code == 401
    good = client.post(
        "/webhooks/lark",
        data=body,
        content_type="application/json",
        HTTP_X_LARK_SIGNATURE=signature,
        **headers,
    )
    assert good.status_code == 200
    message = ChannelMessage.objects.get(channel=channel)
    assert (message.chat_id, message.sender_id, message.text) == ("oc_1", "ou_1", "hi")


# --- Telegram -------------------------------------------------------------------------------------


def test_telegram_missing_or_wrong_secret_is_401_even_when_the_chat_matches(client, workspace):
    channel = telegram_channel(workspace, chat_ids=["42"])
    update = telegram_update(1, chat_id=42)
    for secret in (None, "", "wrong-secret", SLACK_SIGNING_SECRET):
        for named in (None, channel):
            response = post_telegram(client, update, secret=secret, channel=named)
            assert response.status_code == 401, (secret, named)
            assert response.json()["code"] == "invalid_signature"
    assert not ChannelMessage.objects.exists()
    assert post_telegram(client, update).status_code == 200
    assert ChannelMessage.objects.filter(channel=channel).count() == 1


def test_unknown_platform_is_404(client):
    response = client.post("/webhooks/whatsapp", data="{}", content_type="application/json")
    assert response.status_code == 404
    assert response.json()["code"] == "not_found"


def test_malformed_channel_parameter_is_401(client, workspace):
    telegram_channel(workspace)
    response = post_telegram(client, telegram_update(1), channel=None)
    assert response.status_code == 200
    response = client.post(
        "/webhooks/telegram?channel=not-a-uuid",
        data=json.dumps(telegram_update(2)),
        content_type="application/json",
        HTTP_X_TELEGRAM_BOT_API_SECRET_TOKEN="s3cret-header-value_0123456789",
    )
    assert response.status_code == 401
