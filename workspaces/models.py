"""Workspaces: one AI agent each, in a tree, with encrypted secrets and a JSON memory."""

from __future__ import annotations

import uuid
from datetime import timedelta

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator
from django.db import models
from django.utils import timezone

from common.crypto import EncryptedTextField

SECRET_KEY_PATTERN = r"^[A-Z][A-Z0-9_]{0,127}$"
MEMORY_KEY_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,199}$"
MAX_CONCURRENT_TASKS_LIMIT = 1000


class WorkspaceStatus(models.TextChoices):
    ONLINE = "online"
    OFFLINE = "offline"
    UNKNOWN = "unknown"


class A2AProtocol(models.TextChoices):
    """The A2A version deliveries speak: found out from the agent (`auto`) or forced."""

    AUTO = "auto"
    V1_0 = "1.0", "1.0"
    V0_3 = "0.3", "0.3"


class Workspace(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=200)
    role = models.CharField(max_length=500, blank=True, default="")
    runtime = models.CharField(max_length=64, db_index=True)
    tier = models.PositiveSmallIntegerField(
        default=2, validators=[MinValueValidator(1), MaxValueValidator(4)]
    )
    # Deleting a parent is refused by the service unless it cascades explicitly.
    parent = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.CASCADE, related_name="children"
    )
    url = models.URLField(max_length=2048, blank=True, default="")  # http(s); checked again at send time
    max_concurrent_tasks = models.PositiveIntegerField(
        default=1, validators=[MinValueValidator(1), MaxValueValidator(MAX_CONCURRENT_TASKS_LIMIT)]
    )
    a2a_protocol = models.CharField(
        "A2A protocol",
        max_length=8,
        choices=A2AProtocol.choices,
        default=A2AProtocol.AUTO,
        help_text="A2A version of deliveries: auto (from the agent card, else 1.0 then 0.3), 1.0 or 0.3.",
    )
    active_tasks = models.PositiveIntegerField(default=0)
    current_task = models.CharField(max_length=1000, blank=True, default="")
    last_heartbeat_at = models.DateTimeField(null=True, blank=True)
    config = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ("-created_at", "-id")
        indexes = [models.Index(fields=["parent", "-created_at"])]

    def __str__(self) -> str:
        return self.name

    @property
    def status(self) -> str:
        if self.last_heartbeat_at is None:
            return WorkspaceStatus.UNKNOWN
        age = timezone.now() - self.last_heartbeat_at
        if age <= timedelta(seconds=settings.WORKSPACE_ONLINE_SECONDS):
            return WorkspaceStatus.ONLINE
        return WorkspaceStatus.OFFLINE


class WorkspaceSecret(models.Model):
    """A named secret for the agent; the value is encrypted and never returned by the API."""

    id = models.BigAutoField(primary_key=True)
    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="secrets")
    key = models.CharField(max_length=128, validators=[RegexValidator(SECRET_KEY_PATTERN)])
    value = EncryptedTextField(blank=True, default="")
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ("key",)
        constraints = [models.UniqueConstraint(fields=["workspace", "key"], name="uniq_workspace_secret_key")]

    def __str__(self) -> str:
        return self.key


class WorkspaceMemory(models.Model):
    """A key/value entry of the agent's memory; the value is any JSON."""

    id = models.BigAutoField(primary_key=True)
    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="memory")
    key = models.CharField(max_length=200, validators=[RegexValidator(MEMORY_KEY_PATTERN)])
    value = models.JSONField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ("key",)
        verbose_name_plural = "workspace memory"
        constraints = [models.UniqueConstraint(fields=["workspace", "key"], name="uniq_workspace_memory_key")]

    def __str__(self) -> str:
        return self.key


class AgentDelivery(models.Model):
    """A prompt this service is delivering to an agent right now (the in-flight count for busy).

    A row lives for the duration of one A2A request; rows older than the A2A timeout plus a
    margin are ignored, so a crashed process cannot leave a workspace busy forever.
    """

    id = models.BigAutoField(primary_key=True)
    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="deliveries_in_flight")
    source = models.CharField(max_length=32)
    reference = models.CharField(max_length=64, blank=True, default="")
    started_at = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name_plural = "agent deliveries"
        indexes = [models.Index(fields=["workspace", "started_at"])]

    def __str__(self) -> str:
        return f"{self.source} {self.reference}"
