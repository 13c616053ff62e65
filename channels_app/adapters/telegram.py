"""Telegram Bot API: webhook updates authenticated by the secret-token header, sendMessage."""

from __future__ import annotations

import hmac
import re
import secrets
from collections.abc import Mapping
from typing import Any

from django.conf import settings

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
)

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
_TOKEN = re.compile(r"^\d{1,20}:[A-Za-z0-9_-]{20,100}$")
_CHAT_ID = re.compile(r"^(-?\d{1,20}|@[A-Za-z0-9_]{4,64})$")
_WEBHOOK_SECRET = re.compile(r"^[A-Za-z0-9_-]{1,256}$")
_MESSAGE_KEYS = ("message", "edited_message", "channel_post", "edited_channel_post")


class TelegramAdapter(ChannelAdapter):
    platform = "telegram"
    display_name = "Telegram"
    supports_discover = True
    part_limit = 4096
    credential_key = "bot_token"
    chat_filter_key = "chat_ids"
    enable_keys = ("bot_token", "webhook_secret")
    enable_call, disable_call = "setWebhook", "deleteWebhook"
    fields = (
        ConfigField(
            "bot_token", "Bot token", required=True, secret=True, help="From @BotFather, e.g. 123456:ABC-DEF…"
        ),
        ConfigField(
            "chat_ids",
            "Chat ids",
            type="list",
            help="Chats this channel serves: the first is the default for outbound messages; "
            "inbound updates from other chats are not routed here. Empty: every chat.",
        ),
        ConfigField(
            "webhook_secret",
            "Webhook secret",
            secret=True,
            help="Sent by Telegram in X-Telegram-Bot-Api-Secret-Token; generated when left empty.",
        ),
        *APPROVAL_FIELDS,
    )

    def clean_field(self, fld: ConfigField, value: Any) -> Any:
        if fld.key == "chat_ids":
            if not isinstance(value, list) or len(value) > 100:
                raise ValueError("Must be a list of at most 100 chat ids.")
            cleaned = []
            for item in value:
                text = (
                    str(item).strip() if isinstance(item, (str, int)) and not isinstance(item, bool) else ""
                )
                if not _CHAT_ID.match(text):
                    raise ValueError("Each chat id must be a number or an @channel name.")
                cleaned.append(text)
            return cleaned
        value = super().clean_field(fld, value)
        if fld.key == "bot_token" and not _TOKEN.match(value):
            raise ValueError("Must look like 123456:ABC… (the token from @BotFather).")
        if fld.key == "webhook_secret" and not _WEBHOOK_SECRET.match(value):
            raise ValueError("Must be 1 to 256 characters of A-Z, a-z, 0-9, _ and -.")
        return value

    def complete(self, config: dict[str, Any]) -> dict[str, Any]:
        if not config.get("webhook_secret"):
            config["webhook_secret"] = secrets.token_urlsafe(32)
        return config

    def lookup_value(self, config: Mapping[str, Any]) -> str:
        return str(config.get("webhook_secret") or "")

    def default_chat(self, config: Mapping[str, Any]) -> str:
        chat_ids = config.get("chat_ids") or []
        return str(chat_ids[0]) if chat_ids else ""

    def needs_chat(self) -> bool:
        return True

    # --- inbound ---------------------------------------------------------------------------------
    def route_key(self, request: InboundRequest) -> str:
        return request.headers.get(SECRET_HEADER) or ""

    def verify(self, config: Mapping[str, Any], request: InboundRequest) -> Any:
        expected = str(config.get("webhook_secret") or "")
        given = request.headers.get(SECRET_HEADER) or ""
        if not expected or not given:
            return None
        return hmac.compare_digest(expected.encode(), given.encode()) or None

    def parse(self, config: Mapping[str, Any], verified: Any, request: InboundRequest) -> InboundEvent:
        update = request.payload
        if not isinstance(update, dict) or not isinstance(update.get("update_id"), int):
            raise ValueError("not a Telegram update")
        if isinstance(update.get("callback_query"), dict):
            return self._parse_press(update)
        message = next((update[k] for k in _MESSAGE_KEYS if isinstance(update.get(k), dict)), None)
        if message is None or not isinstance(message.get("chat"), dict):
            return InboundEvent(kind="ignored", response=self.ignored_body())
        text = message.get("text") or message.get("caption")
        if not isinstance(text, str) or not text:
            return InboundEvent(kind="ignored", response=self.ignored_body())
        sender = message.get("from") if isinstance(message.get("from"), dict) else {}
        if sender.get("is_bot"):
            return InboundEvent(kind="ignored", response=self.ignored_body())
        return InboundEvent(
            kind="message",
            event_id=str(update["update_id"]),
            chat_id=str(message["chat"].get("id", "")),
            sender_id=str(sender.get("id", "")),
            text=text,
            meta={"message_id": message.get("message_id")},
        )

    def _parse_press(self, update: dict[str, Any]) -> InboundEvent:
        """An inline keyboard button press (`callback_query`)."""
        query = update["callback_query"]
        sender = query.get("from") if isinstance(query.get("from"), dict) else {}
        message = query.get("message") if isinstance(query.get("message"), dict) else {}
        chat = message.get("chat") if isinstance(message.get("chat"), dict) else {}
        data = query.get("data")
        if not isinstance(data, str) or not isinstance(query.get("id"), str):
            return InboundEvent(kind="ignored", response=self.ignored_body())
        return InboundEvent(
            kind="press",
            event_id=str(update["update_id"]),
            chat_id=str(chat.get("id", "")),
            sender_id=str(sender.get("id", "")),
            text=data,
            meta={"callback_query_id": query["id"]},
        )

    def validate_together(
        self, config: dict[str, Any], *, enabled: bool, errors: dict[str, list[str]]
    ) -> None:
        if config.get("approvals") and not config.get("chat_ids"):
            errors.setdefault("chat_ids", []).append("Approvals are posted to the first chat id: name one.")

    @staticmethod
    def ignored_body() -> dict[str, Any]:
        return {"ok": True, "status": "ignored"}

    # --- outbound ---------------------------------------------------------------------------------
    def api_url(self, token: str, method: str) -> str:
        return f"{settings.TELEGRAM_API_BASE_URL}/bot{token}/{method}"

    def call(self, token: str, method: str, payload: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Call a Bot API method; a refusal becomes a SendError (429 honours `retry_after`)."""
        if not token:
            raise SendError("telegram: no bot token configured", transient=False)
        result = platform_call(
            "POST", self.api_url(token, method), platform="telegram", json=dict(payload or {})
        )
        body = json_body(result)
        if result.ok and body.get("ok") is True:
            return body
        parameters = body.get("parameters") if isinstance(body.get("parameters"), dict) else {}
        retry_after = parameters.get("retry_after")
        retry_after = float(retry_after) if isinstance(retry_after, (int, float)) else None
        if result.ok:  # 200 with ok=false: a refusal
            raise SendError("telegram: request refused", transient=False, status=result.status_code)
        if result.status_code == 400:
            raise SendError(
                "telegram: request refused (HTTP 400: unknown chat or bad request)",
                transient=False,
                status=400,
            )
        raise http_failure("telegram", result, retry_after)

    def send_part(
        self, config: Mapping[str, Any], *, chat_id: str, text: str, meta: Mapping[str, Any]
    ) -> None:
        if not chat_id:
            raise SendError("telegram: no chat id", transient=False)
        self.call(str(config.get("bot_token") or ""), "sendMessage", {"chat_id": chat_id, "text": text})

    def send_chat_action(self, config: Mapping[str, Any], *, chat_id: str, action: str) -> None:
        self.call(
            str(config.get("bot_token") or ""), "sendChatAction", {"chat_id": chat_id, "action": action}
        )

    def set_webhook(self, config: Mapping[str, Any], *, url: str) -> None:
        self.call(
            str(config.get("bot_token") or ""),
            "setWebhook",
            {"url": url, "secret_token": config.get("webhook_secret") or ""},
        )

    def delete_webhook(self, config: Mapping[str, Any]) -> None:
        self.call(str(config.get("bot_token") or ""), "deleteWebhook", {})

    def hooks_active(self) -> bool:
        """The webhook needs a public URL to point at: without PUBLIC_BASE_URL nothing is set."""
        return bool(settings.PUBLIC_BASE_URL)

    def on_enable(self, config: Mapping[str, Any], *, inbound_url: str) -> None:
        self.set_webhook(config, url=inbound_url)

    def on_disable(self, config: Mapping[str, Any]) -> None:
        self.delete_webhook(config)

    def discover(self, *, bot_token: str) -> Discovery:
        if not _TOKEN.match(bot_token or ""):
            raise DiscoveryError("invalid_token", "The bot token is not valid.")
        try:
            me = self.call(bot_token, "getMe")
        except SendError as exc:
            if exc.status in (401, 404):
                raise DiscoveryError("invalid_token", "Telegram refused the bot token.") from None
            raise DiscoveryError("platform_error", "Telegram did not answer as expected.") from None
        user = me.get("result") if isinstance(me.get("result"), dict) else {}
        chats: dict[str, dict[str, str]] = {}
        try:
            updates = self.call(bot_token, "getUpdates", {"limit": 100, "timeout": 0})
        except SendError:
            updates = {"result": []}  # 409 while a webhook is set: no chats to show
        for update in updates.get("result") or []:
            if not isinstance(update, dict):
                continue
            for key in (*_MESSAGE_KEYS, "my_chat_member", "chat_member"):
                chat = update.get(key, {}).get("chat") if isinstance(update.get(key), dict) else None
                if isinstance(chat, dict) and "id" in chat:
                    title = chat.get("title") or chat.get("username") or chat.get("first_name") or ""
                    chats[str(chat["id"])] = {
                        "chat_id": str(chat["id"]),
                        "title": str(title),
                        "type": str(chat.get("type", "")),
                    }
        return Discovery(
            bot={"id": str(user.get("id", "")), "username": str(user.get("username", ""))},
            chats=list(chats.values()),
        )
