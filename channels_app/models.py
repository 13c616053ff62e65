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
    `lookup_key` are keyed hashes of credentials, so channels sharing a bot (fan-out) and the
    channel a Telegram secret header names can be found without decrypting every row.
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
            models.Index(fields=["platform", "lookup_key"]),
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


INBOUND = register(
    OutboxKind(
        label="channels.inbound",
        model=ChannelMessage,
        task="channels.process_inbound",
        active=models.Q(direction=Direction.INBOUND, status=MessageStatus.RECEIVED),
    )
)
OUTBOUND = register(
    OutboxKind(
        label="channels.outbound",
        model=ChannelMessage,
        task="channels.send_message",
        active=models.Q(direction=Direction.OUTBOUND, status=MessageStatus.QUEUED),
    )
)
