"""Plugins installed into a workspace (the registry itself lives on disk, in PLUGINS_DIR)."""

from __future__ import annotations

import uuid

from django.db import models

from common.jobs import Job
from common.outbox import OutboxKind, outbox_index, register
from workspaces.models import Workspace


class PluginStatus(models.TextChoices):
    INSTALLING = "installing"
    INSTALLED = "installed"
    FAILED = "failed"


class InstalledPlugin(Job):
    """One plugin of one workspace: its install state and the manifest of the installed tree.

    `source` is the source of the latest request; `installed_source`, `sha256`, `resolved_ref`,
    `installed_at` and the manifest fields describe the tree on disk and only change when an
    install succeeds, so a failed reinstall can fall back to them. `attempt` identifies the
    latest request: a worker only promotes its tree if its attempt is still the current one.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="plugins")
    name = models.CharField(max_length=128)
    source = models.CharField(max_length=512)
    requested_sha256 = models.CharField(max_length=64, blank=True, default="")
    # The job's states are the plugin's: installing (queued or running), installed, failed.
    status = models.CharField(max_length=16, choices=PluginStatus.choices, default=PluginStatus.INSTALLING)
    error = models.CharField(max_length=500, blank=True, default="")
    attempt = models.UUIDField(default=uuid.uuid4)

    installed_source = models.CharField(max_length=512, blank=True, default="")
    sha256 = models.CharField(max_length=64, blank=True, default="")
    resolved_ref = models.CharField(max_length=64, blank=True, default="")
    installed_at = models.DateTimeField(null=True, blank=True)
    version = models.CharField(max_length=64, blank=True, default="")
    description = models.TextField(blank=True, default="")
    author = models.CharField(max_length=200, blank=True, default="")
    tags = models.JSONField(default=list, blank=True)
    runtimes = models.JSONField(default=list, blank=True)
    skills = models.JSONField(default=list, blank=True)

    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ("-created_at", "-id")
        constraints = [
            models.UniqueConstraint(fields=["workspace", "name"], name="uniq_installed_plugin_name"),
        ]
        indexes = [models.Index(fields=["workspace", "-created_at"]), outbox_index("plugin_install_due")]

    def __str__(self) -> str:
        return f"{self.name} ({self.status})"


class RegistryPlugin(InstalledPlugin):
    """Admin-only proxy: its changelist shows the on-disk registry (PLUGINS_DIR), not rows."""

    class Meta:
        proxy = True
        verbose_name = "plugin in the registry"
        verbose_name_plural = "plugin registry"


INSTALL = register(
    OutboxKind(
        label="plugins.install",
        model=InstalledPlugin,
        task="plugins.install",
        active=models.Q(status=PluginStatus.INSTALLING),
    )
)
