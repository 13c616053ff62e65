"""Every webhook platform answers every hostile body with a 4xx or its documented 200, never a
5xx: deep arrays and objects, numbers beyond a double, NUL, invalid UTF-8, non-JSON. Each body
is sent signed (so it reaches the parser), unsigned, with and without `?channel=`."""

from __future__ import annotations

import json
import string
import time

import pytest

from channels_app.adapters.lark import lark_signature
from channels_app.services import channel_create
from tests.channels_app.helpers import (
    RFC8032_PUBLIC,
    TELEGRAM_SECRET,
    discord_headers,
    rfc8032_key,
    slack_channel,
    slack_headers,
    telegram_channel,
)

pytestmark = pytest.mark.django_db

DISCORD_APP = "111111111111111111"
LARK_TOKEN = "lark-verify-token"
LARK_KEY = "my-encrypt-key"

# Whole bodies.
SHAPES = {
    "deep-arrays": b"[" * 100_000,
    "deep-arrays-closed": b"[" * 50_000 + b"]" * 50_000,
    "deep-objects": b'{"a":' * 100_000,
    "huge-number": b"1e999999",
    "huge-integer": b"9" * 100_000,
    "nan": b"NaN",
    "raw-nul": b'{"update_id": 1, "text": "a\x00b"}',
    "escaped-nul": b'{"a": "\\u0000"}',
    "invalid-utf8": b'{"text": "\xff\xfe\xfd"}',
    "lone-surrogate": b'{"text": "\\ud800"}',
    "non-json": b"hello there",
    "empty": b"",
    "json-string": b'"just a string"',
}

# A hostile value inside an otherwise well-formed event, where each platform reads values
# (ids, text, thread, message id, options).
VALUES = {
    "huge-number": "1e999999",
    "huge-integer": "9" * 5000,
    "deep": "[" * 50_000 + "]" * 50_000,
    "nul": '"a\\u0000b"',
    "surrogate": '"\\udfff"',
    "object": '{"x": 1}',
}


# Each platform's event with every value it reads as a placeholder; one placeholder at a time
# takes the hostile value, the others their plain default.
TEMPLATES = {
    "telegram": (
        '{"update_id": $update_id, "message": {"message_id": $message_id, "chat": {"id": $chat}, '
        '"from": {"id": $sender}, "text": $text}}',
        {"update_id": "1", "message_id": "5", "chat": "42", "sender": "7", "text": '"hi"'},
    ),
    "slack": (
        '{"type": "event_callback", "event_id": $event_id, "event": {"type": "message", '
        '"channel": $chat, "user": $sender, "text": $text, "ts": "1.1", "thread_ts": $thread}}',
        {"event_id": '"Ev1"', "chat": '"C111"', "sender": '"U1"', "text": '"hi"', "thread": '"1.0"'},
    ),
    "discord": (
        '{"type": 2, "id": $event_id, "application_id": "' + DISCORD_APP + '", "channel_id": $chat, '
        '"token": $token, "member": {"user": {"id": $sender}}, '
        '"data": {"name": "ask", "options": [{"name": "q", "type": 3, "value": $text, "options": $options}]}}',
        {
            "event_id": '"1001"',
            "chat": '"900"',
            "token": '"interaction-token-abcdef"',
            "sender": '"55"',
            "text": '"hello"',
            "options": "[]",
        },
    ),
    "lark": (
        '{"schema": "2.0", "header": {"event_id": $event_id, "event_type": "im.message.receive_v1", '
        '"token": "' + LARK_TOKEN + '"}, "event": {"sender": {"sender_id": {"open_id": $sender}, '
        '"sender_type": "user"}, "message": {"chat_id": $chat, "message_id": "om_1", '
        '"message_type": "text", "content": $content}}}',
        {"event_id": '"ev-1"', "sender": '"ou_1"', "chat": '"oc_1"', "content": json.dumps('{"text": "hi"}')},
    ),
}


def _event(platform: str, field: str | None = None, value: str = "") -> bytes:
    template, defaults = TEMPLATES[platform]
    values = dict(defaults)
    if field == "content":  # Lark's message content is JSON inside a JSON string
        values[field] = json.dumps('{"text": ' + value + "}")
    elif field is not None:
        values[field] = value
    return string.Template(template).substitute(values).encode()


FIELDS = [(platform, field) for platform, (_t, defaults) in TEMPLATES.items() for field in defaults]


@pytest.fixture
def channels(workspace):
    return {
        "telegram": telegram_channel(workspace),
        "slack": slack_channel(workspace),
        "discord": channel_create(
            workspace=workspace,
            platform="discord",
            config={"application_id": DISCORD_APP, "public_key": RFC8032_PUBLIC},
        ),
        "lark": channel_create(
            workspace=workspace,
            platform="lark",
            config={"verification_token": LARK_TOKEN, "encrypt_key": LARK_KEY},
        ),
    }


def _signed(platform: str, body: bytes) -> tuple[bytes, dict[str, str]]:
    """`body` as the platform would send it, signed with the channel's credentials."""
    if platform == "telegram":
        return body, {"HTTP_X_TELEGRAM_BOT_API_SECRET_TOKEN": TELEGRAM_SECRET}
    if platform == "slack":
        return body, slack_headers(body)
    if platform == "discord":
        return body, discord_headers(rfc8032_key(), body)
    # Lark: the hostile text is the decrypted event, inside a correctly encrypted, signed body.
    envelope = json.dumps({"encrypt": lark_encrypt_bytes(body, LARK_KEY, b"0123456789abcdef")}).encode()
    now = str(int(time.time()))
    return envelope, {
        "HTTP_X_LARK_REQUEST_TIMESTAMP": now,
        "HTTP_X_LARK_REQUEST_NONCE": "n-1",
        "HTTP_X_LARK_SIGNATURE": lark_signature(now, "n-1", LARK_KEY, envelope),
    }


def lark_encrypt_bytes(plaintext: bytes, key: str, iv: bytes) -> str:
    """`lark_encrypt` for bytes that need not be UTF-8 (the test's invalid-UTF-8 shapes)."""
    import base64
    import hashlib

    from cryptography.hazmat.primitives import padding
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

    padder = padding.PKCS7(128).padder()
    padded = padder.update(plaintext) + padder.finalize()
    encryptor = Cipher(algorithms.AES(hashlib.sha256(key.encode()).digest()), modes.CBC(iv)).encryptor()
    return base64.b64encode(iv + encryptor.update(padded) + encryptor.finalize()).decode()


def _post(client, platform: str, body: bytes, headers: dict[str, str], channel=None):
    url = f"/webhooks/{platform}" + (f"?channel={channel.pk}" if channel is not None else "")
    return client.post(url, data=body, content_type="application/json", **headers)


def _assert_answered(response) -> None:
    assert response.status_code < 500, response.content[:200]
    assert response.status_code in (200, 400, 401), response.status_code
    if response.status_code != 200:
        assert set(response.json()) == {"error", "code", "details"} or set(response.json()) == {
            "error",
            "code",
        }


PLATFORMS = ["telegram", "slack", "discord", "lark"]


@pytest.mark.parametrize("named", [False, True], ids=["routed", "named"])
@pytest.mark.parametrize("shape", list(SHAPES))
@pytest.mark.parametrize("platform", PLATFORMS)
def test_hostile_body_signed_is_never_5xx(client, channels, platform, shape, named):
    body, headers = _signed(platform, SHAPES[shape])
    _assert_answered(_post(client, platform, body, headers, channels[platform] if named else None))


@pytest.mark.parametrize("named", [False, True], ids=["routed", "named"])
@pytest.mark.parametrize("shape", list(SHAPES))
@pytest.mark.parametrize("platform", PLATFORMS)
def test_hostile_body_unsigned_is_never_5xx(client, channels, platform, shape, named):
    response = _post(client, platform, SHAPES[shape], {}, channels[platform] if named else None)
    _assert_answered(response)
    assert response.status_code in (400, 401)


@pytest.mark.parametrize("value", list(VALUES))
@pytest.mark.parametrize(("platform", "field"), FIELDS)
def test_hostile_value_in_a_signed_event_is_never_5xx(client, channels, platform, field, value):
    body, headers = _signed(platform, _event(platform, field, VALUES[value]))
    for named in (None, channels[platform]):
        _assert_answered(_post(client, platform, body, headers, named))


def test_the_event_builders_are_well_formed_for_a_plain_value(client, channels):
    """The builders above make events each platform accepts, so the hostile values are read."""
    for platform in PLATFORMS:
        body, headers = _signed(platform, _event(platform))
        response = _post(client, platform, body, headers, channels[platform])
        assert response.status_code == 200, (platform, response.content)
        assert "ignored" not in json.dumps(response.json()), (platform, response.content)
