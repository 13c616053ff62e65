"""Lark / Feishu: event subscriptions (token, optional signature and AES encryption) inbound,
custom-bot webhooks (optionally signed) outbound."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Mapping
from typing import Any

from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from django.conf import settings

from channels_app.adapters import base
from channels_app.adapters.base import (
    ChannelAdapter,
    ConfigField,
    InboundEvent,
    InboundRequest,
    SendError,
    http_failure,
    json_body,
    platform_call,
)
from common.http import url_under_prefix
from common.parsers import loads_strict

_RATE_LIMIT_CODES = {9499, 11232, 11233}


class DecryptError(Exception):
    pass


def lark_decrypt(encrypted: str, encrypt_key: str) -> str:
    """AES-256-CBC with key SHA-256(encrypt_key), IV the first 16 bytes, PKCS#7 padding."""
    try:
        raw = base64.b64decode(encrypted, validate=True)
    except (binascii.Error, ValueError):
        raise DecryptError("not base64") from None
    if len(raw) < 32 or len(raw) % 16:
        raise DecryptError("bad length")
    key = hashlib.sha256(encrypt_key.encode()).digest()
    decryptor = Cipher(algorithms.AES(key), modes.CBC(raw[:16])).decryptor()
    padded = decryptor.update(raw[16:]) + decryptor.finalize()
    unpadder = padding.PKCS7(128).unpadder()
    try:
        plain = unpadder.update(padded) + unpadder.finalize()
        return plain.decode()
    except (ValueError, UnicodeDecodeError):
        raise DecryptError("bad padding") from None


def lark_encrypt(plaintext: str | bytes, encrypt_key: str, iv: bytes) -> str:
    """The inverse of `lark_decrypt` (what Lark does), for tests and tools."""
    key = hashlib.sha256(encrypt_key.encode()).digest()
    padder = padding.PKCS7(128).padder()
    raw = plaintext.encode() if isinstance(plaintext, str) else plaintext
    padded = padder.update(raw) + padder.finalize()
    encryptor = Cipher(algorithms.AES(key), modes.CBC(iv)).encryptor()
    return base64.b64encode(iv + encryptor.update(padded) + encryptor.finalize()).decode()


def lark_signature(timestamp: str, nonce: str, encrypt_key: str, body: bytes) -> str:
    return hashlib.sha256((timestamp + nonce + encrypt_key).encode() + body).hexdigest()


def _prefixes() -> list[str]:
    return [p.rstrip("/") + "/" for p in settings.LARK_WEBHOOK_BASE_URLS]


class LarkAdapter(ChannelAdapter):
    platform = "lark"
    display_name = "Lark / Feishu"
    part_limit = 4000
    credential_key = "verification_token"
    fields = (
        ConfigField(
            "webhook_url",
            "Custom bot webhook URL",
            type="url",
            secret=True,
            help="Group settings → Bots → Custom bot → Webhook URL; outbound.",
        ),
        ConfigField(
            "sign_secret",
            "Custom bot signing secret",
            secret=True,
            help="Set when the custom bot has “Signature verification” on.",
        ),
        ConfigField(
            "verification_token",
            "Verification token",
            secret=True,
            help="App → Events and callbacks → Verification Token; authenticates inbound events.",
        ),
        ConfigField(
            "encrypt_key",
            "Encrypt key",
            secret=True,
            help="When set, events arrive encrypted and signed, and are decrypted before the token check.",
        ),
    )

    def clean_field(self, fld: ConfigField, value: Any) -> Any:
        value = super().clean_field(fld, value)
        if fld.key == "webhook_url" and not any(url_under_prefix(value, p) for p in _prefixes()):
            raise ValueError("Must be a Lark/Feishu custom bot webhook URL.")
        return value

    def validate_together(
        self, config: dict[str, Any], *, enabled: bool, errors: dict[str, list[str]]
    ) -> None:
        if config.get("encrypt_key") and not config.get("verification_token"):
            errors.setdefault("verification_token", []).append("Required when encrypt_key is set.")
        if enabled and not config.get("webhook_url") and not config.get("verification_token"):
            errors.setdefault("webhook_url", []).append(
                "Configure webhook_url (outbound), verification_token (inbound), or both."
            )

    # --- inbound ---------------------------------------------------------------------------------
    def lookup_value(self, config: Mapping[str, Any]) -> str:
        return str(config.get("verification_token") or "")

    def route_key(self, request: InboundRequest) -> str:
        """The token of a plaintext event (an encrypted one carries nothing readable)."""
        outer = request.object()
        header = outer.get("header") if isinstance(outer.get("header"), dict) else {}
        token = header.get("token") or outer.get("token")
        return token if isinstance(token, str) and "encrypt" not in outer else ""

    def verify(self, config: Mapping[str, Any], request: InboundRequest) -> Any:
        """Return the (decrypted) event object when the request is authentic, else None.

        With an encrypt key: the body must decrypt, and the signature headers, when present, must
        match (they are absent only on the url_verification handshake); then the token is checked.
        Without one, the token inside the event is the only credential Lark offers.
        """
        token = str(config.get("verification_token") or "")
        encrypt_key = str(config.get("encrypt_key") or "")
        if not token:
            return None
        headers, body = request.headers, request.body
        try:
            outer = request.payload
        except ValueError:
            return None
        if not isinstance(outer, dict):
            return None
        if encrypt_key:
            signature = headers.get("X-Lark-Signature") or ""
            timestamp = headers.get("X-Lark-Request-Timestamp") or ""
            nonce = headers.get("X-Lark-Request-Nonce") or ""
            if signature:
                if not base.fresh_timestamp(timestamp):
                    return None
                expected = lark_signature(timestamp, nonce, encrypt_key, body)
                if not hmac.compare_digest(expected.encode(), signature.encode("utf-8", "replace")):
                    return None
            if not isinstance(outer.get("encrypt"), str):
                return None
            try:
                event = loads_strict(lark_decrypt(outer["encrypt"], encrypt_key))
            except (DecryptError, ValueError):
                return None
            if not isinstance(event, dict):
                return None
            if not signature and event.get("type") != "url_verification":
                return None
        else:
            if "encrypt" in outer:
                return None
            event = outer
        header = event.get("header") if isinstance(event.get("header"), dict) else {}
        given = str(header.get("token") or event.get("token") or "")
        if not given or not hmac.compare_digest(given.encode(), token.encode()):
            return None
        return event

    def parse(self, config: Mapping[str, Any], verified: Any, request: InboundRequest) -> InboundEvent:
        event: dict[str, Any] = verified
        if event.get("type") == "url_verification":
            return InboundEvent(kind="handshake", response={"challenge": str(event.get("challenge", ""))})
        header = event.get("header") if isinstance(event.get("header"), dict) else {}
        body_event = event.get("event") if isinstance(event.get("event"), dict) else {}
        message = body_event.get("message") if isinstance(body_event.get("message"), dict) else {}
        if header.get("event_type") != "im.message.receive_v1" or message.get("message_type") != "text":
            return InboundEvent(kind="ignored", response={"ok": True, "status": "ignored"})
        try:
            content = loads_strict(message.get("content") or "{}")
        except (ValueError, TypeError):
            content = {}
        text = content.get("text") if isinstance(content, dict) else None
        sender = body_event.get("sender") if isinstance(body_event.get("sender"), dict) else {}
        if sender.get("sender_type") not in (None, "user") or not isinstance(text, str) or not text:
            return InboundEvent(kind="ignored", response={"ok": True, "status": "ignored"})
        sender_ids = sender.get("sender_id") if isinstance(sender.get("sender_id"), dict) else {}
        return InboundEvent(
            kind="message",
            event_id=str(header.get("event_id") or message.get("message_id") or ""),
            chat_id=str(message.get("chat_id", "")),
            sender_id=str(sender_ids.get("open_id") or sender_ids.get("user_id") or ""),
            text=text,
        )

    # --- outbound ---------------------------------------------------------------------------------
    def send_part(
        self, config: Mapping[str, Any], *, chat_id: str, text: str, meta: Mapping[str, Any]
    ) -> None:
        url = str(config.get("webhook_url") or "")
        if not any(url_under_prefix(url, p) for p in _prefixes()):
            raise SendError("lark: no webhook url configured", transient=False)
        payload: dict[str, Any] = {"msg_type": "text", "content": {"text": text}}
        sign_secret = str(config.get("sign_secret") or "")
        if sign_secret:
            timestamp = str(int(base.current_timestamp()))
            key = f"{timestamp}\n{sign_secret}".encode()
            payload["timestamp"] = timestamp
            payload["sign"] = base64.b64encode(hmac.new(key, b"", hashlib.sha256).digest()).decode()
        result = platform_call("POST", url, platform="lark", json=payload)
        if not result.ok:
            raise http_failure("lark", result)
        body = json_body(result)
        code = body.get("code", body.get("StatusCode", 0))
        if code in (0, None):
            return
        if code in _RATE_LIMIT_CODES:
            raise SendError(
                "lark: rate limited", transient=True, retry_after=base.retry_after_header(result.headers)
            )
        raise SendError(
            f"lark: request refused (code {int(code) if isinstance(code, int) else 'unknown'})",
            transient=False,
        )
