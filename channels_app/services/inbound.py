"""Inbound webhooks and messages: verify and store a platform's request (the hot path first for
Telegram), then, in the background, pass each message to the agent and queue its reply."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import transaction

from channels_app import commands, conversations, ingest, selectors, typing_indicator
from channels_app.models import Channel, ChannelMessage, Direction, MessageStatus
from channels_app.services.base import (
    LOGGER_NAME,
    InvalidSignature,
    adapter_for,
    count_message,
    message_claim,
    message_unclaim,
    retry_delay,
)
from channels_app.services.outbound import channel_reply
from common.errors import ApplicationError
from workspaces.a2a import A2AError
from workspaces.delivery import WorkspaceAtCapacity, deliver_prompt

logger = logging.getLogger(LOGGER_NAME)


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
    adapter = adapter_for(platform)
    secret = ingest.route_secret(platform=platform, headers=headers)
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
    message = next(
        iter(
            ChannelMessage.objects.select_related("channel__workspace")
            .filter(pk=message_id, direction=Direction.INBOUND)
            .order_by()[:1]  # no ordering to compile: a primary key look-up
        ),
        None,
    )
    if message is None or message.status != MessageStatus.RECEIVED or message.replies.exists():
        return None
    if not message_claim(message):
        return None  # another run of the same message got there first
    channel = message.channel
    fields = ["status", "error", "updated_at"]
    if message.attempts == 1:
        count_message(channel.pk)
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
        message_unclaim(message)  # nothing was sent: this wait is not an attempt
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
