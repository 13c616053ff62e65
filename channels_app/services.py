"""Channel writes: create/update/delete with config validation and secret handling, sends,
tests, discovery, inbound webhooks and the two background steps (process inbound, send)."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from channels_app import ingest, selectors
from channels_app.adapters import ADAPTERS, get_adapter
from channels_app.adapters.base import (
    ChannelAdapter,
    ConfigError,
    Discovery,
    DiscoveryError,
    SendError,
    credential_digest,
)
from channels_app.adapters.telegram import SECRET_HEADER as TELEGRAM_SECRET_HEADER
from channels_app.models import Channel, ChannelMessage, Direction, MessageStatus
from common.crypto import DecryptionError, decrypt, encrypt
from common.errors import ApplicationError
from common.outbox import BROKER_ERRORS
from workspaces.a2a import A2AError
from workspaces.delivery import deliver_prompt
from workspaces.models import Workspace

logger = logging.getLogger(__name__)

MASK = "********"
MASK_MIN_LENGTH = 12
MAX_ALLOWLIST_ENTRIES = 1000
TEST_MESSAGE = "Test message from the Integrations API: this channel can reach this chat."


class InvalidConfig(ApplicationError):
    code = "invalid_config"
    message = "The channel config is not valid for this platform."


class InvalidSignature(ApplicationError):
    status_code = 401
    code = "invalid_signature"
    message = "The request signature or token does not verify."


class PlatformError(ApplicationError):
    status_code = 502
    code = "platform_error"
    message = "The platform refused or failed the request."


class NotSupported(ApplicationError):
    code = "not_supported"
    message = "This platform does not support this operation."


class InvalidToken(ApplicationError):
    code = "invalid_token"
    message = "The platform refused the bot token."


# --- config and masking -----------------------------------------------------------------------


def mask_secret(value: str) -> str:
    """`1234…wxyz` for long secrets, `********` for short ones: enough to recognise, not to use."""
    if not value:
        return ""
    if len(value) < MASK_MIN_LENGTH:
        return MASK
    return f"{value[:4]}…{value[-4:]}"


def masked_config(*, channel: Channel) -> dict[str, Any]:
    """The config as every response shows it: public fields as they are, secrets masked."""
    config = dict(channel.public_config)
    for key, value in channel.secrets.items():
        config[key] = mask_secret(str(value))
    return config


def inbound_url(*, channel: Channel, base_url: str | None = None) -> str:
    base = (settings.PUBLIC_BASE_URL or base_url or "").rstrip("/")
    return f"{base}/webhooks/{channel.platform}?channel={channel.pk}"


def _adapter(platform: str) -> ChannelAdapter:
    adapter = get_adapter(platform)
    if adapter is None:
        raise InvalidConfig(
            "platform is not supported.",
            code="invalid_request",
            details={"platform": [f"Must be one of: {', '.join(ADAPTERS)}."]},
        )
    return adapter


def _normalise_allowlist(allowlist: Iterable[Any]) -> list[str]:
    values = list(allowlist)
    if len(values) > MAX_ALLOWLIST_ENTRIES:
        raise ApplicationError(
            "allowlist is too long.",
            details={"allowlist": [f"At most {MAX_ALLOWLIST_ENTRIES} entries."]},
        )
    cleaned: list[str] = []
    for value in values:
        if isinstance(value, bool) or not isinstance(value, (str, int)) or not str(value).strip():
            raise ApplicationError(
                "allowlist entries must be sender or chat ids.",
                details={"allowlist": ["Each entry must be a non-empty string or number."]},
            )
        text = str(value).strip()[:200]
        if text not in cleaned:
            cleaned.append(text)
    return cleaned


def _apply_config(channel: Channel, config: Mapping[str, Any], *, enabled: bool) -> None:
    """Validate `config` (plaintext, complete) and store it split into public and secret parts."""
    adapter = _adapter(channel.platform)
    if not isinstance(config, Mapping):
        raise InvalidConfig("config must be a JSON object.", details={"config": ["Must be a JSON object."]})
    try:
        clean = adapter.validate(config, enabled=enabled)
    except ConfigError as exc:
        field, messages = next(iter(exc.errors.items()))
        raise InvalidConfig(f"config.{field}: {messages[0]}", details={"config": exc.errors}) from None
    clean = adapter.complete(clean)
    secret_keys = adapter.secret_keys()
    channel.public_config = {k: v for k, v in clean.items() if k not in secret_keys}
    channel.secret_config = json.dumps({k: v for k, v in clean.items() if k in secret_keys}, sort_keys=True)
    channel.credential_key = credential_digest(channel.platform, adapter.credential(clean))
    channel.lookup_key = credential_digest(channel.platform, adapter.lookup_value(clean))


def channel_prepare(
    *,
    workspace: Workspace,
    platform: str,
    config: Mapping[str, Any],
    allowlist: Iterable[Any] = (),
    enabled: bool = True,
    name: str = "",
) -> Channel:
    """An unsaved, validated channel (400 `invalid_config` when the config does not fit)."""
    channel = Channel(workspace=workspace, platform=platform, name=name or "", enabled=enabled)
    channel.allowlist = _normalise_allowlist(allowlist)
    _apply_config(channel, config, enabled=enabled)
    return channel


def channel_create(
    *,
    workspace: Workspace,
    platform: str,
    config: Mapping[str, Any],
    allowlist: Iterable[Any] = (),
    enabled: bool = True,
    name: str = "",
) -> Channel:
    """Create a channel; an enabled telegram channel registers its webhook after commit."""
    channel = channel_prepare(
        workspace=workspace, platform=platform, config=config, allowlist=allowlist, enabled=enabled, name=name
    )
    with transaction.atomic():
        channel.save()
        if channel.enabled:
            _on_commit_register(channel)
    channel.refresh_from_db()
    return channel


def channel_bulk_create(*, channels: list[Channel]) -> list[Channel]:
    """Save prepared channels in one INSERT (bundle import); enabled telegram ones register."""
    with transaction.atomic():
        created = Channel.objects.bulk_create(channels)
        for channel in created:
            if channel.enabled:
                _on_commit_register(channel)
    return created


def channel_update(*, channel: Channel, data: Mapping[str, Any]) -> Channel:
    """Apply `config` (merged key by key; a masked secret sent back keeps the stored one; null
    removes a key), `allowlist`, `enabled` and `name`, then re-validate the whole config."""
    was_enabled = channel.enabled
    old_config = channel.config
    enabled = data.get("enabled", channel.enabled)
    merged = dict(old_config)
    if "config" in data:
        incoming = data["config"]
        if not isinstance(incoming, Mapping):
            raise InvalidConfig(
                "config must be a JSON object.", details={"config": ["Must be a JSON object."]}
            )
        secret_keys = _adapter(channel.platform).secret_keys()
        for key, value in incoming.items():
            if value is None:
                merged.pop(key, None)
            elif key in secret_keys and key in old_config and value == mask_secret(str(old_config[key])):
                continue  # the masked value came back: keep the secret
            else:
                merged[key] = value
    if "config" in data or enabled != was_enabled:
        _apply_config(channel, merged, enabled=enabled)
    if "allowlist" in data:
        channel.allowlist = _normalise_allowlist(data["allowlist"] or [])
    if "name" in data:
        channel.name = data["name"] or ""
    channel.enabled = enabled
    new_config = channel.config
    with transaction.atomic():
        channel.save()
        if channel.platform == "telegram":
            webhook_changed = any(
                old_config.get(k) != new_config.get(k) for k in ("bot_token", "webhook_secret")
            )
            if channel.enabled and (not was_enabled or webhook_changed):
                _on_commit_register(channel)
            elif was_enabled and not channel.enabled:
                _on_commit_unregister(channel, old_config)
    channel.refresh_from_db()
    return channel


def channel_delete(*, channel: Channel) -> None:
    with transaction.atomic():
        if channel.enabled:
            unregister_after_delete(channel)
        channel.delete()


# --- telegram webhook registration ----------------------------------------------------------------


def _on_commit_register(channel: Channel) -> None:
    if channel.platform == "telegram" and settings.PUBLIC_BASE_URL:
        channel_id = channel.pk
        transaction.on_commit(lambda: telegram_webhook_register(channel_id=channel_id))


def _on_commit_unregister(channel: Channel, config: dict[str, Any]) -> None:
    if channel.platform == "telegram" and settings.PUBLIC_BASE_URL:
        channel_id, credential_key = channel.pk, channel.credential_key
        transaction.on_commit(
            lambda: telegram_webhook_unregister(
                channel_id=channel_id, credential_key=credential_key, config=config
            )
        )


def unregister_after_delete(channel: Channel) -> None:
    """Once the deletion of a Telegram channel is committed, queue its `deleteWebhook`.

    In a task rather than in the request: nobody will read the channel's `last_error` any more,
    and a workspace subtree can hold many channels, each call up to 15 s. The bot token travels
    encrypted (the broker never holds a plaintext secret); the task decrypts it.
    """
    if channel.platform != "telegram" or not settings.PUBLIC_BASE_URL:
        return
    from channels_app.tasks import delete_telegram_webhook

    args = (str(channel.pk), channel.credential_key, encrypt(json.dumps(channel.config)))

    def publish() -> None:
        try:
            delete_telegram_webhook.delay(*args)
        except BROKER_ERRORS:
            logger.warning("broker unavailable: deleteWebhook of channel %s not queued", args[0])

    transaction.on_commit(publish)


def telegram_webhook_unregister_sealed(*, channel_id: str, credential_key: str, sealed_config: str) -> None:
    """`telegram_webhook_unregister` with the config as `unregister_after_delete` sealed it."""
    try:
        config = json.loads(decrypt(sealed_config))
    except (DecryptionError, ValueError):
        logger.warning("deleteWebhook of channel %s skipped: its config cannot be read", channel_id)
        return
    telegram_webhook_unregister(channel_id=channel_id, credential_key=credential_key, config=config)


def telegram_webhook_register(*, channel_id: Any) -> None:
    """setWebhook to the channel's inbound URL with its secret; a failure goes to last_error."""
    channel = Channel.objects.filter(pk=channel_id, platform="telegram").first()
    if channel is None:
        return
    adapter = ADAPTERS["telegram"]
    try:
        adapter.set_webhook(channel.config, url=inbound_url(channel=channel))  # type: ignore[attr-defined]
    except SendError as exc:
        Channel.objects.filter(pk=channel.pk).update(last_error=f"setWebhook failed: {exc.reason}")
        return
    Channel.objects.filter(pk=channel.pk, last_error__startswith="setWebhook failed").update(last_error="")


def telegram_webhook_unregister(*, channel_id: Any, credential_key: str, config: dict[str, Any]) -> None:
    """deleteWebhook, unless another enabled channel still uses the same bot."""
    if (
        Channel.objects.filter(platform="telegram", credential_key=credential_key, enabled=True)
        .exclude(pk=channel_id)
        .exists()
    ):
        return
    try:
        ADAPTERS["telegram"].delete_webhook(config)  # type: ignore[attr-defined]
    except SendError as exc:
        Channel.objects.filter(pk=channel_id).update(last_error=f"deleteWebhook failed: {exc.reason}")


# --- outbound ---------------------------------------------------------------------------------------


def _resolve_chat(channel: Channel, adapter: ChannelAdapter, chat_id: str | None) -> str:
    chat = (chat_id or "").strip() or adapter.default_chat(channel.public_config)
    if adapter.needs_chat() and not chat:
        raise ApplicationError(
            "chat_id is required: the channel has no default chat.",
            details={"chat_id": ["Required when the channel config names no default chat."]},
        )
    return chat


def channel_send(*, channel: Channel, text: str, chat_id: str | None = None) -> ChannelMessage:
    """Store an outbound message; the relay publishes `channels.send_message`, which delivers it
    with retries."""
    adapter = _adapter(channel.platform)
    chat = _resolve_chat(channel, adapter, chat_id)
    return ChannelMessage.objects.create(
        channel=channel, direction=Direction.OUTBOUND, chat_id=chat, text=text, status=MessageStatus.QUEUED
    )


def channel_test(*, channel: Channel, chat_id: str | None = None) -> None:
    """Send a test message now, once; raise 502 `platform_error` with our reason on failure."""
    adapter = _adapter(channel.platform)
    chat = _resolve_chat(channel, adapter, chat_id)
    try:
        adapter.send_part(channel.config, chat_id=chat, text=TEST_MESSAGE, meta={})
    except SendError as exc:
        raise PlatformError(f"The platform did not accept the test message ({exc.reason}).") from None


def retry_delay(*, attempt: int, retry_after: float | None) -> float:
    """Seconds before the next attempt: the platform's own wait when it gives one, else capped
    exponential backoff (base, 2×base, 4×base … up to the cap)."""
    if retry_after is not None:
        return min(max(retry_after, 0.0), float(settings.CHANNEL_SEND_RETRY_AFTER_MAX_SECONDS))
    base = float(settings.CHANNEL_SEND_BACKOFF_SECONDS)
    return min(base * (2 ** max(attempt - 1, 0)), float(settings.CHANNEL_SEND_BACKOFF_MAX_SECONDS))


def _count_message(channel_id: Any) -> None:
    Channel.objects.filter(pk=channel_id).update(
        message_count=F("message_count") + 1, last_message_at=timezone.now()
    )


def _claim(message: ChannelMessage) -> bool:
    """Count one more attempt, only if nobody else did since `message` was read.

    A compare-and-set on `attempts`: of two runs that read the same row, exactly one proceeds.
    """
    claimed = ChannelMessage.objects.filter(
        pk=message.pk, status=message.status, attempts=message.attempts
    ).update(attempts=F("attempts") + 1, updated_at=timezone.now())
    if claimed:
        message.attempts += 1
    return bool(claimed)


def message_send_attempt(*, message_id: Any) -> float | None:
    """One delivery attempt of a queued outbound message.

    Parts already sent are not sent again. Returns the delay before the next attempt, or None
    when the message is done (sent or failed). A permanent failure, or the last attempt, fails
    the message and records the reason in the channel's `last_error`.
    """
    message = (
        ChannelMessage.objects.select_related("channel")
        .filter(pk=message_id, direction=Direction.OUTBOUND)
        .first()
    )
    if message is None or message.status != MessageStatus.QUEUED:
        return None
    if not _claim(message):
        return None  # another run of the same message got there first
    channel = message.channel
    adapter = _adapter(channel.platform)
    parts = adapter.split(message.text)
    fields = ["parts_sent", "status", "error", "updated_at"]
    try:
        config = channel.config
        for index in range(message.parts_sent, len(parts)):
            adapter.send_part(config, chat_id=message.chat_id, text=parts[index], meta=message.meta)
            message.parts_sent = index + 1
    except SendError as exc:
        message.error = exc.reason
        if exc.transient and message.attempts < settings.CHANNEL_SEND_MAX_ATTEMPTS:
            message.save(update_fields=fields)
            return retry_delay(attempt=message.attempts, retry_after=exc.retry_after)
        message.status = MessageStatus.FAILED
        message.save(update_fields=fields)
        Channel.objects.filter(pk=channel.pk).update(last_error=exc.reason)
        _finish_inbound(message, ok=False)
        return None
    message.status = MessageStatus.SENT
    message.error = ""
    message.save(update_fields=fields)
    _count_message(channel.pk)
    _finish_inbound(message, ok=True)
    return None


def _finish_inbound(reply: ChannelMessage, *, ok: bool) -> None:
    """An agent reply's fate decides its inbound message's: delivered, or failed with the reason."""
    if reply.reply_to_id is None:
        return
    ChannelMessage.objects.filter(pk=reply.reply_to_id, status=MessageStatus.RECEIVED).update(
        status=MessageStatus.DELIVERED if ok else MessageStatus.FAILED,
        error="" if ok else f"reply not sent: {reply.error}",
        updated_at=timezone.now(),
    )


# --- inbound ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class WebhookAnswer:
    status: int
    body: dict[str, Any]
    created: tuple[str, ...] = ()


def webhook_receive(
    *, platform: str, body: bytes, headers: Mapping[str, str], channel_id: str | None
) -> WebhookAnswer:
    """Verify (raw bytes, fail closed) → handshake → de-duplicate and store → hand to a task.

    Returns at once with the platform's expected answer; the stored rows are the outbox: the
    relay publishes `channels.process_inbound` for them (woken by the insert's NOTIFY). A Telegram update from a
    secret this process has verified before is stored by `ingest.store_verified_update` in one
    statement; everything else, and anything that statement does not store, takes the full path.
    """
    adapter = _adapter(platform)
    secret = (headers.get(TELEGRAM_SECRET_HEADER) or "") if platform == "telegram" else ""
    if secret:
        stored = ingest.store_verified_update(secret=secret, channel_param=channel_id, body=body)
        if stored is not None:
            event, created = stored
            return WebhookAnswer(200, adapter.ack(event), tuple(created))
    matched: selectors.InboundChannel | None = None
    config: dict[str, Any] = {}
    verified: Any = None
    candidates, pool = selectors.webhook_channels(platform=platform, headers=headers, channel_id=channel_id)
    for candidate in candidates:
        config = candidate.config
        verified = adapter.verify(config, body, headers)
        if verified:
            matched = candidate
            break
    if matched is None:
        raise InvalidSignature()
    if secret and matched.enabled:
        ingest.verified_routes.remember(ingest.VerifiedRoutes.key(secret, channel_id), matched.pk)
    try:
        event = adapter.parse(config, verified, body, headers)
    except ingest.PARSE_ERRORS:
        raise ApplicationError("The event could not be read.") from None
    if event.kind == "handshake":
        return WebhookAnswer(200, event.response)
    if event.kind != "message" or not matched.enabled:
        return WebhookAnswer(200, event.response or adapter.ignored(event))
    storable = ingest.storable_event(event)
    if storable is None:
        return WebhookAnswer(200, adapter.ignored(event))
    event = storable
    targets = selectors.fanout_targets(channel=matched, chat_id=event.chat_id, pool=pool)
    if not targets:
        return WebhookAnswer(200, adapter.ignored(event))
    created = ingest.store_event([target.pk for target in targets], event)
    return WebhookAnswer(200, adapter.ack(event), tuple(created))


def _allowed(channel: Channel, message: ChannelMessage) -> bool:
    allowlist = channel.allowlist or []
    return not allowlist or message.sender_id in allowlist or message.chat_id in allowlist


def message_process_inbound(*, message_id: Any) -> float | None:
    """Allowlist → agent (A2A) → queue the reply to the same chat.

    Returns a delay when a transient agent failure should be retried, else None. Idempotent:
    a message that already left `received`, or already has its reply, is left alone.
    """
    message = (
        ChannelMessage.objects.select_related("channel__workspace")
        .filter(pk=message_id, direction=Direction.INBOUND)
        .first()
    )
    if message is None or message.status != MessageStatus.RECEIVED or message.replies.exists():
        return None
    if not _claim(message):
        return None  # another run of the same message got there first
    channel = message.channel
    fields = ["status", "error", "updated_at"]
    if message.attempts == 1:
        _count_message(channel.pk)
    if not channel.enabled:
        message.status, message.error = MessageStatus.IGNORED, "channel disabled"
        message.save(update_fields=fields)
        return None
    if not _allowed(channel, message):
        message.status, message.error = MessageStatus.IGNORED, "sender not in allowlist"
        message.save(update_fields=fields)
        return None
    try:
        reply = deliver_prompt(
            workspace=channel.workspace,
            text=message.text,
            message_id=str(message.pk),
            source="channel",
            reference=str(message.pk),
            metadata={
                "source": "channel",
                "channel_id": str(channel.pk),
                "platform": channel.platform,
                "chat_id": message.chat_id,
                "sender_id": message.sender_id,
            },
        )
    except A2AError as exc:
        message.error = exc.reason
        if exc.transient and message.attempts < settings.CHANNEL_SEND_MAX_ATTEMPTS:
            message.save(update_fields=fields)
            return retry_delay(attempt=message.attempts, retry_after=None)
        message.status = MessageStatus.FAILED
        message.save(update_fields=fields)
        return None
    if not reply.text.strip():
        message.status, message.error = MessageStatus.DELIVERED, ""
        message.save(update_fields=fields)
        return None
    ChannelMessage.objects.create(  # the relay publishes its send
        channel=channel,
        direction=Direction.OUTBOUND,
        chat_id=message.chat_id,
        text=reply.text,
        status=MessageStatus.QUEUED,
        reply_to=message,
        meta=message.meta,
    )
    return None


# --- discovery ------------------------------------------------------------------------------------


def channel_discover(*, platform: str, bot_token: str) -> Discovery:
    adapter = _adapter(platform)
    if not adapter.supports_discover:
        raise NotSupported(f"Discovery is not supported for {platform}.")
    try:
        return adapter.discover(bot_token=bot_token)
    except DiscoveryError as exc:
        if exc.code == "invalid_token":
            raise InvalidToken(exc.reason) from None
        raise PlatformError(exc.reason) from None
