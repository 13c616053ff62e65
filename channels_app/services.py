"""Channel writes: create/update/delete with config validation and secret handling, sends,
tests, discovery, inbound webhooks and the two background steps (process inbound, send)."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import connections, router, transaction
from django.db.models import F
from django.utils import timezone

from channels_app import commands, conversations, ingest, selectors, typing_indicator
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
from common.errors import ApplicationError, Conflict
from common.outbox import BROKER_ERRORS
from observability.metrics import channel_send_counted
from workspaces.a2a import A2AError
from workspaces.delivery import WorkspaceAtCapacity, deliver_prompt
from workspaces.models import Workspace
from workspaces.quotas import quota_check

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
    _apply_digests(channel, adapter, clean)


def _apply_digests(channel: Channel, adapter: ChannelAdapter, config: Mapping[str, Any]) -> None:
    channel.credential_key = credential_digest(channel.platform, adapter.credential(config))
    channel.lookup_key = credential_digest(channel.platform, adapter.lookup_value(config))


def channel_rekey_all(*, batch_size: int = 500) -> int:
    """Recompute every channel's lookup keys under the current SECRET_KEY (after a rotation);
    returns how many changed. Idempotent: rows already keyed under it are left alone."""
    changed = 0
    queryset = Channel.objects.only(
        "id", "platform", "public_config", "secret_config", "credential_key", "lookup_key"
    )
    for channel in queryset.iterator(chunk_size=batch_size):
        before = (channel.credential_key, channel.lookup_key)
        _apply_digests(channel, _adapter(channel.platform), channel.config)
        if (channel.credential_key, channel.lookup_key) != before:
            Channel.objects.filter(pk=channel.pk).update(
                credential_key=channel.credential_key, lookup_key=channel.lookup_key
            )
            changed += 1
    return changed


class ApplicationTaken(Conflict):
    message = "This platform application is connected to an enabled channel of another workspace."


def _check_public_credential(channel: Channel, *, lock: bool = False) -> None:
    """A public platform id (Discord's application id) belongs to one workspace: an enabled
    channel may not hold one that an enabled channel of another workspace holds (409).

    With `lock` (inside the saving transaction, PostgreSQL) concurrent claims of one id are
    serialised by a transaction-scoped advisory lock on its keyed hash, so two workspaces
    cannot both pass the check.
    """
    adapter = _adapter(channel.platform)
    if adapter.credential_is_secret or not channel.enabled or not channel.credential_key:
        return
    connection = connections[router.db_for_write(Channel)]
    if lock and connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [int(channel.credential_key[:15], 16)])
    taken = (
        Channel.objects.filter(platform=channel.platform, enabled=True, credential_key=channel.credential_key)
        .exclude(workspace_id=channel.workspace_id)
        .exclude(pk=channel.pk)
        .exists()
    )
    if taken:
        raise ApplicationTaken(
            details={"config": {adapter.credential_key: ["Used by an enabled channel of another workspace."]}}
        )


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
    _check_public_credential(channel)
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
        quota_check(
            workspace=workspace, resource="channels", existing=Channel.objects.filter(workspace=workspace)
        )
        _check_public_credential(channel, lock=True)
        channel.save()
        if channel.enabled:
            _on_commit_register(channel)
    channel.refresh_from_db()
    return channel


def channel_bulk_create(*, channels: list[Channel]) -> list[Channel]:
    """Save prepared channels in one INSERT (bundle and org imports); enabled telegram ones
    register. A public id claimed by two workspaces of the batch is a 409 like one claimed in
    the database."""
    owners: dict[tuple[str, str], Any] = {}
    for channel in channels:
        if channel.enabled and channel.credential_key and not _adapter(channel.platform).credential_is_secret:
            owner = owners.setdefault((channel.platform, channel.credential_key), channel.workspace_id)
            if owner != channel.workspace_id:
                raise ApplicationTaken("Two workspaces of the import connect the same platform application.")
    with transaction.atomic():
        for channel in sorted(channels, key=lambda c: c.credential_key):  # one lock order
            _check_public_credential(channel, lock=True)
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
    old_credential = channel.credential_key
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
    claims = channel.enabled and (not was_enabled or channel.credential_key != old_credential)
    with transaction.atomic():
        if claims:
            _check_public_credential(channel, lock=True)
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


def channel_send_service(
    *,
    channel_id: Any,
    text: str,
    service: str,
    chat_id: str = "",
    meta: Mapping[str, Any] | None = None,
    workspace_id: Any = None,
) -> ChannelMessage | None:
    """Queue a message the service writes itself (approval answers, schedule results) to
    `chat_id` or the channel's default chat, through the normal outbound path; None when the
    channel is gone, disabled or has no chat to send to. The relay publishes its send."""
    channels = Channel.objects.filter(pk=channel_id, enabled=True)
    if workspace_id is not None:
        channels = channels.filter(workspace_id=workspace_id)
    channel = channels.first()
    if channel is None:
        return None
    adapter = _adapter(channel.platform)
    chat = chat_id or adapter.default_chat(channel.public_config)
    if adapter.needs_chat() and not chat:
        return None
    return ChannelMessage.objects.create(
        channel=channel,
        direction=Direction.OUTBOUND,
        chat_id=chat,
        text=text,
        status=MessageStatus.QUEUED,
        meta={**(meta or {}), conversations.SERVICE_META_KEY: service},
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


def _unclaim(message: ChannelMessage) -> None:
    """Give back the attempt `_claim` counted (the delivery never started)."""
    ChannelMessage.objects.filter(pk=message.pk, attempts=message.attempts).update(
        attempts=F("attempts") - 1
    )
    message.attempts -= 1


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
            channel_send_counted(platform=channel.platform, status="retry")
            delay = retry_delay(attempt=message.attempts, retry_after=exc.retry_after)
            logger.warning(
                "%s send of message %s (channel %s) failed, attempt %d of %d, retrying in %.0f s: %s",
                channel.platform,
                message.pk,
                channel.pk,
                message.attempts,
                settings.CHANNEL_SEND_MAX_ATTEMPTS,
                delay,
                exc.reason,
            )
            return delay
        # The task itself ends normally (Celery logs "succeeded"): this line is the failure.
        logger.warning(
            "%s send of message %s (channel %s) failed after %d attempt(s): %s",
            channel.platform,
            message.pk,
            channel.pk,
            message.attempts,
            exc.reason,
        )
        message.status = MessageStatus.FAILED
        message.save(update_fields=fields)
        channel_send_counted(platform=channel.platform, status=MessageStatus.FAILED)
        Channel.objects.filter(pk=channel.pk).update(last_error=exc.reason)
        _finish_inbound(message, ok=False)
        return None
    message.status = MessageStatus.SENT
    message.error = ""
    message.save(update_fields=fields)
    channel_send_counted(platform=channel.platform, status=MessageStatus.SENT)
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
    """Verify (fail closed) → handshake → de-duplicate and store → hand to a task.

    Returns at once with the platform's expected answer; the stored rows are the outbox: the
    relay publishes `channels.process_inbound` for them (woken by the insert's NOTIFY). A Telegram update from a
    secret this process has verified before is stored by `ingest.store_verified_update` in one
    statement; everything else, and anything that statement does not store, takes the full path.
    The body is parsed at most once, and a request that names no channel is verified against at
    most `selectors.WEBHOOK_MAX_VERIFICATIONS` credentials.
    """
    adapter = _adapter(platform)
    secret = (headers.get(TELEGRAM_SECRET_HEADER) or "") if platform == "telegram" else ""
    if secret:
        stored = ingest.store_verified_update(secret=secret, channel_param=channel_id, body=body)
        if stored is not None:
            event, created = stored
            return WebhookAnswer(200, adapter.ack(event), tuple(created))
    request = adapter.request(body, headers)
    route_key = adapter.route_key(request) if channel_id is None else ""
    candidates, pool = selectors.webhook_channels(
        platform=platform, route_key=route_key, channel_id=channel_id
    )
    matched: selectors.InboundChannel | None = None
    config: dict[str, Any] = {}
    verified: Any = None
    for candidate in candidates:
        config = candidate.config
        verified = adapter.verify(config, request)
        if verified:
            matched = candidate
            break
    if matched is None:
        raise InvalidSignature()
    if pool is None:
        pool = selectors.credential_group(channel=matched)
    if channel_id is None and selectors.public_credential_shared_across_workspaces(
        channel=matched, pool=pool
    ):
        # Only the channel's own inbound URL can tell the tenants apart: guessing could hand one
        # workspace's traffic (and its follow-up URL) to another.
        logger.warning("%s request without ?channel= for an id held by several workspaces: refused", platform)
        raise InvalidSignature()
    if secret and matched.enabled:
        ingest.verified_routes.remember(ingest.VerifiedRoutes.key(secret, channel_id), matched.pk)
    try:
        event = adapter.parse(config, verified, request)
    except ingest.PARSE_ERRORS:
        raise ApplicationError("The event could not be read.") from None
    if event.kind == "handshake":
        return WebhookAnswer(200, event.response)
    if event.kind == "press" and matched.enabled:
        from approvals.chat import approval_chat_press

        body = approval_chat_press(
            platform=platform, channel_id=matched.pk, credential_key=matched.credential_key, event=event
        )
        return WebhookAnswer(200, body)
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
    command = commands.command_of(platform=channel.platform, message=message)
    if command is not None:
        _answer_command(channel, message, command)
        return None
    if not _allowed(channel, message):
        message.status, message.error = MessageStatus.IGNORED, "sender not in allowlist"
        message.save(update_fields=fields)
        return None
    conversation = conversations.conversation_for_message(message=message)
    context_id = conversation.context_id
    try:
        with typing_indicator.typing_while(channel=channel, chat_id=message.chat_id):
            reply = deliver_prompt(
                workspace=channel.workspace,
                text=message.text,
                message_id=str(message.pk),
                source="channel",
                reference=str(message.pk),
                context_id=context_id,
                metadata={
                    "source": "channel",
                    "channel_id": str(channel.pk),
                    "platform": channel.platform,
                    "chat_id": message.chat_id,
                    "sender_id": message.sender_id,
                    "history": conversations.conversation_history(conversation=conversation, message=message),
                },
            )
    except WorkspaceAtCapacity as exc:
        _unclaim(message)  # nothing was sent: this wait is not an attempt
        return exc.retry_after
    except A2AError as exc:
        message.error, message.a2a_protocol = exc.reason, exc.protocol
        fields.append("a2a_protocol")
        if exc.transient and message.attempts < settings.CHANNEL_SEND_MAX_ATTEMPTS:
            message.save(update_fields=fields)
            return retry_delay(attempt=message.attempts, retry_after=None)
        message.status = MessageStatus.FAILED
        message.save(update_fields=fields)
        return None
    message.a2a_protocol = reply.protocol
    conversations.conversation_adopt_context(
        conversation=conversation, sent=context_id, returned=reply.context_id
    )
    conversations.conversation_record(
        conversation=conversation,
        text=reply.text if reply.text.strip() else message.text,
        count=2 if reply.text.strip() else 1,
    )
    if not reply.text.strip():
        message.status, message.error = MessageStatus.DELIVERED, ""
        message.save(update_fields=[*fields, "a2a_protocol"])
        return None
    with transaction.atomic():
        message.save(update_fields=["a2a_protocol", "updated_at"])
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


def _answer_command(channel: Channel, message: ChannelMessage, command: str) -> None:
    """Answer a chat command in the same chat (the normal outbound path); the agent never sees it."""
    allowed = _allowed(channel, message)
    if command == commands.START:
        text = commands.start_text(
            workspace_name=channel.workspace.name, chat_id=message.chat_id, allowed=allowed
        )
    elif command == commands.HELP:
        text = commands.help_text(platform=channel.platform)
    elif allowed:
        conversations.conversation_reset_for_message(message=message)
        text = commands.RESET_TEXT
    else:
        text = commands.NOT_ALLOWED_TEXT
    message.meta = {**(message.meta or {}), conversations.COMMAND_META_KEY: command}
    message.save(update_fields=["meta", "updated_at"])
    channel_reply(message=message, text=text, service="command")


def channel_reply(*, message: ChannelMessage, text: str, service: str) -> ChannelMessage:
    """Queue a message the service itself writes in answer to `message` (same chat and thread);
    the relay publishes its send."""
    return ChannelMessage.objects.create(
        channel_id=message.channel_id,
        direction=Direction.OUTBOUND,
        chat_id=message.chat_id,
        text=text,
        status=MessageStatus.QUEUED,
        reply_to=message,
        meta={**(message.meta or {}), conversations.SERVICE_META_KEY: service},
    )


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
