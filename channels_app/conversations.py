"""Conversations: one A2A context per chat (per thread on Slack) and the history sent with it.

A conversation is keyed by (channel, chat, thread). Its `context_id` goes with every prompt as
`message.contextId`; the agent's own `contextId`, when its reply carries one, replaces ours, so
an agent that names its contexts keeps its names. The history is read from the message log
(no second copy): the last `CHANNEL_HISTORY_MESSAGES` user messages and agent replies of the
same conversation since it started, oldest first. A reset moves the start and draws a new id.
"""

from __future__ import annotations

import uuid
from datetime import UTC
from typing import Any

from django.conf import settings
from django.db.models import F, Q
from django.utils import timezone

from channels_app.models import ChannelMessage, Conversation, Direction, MessageStatus

HISTORY_TEXT_MAX_CHARS = 4000
LAST_MESSAGE_MAX_CHARS = 500
# Meta keys that mark rows the service wrote itself (command answers, approval posts, schedule
# results) and commands it answered: never part of what the agent is told was said.
SERVICE_META_KEY = "service"
COMMAND_META_KEY = "chat_command"
_USER_STATUSES = (MessageStatus.RECEIVED, MessageStatus.DELIVERED, MessageStatus.FAILED)


def new_context_id() -> str:
    return str(uuid.uuid4())


def thread_of(message: ChannelMessage) -> str:
    """The thread a message belongs to ("" for the chat itself): Slack's `thread_ts`."""
    value = (message.meta or {}).get("thread_ts")
    return str(value)[:200] if value else ""


def conversation_for_message(*, message: ChannelMessage) -> Conversation:
    """The conversation of an inbound message, created on its first message."""
    conversation, _created = Conversation.objects.get_or_create(
        channel_id=message.channel_id,
        chat_id=message.chat_id,
        thread_id=thread_of(message),
        defaults={"context_id": new_context_id(), "started_at": message.created_at},
    )
    return conversation


def _utc(moment: Any) -> str:
    return moment.astimezone(UTC).strftime(settings.REST_FRAMEWORK["DATETIME_FORMAT"])


def conversation_history(*, conversation: Conversation, message: ChannelMessage) -> list[dict[str, str]]:
    """What was said in the conversation before `message`, oldest first, at most
    `CHANNEL_HISTORY_MESSAGES` entries of `{role, text, at}` (one query)."""
    limit = settings.CHANNEL_HISTORY_MESSAGES
    if limit <= 0:
        return []
    rows = ChannelMessage.objects.filter(
        channel_id=conversation.channel_id,
        chat_id=conversation.chat_id,
        created_at__gte=conversation.started_at,
        created_at__lte=message.created_at,
    ).exclude(pk=message.pk)
    if conversation.thread_id:
        rows = rows.filter(meta__thread_ts=conversation.thread_id)
    else:
        rows = rows.exclude(meta__has_key="thread_ts")
    user = Q(direction=Direction.INBOUND, status__in=_USER_STATUSES) & ~Q(meta__has_key=COMMAND_META_KEY)
    agent = Q(direction=Direction.OUTBOUND, reply_to__isnull=False) & ~Q(meta__has_key=SERVICE_META_KEY)
    recent = list(
        rows.filter(user | agent)
        .order_by("-created_at", "-id")
        .values_list("direction", "text", "created_at")[:limit]
    )
    return [
        {
            "role": "user" if direction == Direction.INBOUND else "agent",
            "text": text[:HISTORY_TEXT_MAX_CHARS],
            "at": _utc(at),
        }
        for direction, text, at in reversed(recent)
    ]


def conversation_record(*, conversation: Conversation, text: str, count: int = 1) -> None:
    """Count messages of the conversation and keep the last one (for the conversation list)."""
    Conversation.objects.filter(pk=conversation.pk).update(
        message_count=F("message_count") + count,
        last_message_text=text[:LAST_MESSAGE_MAX_CHARS],
        last_message_at=timezone.now(),
    )


def conversation_adopt_context(*, conversation: Conversation, sent: str, returned: str | None) -> None:
    """Take the agent's own contextId, unless the conversation was reset since `sent` went out."""
    if returned and returned != sent and len(returned) <= 200:
        Conversation.objects.filter(pk=conversation.pk, context_id=sent).update(context_id=returned)


def conversation_reset(*, conversation: Conversation) -> Conversation:
    """Start over: a new context id, an empty history and a zero count."""
    conversation.context_id = new_context_id()
    conversation.started_at = timezone.now()
    conversation.message_count = 0
    conversation.last_message_text = ""
    conversation.last_message_at = None
    conversation.save(
        update_fields=[
            "context_id",
            "started_at",
            "message_count",
            "last_message_text",
            "last_message_at",
            "updated_at",
        ]
    )
    return conversation


def conversation_reset_for_message(*, message: ChannelMessage) -> Conversation:
    return conversation_reset(conversation=conversation_for_message(message=message))
