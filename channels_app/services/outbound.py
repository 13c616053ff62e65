"""Outbound messages: queue a send (the relay publishes it), deliver it part by part with
retries, test a channel, and queue the service's own replies."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from django.conf import settings
from django.utils import timezone

from channels_app import conversations
from channels_app.adapters.base import ChannelAdapter, SendError
from channels_app.models import Channel, ChannelMessage, Direction, MessageStatus
from channels_app.services.base import (
    LOGGER_NAME,
    PlatformError,
    adapter_for,
    count_message,
    message_claim,
    retry_delay,
)
from common.errors import ApplicationError
from observability.metrics import channel_send_counted

logger = logging.getLogger(LOGGER_NAME)

TEST_MESSAGE = "Test message from the Integrations API: this channel can reach this chat."


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
    adapter = adapter_for(channel.platform)
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
    adapter = adapter_for(channel.platform)
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
    adapter = adapter_for(channel.platform)
    chat = _resolve_chat(channel, adapter, chat_id)
    try:
        adapter.send_part(channel.config, chat_id=chat, text=TEST_MESSAGE, meta={})
    except SendError as exc:
        raise PlatformError(f"The platform did not accept the test message ({exc.reason}).") from None


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
    if not message_claim(message):
        return None  # another run of the same message got there first
    channel = message.channel
    adapter = adapter_for(channel.platform)
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
    count_message(channel.pk)
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
