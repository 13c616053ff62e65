"""Channels (a chat platform connected to a workspace agent) and their message log."""

from __future__ import annotations

import json
import uuid
from typing import Any

from django.db import models
from django.utils import timezone

from common.crypto import EncryptedTextField
from common.outbox import OutboxKind, OutboxRow, outbox_index, register


class Platform(models.TextChoices):
    TELEGRAM = "telegram"
    SLACK = "slack"
    DISCORD = "discord"
    LARK = "lark"


class Channel(models.Model):
    """One platform connection of a workspace.

    The config is split in two: non-secret fields in `public_config` (JSON, readable by queries)
    and secret fields in `secret_config` (one encrypted JSON blob). `credential_key` and
    `lookup_key` are keyed hashes, so channels sharing a bot (fan-out) and the channels an
    inbound request's routing key names (Telegram's secret header, Slack's app id, Discord's
    application id, Lark's verification token) can be found without decrypting every row.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    workspace = models.ForeignKey("workspaces.Workspace", on_delete=models.CASCADE, related_name="channels")
    platform = models.CharField(max_length=16, choices=Platform.choices)
    name = models.CharField(max_length=200, blank=True, default="")
    public_config = models.JSONField(default=dict, blank=True)
    secret_config = EncryptedTextField(default="{}", blank=True)
    allowlist = models.JSONField(default=list, blank=True)
    enabled = models.BooleanField(default=True)
    credential_key = models.CharField(max_length=64, blank=True, default="", editable=False)
    lookup_key = models.CharField(max_length=64, blank=True, default="", editable=False)
    last_message_at = models.DateTimeField(null=True, blank=True)
    message_count = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(default=timezone.now, editable=False, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ("-created_at", "-id")
        indexes = [
            models.Index(fields=["workspace", "-created_at"]),
            models.Index(fields=["platform", "credential_key"]),
            # Routing: an exact key (Telegram's secret header), or the oldest channels of a key
            # or with none, cut at a few rows (selectors.webhook_channels).
            models.Index(fields=["platform", "lookup_key", "created_at"], name="channel_route_idx"),
        ]

    def __str__(self) -> str:
        return self.name or f"{self.platform} {str(self.id)[:8]}"

    @property
    def secrets(self) -> dict[str, Any]:
        cached = getattr(self, "_secrets_cache", None)
        if cached is None or cached[0] != self.secret_config:
            try:
                value = json.loads(self.secret_config or "{}")
            except ValueError:
                value = {}
            cached = (self.secret_config, value if isinstance(value, dict) else {})
            self._secrets_cache = cached
        return dict(cached[1])

    @property
    def config(self) -> dict[str, Any]:
        """The full config, secrets in plaintext: for adapters only, never for responses."""
        return {**self.public_config, **self.secrets}


class Direction(models.TextChoices):
    INBOUND = "inbound"
    OUTBOUND = "outbound"


class MessageStatus(models.TextChoices):
    RECEIVED = "received"
    DELIVERED = "delivered"
    IGNORED = "ignored"
    QUEUED = "queued"
    SENT = "sent"
    FAILED = "failed"


class ChannelMessage(OutboxRow):
    """One message in or out of a channel, with its delivery state.

    Inbound rows are unique per (channel, platform_event_id): the de-duplication of platform
    retries. An agent reply is an outbound row pointing at its inbound message (`reply_to`).
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    # No index of its own: the (channel, -created_at, -id) index below serves every lookup by
    # channel, and each index is one more write on the inbound webhook's insert.
    channel = models.ForeignKey(Channel, on_delete=models.CASCADE, related_name="messages", db_index=False)
    direction = models.CharField(max_length=8, choices=Direction.choices)
    chat_id = models.CharField(max_length=200, blank=True, default="")
    sender_id = models.CharField(max_length=200, blank=True, default="")
    text = models.TextField(blank=True, default="")
    status = models.CharField(max_length=16, choices=MessageStatus.choices)
    error = models.TextField(blank=True, default="")
    attempts = models.PositiveIntegerField(default=0)
    parts_sent = models.PositiveIntegerField(default=0)
    # Inbound: the A2A version the agent was asked in ("1.0" or "0.3"); empty otherwise.
    a2a_protocol = models.CharField(
        "A2A protocol",
        max_length=8,
        blank=True,
        default="",
        db_default="",  # the webhook's own INSERT (ingest.py) leaves the column out
        help_text="The A2A version the agent was asked in (1.0 or 0.3); empty when no request was sent.",
    )
    platform_event_id = models.CharField(max_length=200, blank=True, default="")
    # Indexed only where set (see Meta): inbound messages, the bulk of the table, have none.
    reply_to = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.CASCADE, related_name="replies", db_index=False
    )
    meta = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ("-created_at", "-id")
        indexes = [
            models.Index(fields=["channel", "-created_at", "-id"]),
            models.Index(fields=["direction", "status"]),
            models.Index(
                fields=["reply_to"], condition=models.Q(reply_to__isnull=False), name="channel_msg_reply_to"
            ),
            outbox_index("channel_msg_relay_due"),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["channel", "platform_event_id"],
                condition=~models.Q(platform_event_id=""),
                name="uniq_channel_message_event",
            )
        ]

    def __str__(self) -> str:
        return f"{self.direction} {self.status} {str(self.id)[:8]}"


class Conversation(models.Model):
    """One conversation of a channel: a chat, or a thread of it (Slack `thread_ts`).

    Holds the A2A `contextId` every prompt of the conversation carries (generated here, replaced
    by the agent's own when it returns one) and where the current conversation started, so a
    reset starts a new context with an empty history without deleting the message log. The
    counters are kept here so the conversation list costs one query whatever its length.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    channel = models.ForeignKey(Channel, on_delete=models.CASCADE, related_name="conversations")
    chat_id = models.CharField(max_length=200)
    thread_id = models.CharField(max_length=200, blank=True, default="")
    context_id = models.CharField(max_length=200)
    started_at = models.DateTimeField(default=timezone.now)
    message_count = models.PositiveIntegerField(default=0)
    last_message_text = models.TextField(blank=True, default="")
    last_message_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ("-created_at", "-id")
        constraints = [
            models.UniqueConstraint(
                fields=["channel", "chat_id", "thread_id"], name="uniq_channel_conversation"
            )
        ]
        indexes = [
            models.Index(fields=["channel", "-created_at", "-id"], name="conversation_channel_created")
        ]

    def __str__(self) -> str:
        return f"{self.chat_id}{'/' + self.thread_id if self.thread_id else ''}"


class ChannelCleanup(OutboxRow):
    """A deleted channel's `on_disable` still to run (a Telegram bot's `deleteWebhook`): the row
    is the job (the outbox), written in the deleting transaction. The channel is gone, so the
    row carries what the hook needs, its config sealed (Fernet) as `sealed_config`. Deleted once
    the hook ran; one given up on keeps its reason (`failed_at`, `error`, the config dropped)
    until retention prunes it."""

    id = models.BigAutoField(primary_key=True)
    channel_id = models.UUIDField()
    platform = models.CharField(max_length=16, choices=Platform.choices)
    credential_key = models.CharField(max_length=64, blank=True, default="")
    sealed_config = models.TextField(blank=True, default="")
    tries = models.PositiveSmallIntegerField(default=0)
    error = models.CharField(max_length=300, blank=True, default="")
    failed_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        indexes = [
            outbox_index("channel_cleanup_relay_due"),
            models.Index(fields=["created_at"], name="channel_cleanup_created"),
        ]

    def __str__(self) -> str:
        return f"{self.platform} {self.channel_id}"


INBOUND = register(
    OutboxKind(
        label="channels.inbound",
        model=ChannelMessage,
        task="channels.process_inbound",
        batched=True,
        active=models.Q(direction=Direction.INBOUND, status=MessageStatus.RECEIVED),
    )
)
OUTBOUND = register(
    OutboxKind(
        label="channels.outbound",
        model=ChannelMessage,
        task="channels.send_message",
        batched=True,
        active=models.Q(direction=Direction.OUTBOUND, status=MessageStatus.QUEUED),
    )
)
CLEANUP = register(
    OutboxKind(
        label="channels.cleanup",
        model=ChannelCleanup,
        task="channels.run_cleanup",
        batched=True,
        active=models.Q(failed_at__isnull=True),
    )
)
