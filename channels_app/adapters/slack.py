"""Slack: Events API and slash commands signed with the signing secret, chat.postMessage."""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qs

from django.conf import settings

from channels_app.adapters import base
from channels_app.adapters.base import (
    APPROVAL_FIELDS,
    ChannelAdapter,
    ConfigField,
    Discovery,
    DiscoveryError,
    InboundEvent,
    InboundRequest,
    SendError,
    http_failure,
    json_body,
    platform_call,
    safe_code,
    split_text,
)
from common.parsers import loads_strict

BLOCK_LIMIT = 3000
BLOCKS_PER_MESSAGE = 50
_CHANNEL_ID = re.compile(r"^[A-Z0-9]{2,32}$")
_APP_ID = re.compile(r"^A[A-Z0-9]{2,31}$")
# A slash command has about fifteen fields; a form with many more is not Slack's.
MAX_FORM_FIELDS = 100


class SlackForm(dict[str, list[str]]):
    """A form-encoded body (slash commands), as `parse_qs` reads it."""


_TRANSIENT_ERRORS = {"ratelimited", "internal_error", "fatal_error", "service_unavailable", "request_timeout"}
_TOKEN_ERRORS = {
    "invalid_auth",
    "not_authed",
    "account_inactive",
    "token_revoked",
    "token_expired",
    "invalid_token",
}


class SlackAdapter(ChannelAdapter):
    platform = "slack"
    display_name = "Slack"
    supports_discover = True
    part_limit = BLOCK_LIMIT * BLOCKS_PER_MESSAGE
    credential_key = "signing_secret"
    chat_filter_key = "channel_id"
    fields = (
        ConfigField(
            "bot_token", "Bot token", required=True, secret=True, help="Bot User OAuth Token (xoxb-…)."
        ),
        ConfigField(
            "signing_secret",
            "Signing secret",
            required=True,
            secret=True,
            help="App credentials → Signing Secret; verifies inbound events.",
        ),
        ConfigField(
            "app_id",
            "App id",
            help="Basic Information → App ID (e.g. A0123ABCDEF); lets events sent without "
            "?channel= find this channel at once. Optional.",
        ),
        ConfigField(
            "channel_id",
            "Channel id",
            help="Default channel for outbound messages (e.g. C0123456789); inbound events from other "
            "channels are not routed here. Empty: every channel.",
        ),
        *APPROVAL_FIELDS,
    )

    def clean_field(self, fld: ConfigField, value: Any) -> Any:
        value = super().clean_field(fld, value)
        if fld.key == "bot_token" and not value.startswith("xoxb-"):
            raise ValueError("Must be a bot token starting with xoxb-.")
        if fld.key == "channel_id" and not _CHANNEL_ID.match(value):
            raise ValueError("Must be a Slack channel id such as C0123456789.")
        if fld.key == "app_id" and not _APP_ID.match(value):
            raise ValueError("Must be a Slack app id such as A0123ABCDEF.")
        return value

    def lookup_value(self, config: Mapping[str, Any]) -> str:
        return str(config.get("app_id") or "")

    def default_chat(self, config: Mapping[str, Any]) -> str:
        return str(config.get("channel_id") or "")

    def needs_chat(self) -> bool:
        return True

    # --- inbound ---------------------------------------------------------------------------------
    def load(self, body: bytes) -> Any:
        """Events API bodies are JSON, slash commands a form."""
        if body.lstrip()[:1] == b"{":
            return super().load(body)
        return SlackForm(parse_qs(body.decode(), keep_blank_values=True, max_num_fields=MAX_FORM_FIELDS))

    def route_key(self, request: InboundRequest) -> str:
        try:
            payload = request.payload
        except ValueError:
            return ""
        if isinstance(payload, SlackForm):
            return (payload.get("api_app_id") or [""])[0]
        app_id = payload.get("api_app_id") if isinstance(payload, dict) else None
        return app_id if isinstance(app_id, str) else ""

    def verify(self, config: Mapping[str, Any], request: InboundRequest) -> Any:
        headers, body = request.headers, request.body
        secret = str(config.get("signing_secret") or "")
        signature = headers.get("X-Slack-Signature") or ""
        if not secret or not signature.startswith("v0="):
            return None
        if not base.fresh_timestamp(headers.get("X-Slack-Request-Timestamp")):
            return None
        basestring = f"v0:{headers.get('X-Slack-Request-Timestamp', '').strip()}:".encode() + body
        expected = "v0=" + hmac.new(secret.encode(), basestring, hashlib.sha256).hexdigest()
        return hmac.compare_digest(expected.encode(), signature.encode("utf-8", "replace")) or None

    def parse(self, config: Mapping[str, Any], verified: Any, request: InboundRequest) -> InboundEvent:
        payload = request.payload
        if isinstance(payload, SlackForm):
            return self._parse_form(payload)
        return self._parse_event(payload)

    def _parse_event(self, payload: Any) -> InboundEvent:
        if not isinstance(payload, dict):
            raise ValueError("not a Slack event")
        if payload.get("type") == "url_verification":
            return InboundEvent(kind="handshake", response={"challenge": str(payload.get("challenge", ""))})
        event = payload.get("event")
        if payload.get("type") != "event_callback" or not isinstance(event, dict):
            return InboundEvent(kind="ignored", response={"ok": True, "status": "ignored"})
        text = event.get("text")
        is_message = event.get("type") in {"message", "app_mention"}
        from_bot = bool(event.get("bot_id")) or event.get("subtype") not in (None, "thread_broadcast")
        if not is_message or from_bot or not isinstance(text, str) or not text:
            return InboundEvent(kind="ignored", response={"ok": True, "status": "ignored"})
        return InboundEvent(
            kind="message",
            event_id=str(payload.get("event_id") or event.get("client_msg_id") or event.get("ts") or ""),
            chat_id=str(event.get("channel", "")),
            sender_id=str(event.get("user", "")),
            text=text,
            meta={"thread_ts": event.get("thread_ts")} if event.get("thread_ts") else {},
        )

    def _parse_form(self, form: dict[str, list[str]]) -> InboundEvent:
        def one(key: str) -> str:
            return (form.get(key) or [""])[0]

        if one("payload"):
            return self._parse_interaction(loads_strict(one("payload")))
        if not one("command"):
            return InboundEvent(kind="ignored", response={"ok": True, "status": "ignored"})
        text = one("text").strip() or one("command")
        return InboundEvent(
            kind="message",
            event_id=one("trigger_id") or f"{one('channel_id')}:{one('user_id')}:{one('command')}:{text}",
            chat_id=one("channel_id"),
            sender_id=one("user_id"),
            text=text,
            meta={"command": one("command")},
        )

    @staticmethod
    def _parse_interaction(payload: Any) -> InboundEvent:
        """An interactivity request (`payload=<json>`): a Block Kit button press."""
        if not isinstance(payload, dict) or payload.get("type") != "block_actions":
            return InboundEvent(kind="ignored", response={})
        actions = payload.get("actions") if isinstance(payload.get("actions"), list) else []
        action = actions[0] if actions and isinstance(actions[0], dict) else {}
        user = payload.get("user") if isinstance(payload.get("user"), dict) else {}
        channel = payload.get("channel") if isinstance(payload.get("channel"), dict) else {}
        value = action.get("value")
        if not isinstance(value, str):
            return InboundEvent(kind="ignored", response={})
        return InboundEvent(
            kind="press",
            event_id=str(action.get("action_ts") or ""),
            chat_id=str(channel.get("id", "")),
            sender_id=str(user.get("id", "")),
            text=value,
        )

    def validate_together(
        self, config: dict[str, Any], *, enabled: bool, errors: dict[str, list[str]]
    ) -> None:
        if config.get("approvals") and not config.get("channel_id"):
            errors.setdefault("channel_id", []).append("Approvals are posted to this channel: name one.")

    def ack(self, event: InboundEvent) -> dict[str, Any]:
        if event.meta.get("command"):  # a slash command shows this body to the user, privately
            return {"response_type": "ephemeral", "text": "Sent to the agent."}
        return {"ok": True}

    # --- outbound ---------------------------------------------------------------------------------
    def call(self, token: str, method: str, payload: Mapping[str, Any]) -> dict[str, Any]:
        if not token:
            raise SendError("slack: no bot token configured", transient=False)
        result = platform_call(
            "POST",
            f"{settings.SLACK_API_BASE_URL}/{method}",
            platform="slack",
            json=dict(payload),
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json; charset=utf-8"},
        )
        if not result.ok:
            raise http_failure("slack", result)
        body = json_body(result)
        if body.get("ok") is True:
            return body
        code = safe_code(body.get("error"))
        raise SendError(
            f"slack: {code}",
            transient=code in _TRANSIENT_ERRORS,
            retry_after=base.retry_after_header(result.headers),
            status=401 if code in _TOKEN_ERRORS else result.status_code,
        )

    def send_part(
        self, config: Mapping[str, Any], *, chat_id: str, text: str, meta: Mapping[str, Any]
    ) -> None:
        if not chat_id:
            raise SendError("slack: no channel id", transient=False)
        if meta.get("ephemeral_user"):  # seen only by that user (e.g. a refused button press)
            payload = {"channel": chat_id, "user": str(meta["ephemeral_user"]), "text": text[:BLOCK_LIMIT]}
            self.call(str(config.get("bot_token") or ""), "chat.postEphemeral", payload)
            return
        blocks = [
            {"type": "section", "text": {"type": "plain_text", "text": chunk, "emoji": False}}
            for chunk in split_text(text, BLOCK_LIMIT)
        ]
        payload: dict[str, Any] = {"channel": chat_id, "text": text[:BLOCK_LIMIT], "blocks": blocks}
        if meta.get("thread_ts"):
            payload["thread_ts"] = meta["thread_ts"]
        self.call(str(config.get("bot_token") or ""), "chat.postMessage", payload)

    def discover(self, *, bot_token: str) -> Discovery:
        if not (bot_token or "").startswith("xoxb-"):
            raise DiscoveryError("invalid_token", "The bot token is not valid.")
        try:
            me = self.call(bot_token, "auth.test", {})
            chats: list[dict[str, str]] = []
            cursor = ""
            for _page in range(5):
                payload: dict[str, Any] = {
                    "types": "public_channel,private_channel",
                    "exclude_archived": True,
                    "limit": 200,
                }
                if cursor:
                    payload["cursor"] = cursor
                page = self.call(bot_token, "conversations.list", payload)
                for channel in page.get("channels") or []:
                    if isinstance(channel, dict) and channel.get("id"):
                        chats.append(
                            {
                                "chat_id": str(channel["id"]),
                                "title": str(channel.get("name", "")),
                                "type": "private_channel" if channel.get("is_private") else "public_channel",
                            }
                        )
                meta = page.get("response_metadata")
                cursor = meta.get("next_cursor", "") if isinstance(meta, dict) else ""
                if not cursor:
                    break
        except SendError as exc:
            if exc.status == 401:
                raise DiscoveryError("invalid_token", "Slack refused the bot token.") from None
            raise DiscoveryError("platform_error", "Slack did not answer as expected.") from None
        return Discovery(
            bot={"id": str(me.get("user_id") or me.get("bot_id") or ""), "username": str(me.get("user", ""))},
            chats=chats,
        )
