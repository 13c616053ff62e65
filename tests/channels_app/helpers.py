"""Builders and signers for channel tests (platform requests exactly as the platforms sign them)."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from channels_app.models import Channel
from channels_app.services import channel_create
from tests.support.worker import CLOSED_BROKER_URL, BrokerQueue  # noqa: F401 - used by the tests

TELEGRAM_TOKEN = "123456:AAEhBP0av28P2aqsU4L5Zq9ZsS6IcX1Yw1E"
TELEGRAM_SECRET = "s3cret-header-value_0123456789"
SLACK_TOKEN = "xoxb-1111-2222-abcdefghijklmnop"
SLACK_SIGNING_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
# RFC 8032, section 7.1, test 1.
RFC8032_SECRET = bytes.fromhex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
RFC8032_PUBLIC = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"
RFC8032_SIGNATURE = (
    "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e06522490155"  # first half
    "5fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"
)


def telegram_channel(workspace: Any, **config: Any) -> Channel:
    base = {"bot_token": TELEGRAM_TOKEN, "webhook_secret": TELEGRAM_SECRET}
    enabled = config.pop("enabled", True)
    allowlist = config.pop("allowlist", ())
    return channel_create(
        workspace=workspace,
        platform="telegram",
        config={**base, **config},
        enabled=enabled,
        allowlist=allowlist,
    )


def slack_channel(workspace: Any, **config: Any) -> Channel:
    base = {"bot_token": SLACK_TOKEN, "signing_secret": SLACK_SIGNING_SECRET}
    return channel_create(workspace=workspace, platform="slack", config={**base, **config})


def telegram_update(
    update_id: int, text: str = "hello", chat_id: int = 42, user_id: int = 7
) -> dict[str, Any]:
    return {
        "update_id": update_id,
        "message": {
            "message_id": update_id,
            "date": 1700000000,
            "chat": {"id": chat_id, "type": "private"},
            "from": {"id": user_id, "is_bot": False, "first_name": "Ann"},
            "text": text,
        },
    }


def post_telegram(
    client: Any, update: dict[str, Any], secret: str | None = TELEGRAM_SECRET, channel: Any = None
):
    url = "/webhooks/telegram" + (f"?channel={channel.pk}" if channel is not None else "")
    headers = {"HTTP_X_TELEGRAM_BOT_API_SECRET_TOKEN": secret} if secret is not None else {}
    return client.post(url, data=json.dumps(update), content_type="application/json", **headers)


def slack_headers(
    body: bytes, secret: str = SLACK_SIGNING_SECRET, timestamp: int | None = None
) -> dict[str, str]:
    ts = str(int(time.time()) if timestamp is None else timestamp)
    digest = hmac.new(secret.encode(), f"v0:{ts}:".encode() + body, hashlib.sha256).hexdigest()
    return {"HTTP_X_SLACK_REQUEST_TIMESTAMP": ts, "HTTP_X_SLACK_SIGNATURE": f"v0={digest}"}


def slack_message_event(event_id: str, text: str = "hi", channel: str = "C111", user: str = "U1") -> bytes:
    return json.dumps(
        {
            "type": "event_callback",
            "event_id": event_id,
            "event": {"type": "message", "channel": channel, "user": user, "text": text, "ts": "1.1"},
        }
    ).encode()


def discord_headers(
    private_key: Ed25519PrivateKey, body: bytes, timestamp: str | None = None
) -> dict[str, str]:
    """Signed as Discord does, at `timestamp` (now by default: older than 300 s is refused)."""
    timestamp = str(int(time.time())) if timestamp is None else timestamp
    signature = private_key.sign(timestamp.encode() + body).hex()
    return {"HTTP_X_SIGNATURE_ED25519": signature, "HTTP_X_SIGNATURE_TIMESTAMP": timestamp}


def discord_command(
    app_id: str, interaction_id: str, text: str = "hello", token: str = "interaction-token-abcdef"
) -> bytes:
    """A slash-command interaction (type 2) with one string option."""
    return json.dumps(
        {
            "type": 2,
            "id": interaction_id,
            "application_id": app_id,
            "channel_id": "900",
            "token": token,
            "member": {"user": {"id": "55"}},
            "data": {"name": "ask", "options": [{"name": "q", "type": 3, "value": text}]},
        }
    ).encode()


def lark_message_event(token: str, event_id: str = "ev-1", text: str = "hi") -> dict[str, Any]:
    """A Lark v2 `im.message.receive_v1` text event, before any encryption."""
    return {
        "schema": "2.0",
        "header": {"event_id": event_id, "event_type": "im.message.receive_v1", "token": token},
        "event": {
            "sender": {"sender_id": {"open_id": "ou_1"}, "sender_type": "user"},
            "message": {
                "chat_id": "oc_1",
                "message_id": "om_1",
                "message_type": "text",
                "content": json.dumps({"text": text}),
            },
        },
    }


def rfc8032_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(RFC8032_SECRET)
