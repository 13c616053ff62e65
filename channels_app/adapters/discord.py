"""Discord: interactions signed with Ed25519 (inbound), webhook messages (outbound)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from django.conf import settings

from channels_app.adapters.base import (
    APPROVAL_FIELDS,
    ChannelAdapter,
    ConfigField,
    InboundEvent,
    InboundRequest,
    SendError,
    fresh_timestamp,
    http_failure,
    json_body,
    platform_call,
)
from common.http import url_under_prefix

PING = 1
APPLICATION_COMMAND = 2
MESSAGE_COMPONENT = 3
PONG = 1
DEFERRED_CHANNEL_MESSAGE = 5
CHANNEL_MESSAGE = 4
EPHEMERAL = 64
_HEX64 = re.compile(r"^[0-9a-fA-F]{64}$")
_SNOWFLAKE = re.compile(r"^\d{5,25}$")
_INTERACTION_TOKEN = re.compile(r"^[A-Za-z0-9._-]{10,500}$")


def verify_ed25519(public_key_hex: str, signature_hex: str, message: bytes) -> bool:
    """Ed25519 check that never raises: bad hex, bad key or bad signature are all False."""
    try:
        key = Ed25519PublicKey.from_public_bytes(bytes.fromhex(public_key_hex))
        key.verify(bytes.fromhex(signature_hex), message)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def _webhook_prefix() -> str:
    return settings.DISCORD_WEBHOOK_BASE_URL.rstrip("/") + "/"


def _collect_text(options: Any) -> list[str]:
    """Text of a slash command's options (sub-commands nest their own options)."""
    texts: list[str] = []
    for option in options if isinstance(options, list) else []:
        if not isinstance(option, dict):
            continue
        if isinstance(option.get("value"), (str, int, float)) and not isinstance(option.get("value"), bool):
            texts.append(str(option["value"]))
        texts.extend(_collect_text(option.get("options")))
    return texts


class DiscordAdapter(ChannelAdapter):
    platform = "discord"
    display_name = "Discord"
    part_limit = 2000
    credential_key = "application_id"
    credential_is_secret = False  # application ids and public keys are published
    fields = (
        ConfigField(
            "webhook_url",
            "Webhook URL",
            type="url",
            secret=True,
            help="Channel settings → Integrations → Webhooks (https://discord.com/api/webhooks/…); outbound.",
        ),
        ConfigField(
            "application_id",
            "Application id",
            help="Developer portal → General information; identifies inbound interactions.",
        ),
        ConfigField(
            "public_key",
            "Public key",
            help="Developer portal → General information (hex Ed25519); verifies inbound interactions.",
        ),
        *APPROVAL_FIELDS,
    )

    def clean_field(self, fld: ConfigField, value: Any) -> Any:
        value = super().clean_field(fld, value)
        if fld.key == "webhook_url" and not url_under_prefix(value, _webhook_prefix()):
            raise ValueError(f"Must be a Discord webhook URL starting with {_webhook_prefix()}")
        if fld.key == "application_id" and not _SNOWFLAKE.match(value):
            raise ValueError("Must be a numeric Discord id.")
        if fld.key == "public_key":
            if not _HEX64.match(value):
                raise ValueError("Must be 64 hexadecimal characters.")
            value = value.lower()
        return value

    def validate_together(
        self, config: dict[str, Any], *, enabled: bool, errors: dict[str, list[str]]
    ) -> None:
        if bool(config.get("application_id")) != bool(config.get("public_key")):
            missing = "public_key" if config.get("application_id") else "application_id"
            errors.setdefault(missing, []).append("application_id and public_key go together.")
        if config.get("approvals") and not (config.get("webhook_url") and config.get("public_key")):
            errors.setdefault("webhook_url", []).append(
                "Approvals need webhook_url (to post) and application_id and public_key (for the buttons)."
            )
        if enabled and not config.get("webhook_url") and not config.get("public_key"):
            errors.setdefault("webhook_url", []).append(
                "Configure webhook_url (outbound), application_id and public_key (inbound), or both."
            )

    # --- inbound ---------------------------------------------------------------------------------
    def lookup_value(self, config: Mapping[str, Any]) -> str:
        return str(config.get("application_id") or "")

    def route_key(self, request: InboundRequest) -> str:
        app_id = request.object().get("application_id")
        return app_id if isinstance(app_id, str) else ""

    def verify(self, config: Mapping[str, Any], request: InboundRequest) -> Any:
        headers, body = request.headers, request.body
        public_key = str(config.get("public_key") or "")
        signature = headers.get("X-Signature-Ed25519") or ""
        timestamp = headers.get("X-Signature-Timestamp") or ""
        if not public_key or not signature or not fresh_timestamp(timestamp):
            return None
        return verify_ed25519(public_key, signature, timestamp.encode() + body) or None

    def parse(self, config: Mapping[str, Any], verified: Any, request: InboundRequest) -> InboundEvent:
        interaction = request.payload
        if not isinstance(interaction, dict):
            raise ValueError("not a Discord interaction")
        if interaction.get("type") == PING:
            return InboundEvent(kind="handshake", response={"type": PONG})
        if str(interaction.get("application_id", "")) != str(config.get("application_id", "")):
            raise ValueError("interaction of another application")
        if interaction.get("type") == MESSAGE_COMPONENT and isinstance(interaction.get("data"), dict):
            return self._parse_press(interaction)
        if interaction.get("type") != APPLICATION_COMMAND or not isinstance(interaction.get("data"), dict):
            return InboundEvent(
                kind="ignored", response=self._ephemeral("This interaction is not supported.")
            )
        data = interaction["data"]
        texts = _collect_text(data.get("options"))
        text = " ".join(texts) if texts else str(data.get("name", ""))
        member = interaction.get("member") if isinstance(interaction.get("member"), dict) else {}
        user = member.get("user") if isinstance(member.get("user"), dict) else interaction.get("user")
        user = user if isinstance(user, dict) else {}
        token = str(interaction.get("token", ""))
        meta: dict[str, Any] = {}
        if _INTERACTION_TOKEN.match(token):
            # Follow-up messages go to the interaction webhook (valid for 15 minutes).
            meta["followup_url"] = f"{_webhook_prefix()}{config.get('application_id')}/{token}"
        return InboundEvent(
            kind="message",
            event_id=str(interaction.get("id", "")),
            chat_id=str(interaction.get("channel_id") or (interaction.get("channel") or {}).get("id", "")),
            sender_id=str(user.get("id", "")),
            text=text,
            meta=meta,
        )

    @staticmethod
    def _user_id(interaction: dict[str, Any]) -> str:
        member = interaction.get("member") if isinstance(interaction.get("member"), dict) else {}
        user = member.get("user") if isinstance(member.get("user"), dict) else interaction.get("user")
        return str(user.get("id", "")) if isinstance(user, dict) else ""

    def _parse_press(self, interaction: dict[str, Any]) -> InboundEvent:
        """A message component (button) press."""
        custom_id = interaction["data"].get("custom_id")
        if not isinstance(custom_id, str):
            return InboundEvent(
                kind="ignored", response=self._ephemeral("This interaction is not supported.")
            )
        return InboundEvent(
            kind="press",
            event_id=str(interaction.get("id", "")),
            chat_id=str(interaction.get("channel_id") or ""),
            sender_id=self._user_id(interaction),
            text=custom_id,
        )

    @staticmethod
    def _ephemeral(text: str) -> dict[str, Any]:
        return {"type": CHANNEL_MESSAGE, "data": {"content": text, "flags": EPHEMERAL}}

    def ack(self, event: InboundEvent) -> dict[str, Any]:
        return {"type": DEFERRED_CHANNEL_MESSAGE}

    def ignored(self, event: InboundEvent) -> dict[str, Any]:
        return self._ephemeral("This chat is not connected to an agent.")

    # --- outbound ---------------------------------------------------------------------------------
    def send_part(
        self, config: Mapping[str, Any], *, chat_id: str, text: str, meta: Mapping[str, Any]
    ) -> None:
        followup = str(meta.get("followup_url") or "")
        if followup:
            # Only a follow-up of this channel's own application (never another tenant's).
            own = f"{_webhook_prefix()}{config.get('application_id') or '-'}/"
            if not url_under_prefix(followup, own):
                raise SendError("discord: follow-up of another application", transient=False)
        url = followup or str(config.get("webhook_url") or "")
        if not url_under_prefix(url, _webhook_prefix()):
            raise SendError("discord: no webhook url configured", transient=False)
        result = platform_call(
            "POST",
            url,
            platform="discord",
            json={"content": text, "allowed_mentions": {"parse": []}},
        )
        if result.ok:
            return
        body = json_body(result)
        retry_after = body.get("retry_after")
        retry_after = float(retry_after) if isinstance(retry_after, (int, float)) else None
        raise http_failure("discord", result, retry_after)
