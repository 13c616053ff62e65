"""Bearer tokens, stored only as a SHA-256 hash plus a display hint."""

from __future__ import annotations

import uuid

from django.db import models
from django.utils import timezone

from tokens.secrets import masked


class TokenRole(models.TextChoices):
    AGENT = "agent"
    OPERATOR = "operator"


class ActiveTokenQuerySet(models.QuerySet):
    def active(self, now=None) -> ActiveTokenQuerySet:
        now = now or timezone.now()
        return self.filter(revoked_at__isnull=True).filter(
            models.Q(expires_at__isnull=True) | models.Q(expires_at__gt=now)
        )


class BaseToken(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=100)
    token_hash = models.CharField(max_length=64, unique=True, editable=False)
    hint_prefix = models.CharField(max_length=8, editable=False)
    hint_suffix = models.CharField(max_length=4, editable=False)
    created_by = models.CharField(max_length=200, blank=True, default="", editable=False)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True, editable=False)

    objects = ActiveTokenQuerySet.as_manager()

    class Meta:
        abstract = True

    def __str__(self) -> str:
        return f"{self.name} ({self.masked})"

    @property
    def masked(self) -> str:
        return masked(self.hint_prefix, self.hint_suffix)

    def is_active(self, now=None) -> bool:
        now = now or timezone.now()
        if self.revoked_at is not None:
            return False
        return self.expires_at is None or self.expires_at > now


class WorkspaceToken(BaseToken):
    workspace = models.ForeignKey("workspaces.Workspace", on_delete=models.CASCADE, related_name="tokens")
    role = models.CharField(max_length=16, choices=TokenRole.choices, default=TokenRole.AGENT)
    # The token that minted this one, if a token did: revoking a token revokes what it minted.
    created_by_token = models.ForeignKey(
        "self", null=True, blank=True, editable=False, on_delete=models.SET_NULL, related_name="minted"
    )
    created_by_admin_token = models.ForeignKey(
        "tokens.AdminToken",
        null=True,
        blank=True,
        editable=False,
        on_delete=models.SET_NULL,
        related_name="minted",
    )

    class Meta:
        ordering = ("-created_at", "-id")
        indexes = [models.Index(fields=["workspace", "-created_at"])]


class AdminToken(BaseToken):
    class Meta:
        ordering = ("-created_at", "-id")
