"""Approvals: an agent asks, an operator decides once, the agent is told; every change is audited.

`status` is the stored state. A pending row whose `expires_at` has passed is *effectively*
expired even before the sweep marks it, so everything that shows a status uses
`effective_status` (or the matching query expressions in `selectors`).
"""

from __future__ import annotations

import uuid

from django.db import models
from django.utils import timezone

from common.outbox import OutboxKind, OutboxRow, outbox_index, register

ACTION_MAX_CHARS = 500
DESCRIPTION_MAX_CHARS = 10_000
OPTION_MAX_CHARS = 200
OPTIONS_MAX_ITEMS = 20
METADATA_MAX_DEPTH = 64  # as deep as common.safe_yaml allows; far below Python's recursion limit
NOTE_MAX_CHARS = 2_000
EXPIRES_MIN_SECONDS = 1
EXPIRES_MAX_SECONDS = 2_592_000  # 30 days
EXPIRES_DEFAULT_SECONDS = 3_600


class ApprovalStatus(models.TextChoices):
    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"
    EXPIRED = "expired"


class Approval(OutboxRow):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    workspace = models.ForeignKey("workspaces.Workspace", on_delete=models.CASCADE, related_name="approvals")
    action = models.CharField(max_length=ACTION_MAX_CHARS)
    description = models.TextField(blank=True, default="")
    metadata = models.JSONField(default=dict, blank=True)
    options = models.JSONField(default=list, blank=True)
    status = models.CharField(max_length=16, choices=ApprovalStatus.choices, default=ApprovalStatus.PENDING)
    # null means "not decided" in the API (SPEC §9), distinct from an empty note.
    decision_option = models.CharField(max_length=OPTION_MAX_CHARS, null=True, blank=True)  # noqa: DJ001
    note = models.TextField(null=True, blank=True)  # noqa: DJ001
    decided_by = models.CharField(max_length=200, null=True, blank=True)  # noqa: DJ001
    decided_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField()
    created_by = models.CharField(max_length=200, blank=True, default="")
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    # Notification of the requesting agent: claimed (lease) while a worker sends it, then
    # stamped once it has been delivered; a permanent failure is recorded instead.
    notify_claimed_at = models.DateTimeField(null=True, blank=True)
    notified_at = models.DateTimeField(null=True, blank=True)
    notify_error = models.CharField(max_length=300, blank=True, default="")
    # Due for the relay once decided or expired (the notice to send), not while pending.
    relay_due_at = models.DateTimeField(null=True, blank=True, default=None, editable=False)

    class Meta:
        ordering = ("-created_at", "-id")
        indexes = [
            models.Index(fields=["workspace", "-created_at"], name="approval_ws_created"),
            models.Index(
                fields=["expires_at"],
                name="approval_pending_expiry",
                condition=models.Q(status="pending"),
            ),
            models.Index(
                fields=["created_at", "id"],
                name="approval_pending_created",
                condition=models.Q(status="pending"),
            ),
            # Retention deletes decided approvals by age.
            models.Index(fields=["created_at"], name="approval_created"),
            outbox_index("approval_relay_due"),
        ]
        permissions = [("decide_approval", "Can approve or reject approvals")]

    def __str__(self) -> str:
        return self.action[:80]

    def is_expired(self, now=None) -> bool:
        return self.status == ApprovalStatus.PENDING and self.expires_at <= (now or timezone.now())

    @property
    def effective_status(self) -> str:
        """The status as everyone sees it: pending past `expires_at` reads as expired."""
        if self.is_expired():
            return ApprovalStatus.EXPIRED
        return self.status


class ApprovalEventKind(models.TextChoices):
    CREATED = "created"
    DECIDED = "decided"
    EXPIRED = "expired"
    NOTIFIED = "notified"
    NOTIFY_FAILED = "notify_failed"


class ApprovalEvent(models.Model):
    """One line of an approval's audit trail; written by the services, never edited."""

    id = models.BigAutoField(primary_key=True)
    approval = models.ForeignKey(Approval, on_delete=models.CASCADE, related_name="events")
    kind = models.CharField(max_length=16, choices=ApprovalEventKind.choices)
    actor = models.CharField(max_length=200, blank=True, default="")
    details = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ("created_at", "id")
        indexes = [models.Index(fields=["approval", "created_at"], name="approval_event_trail")]

    def __str__(self) -> str:
        return f"{self.kind} {self.created_at:%Y-%m-%d %H:%M:%S}"


class ApprovalChatPost(OutboxRow):
    """An approval as posted, with buttons, to one chat channel (see approvals/chat.py).

    Buttons carry `token` (random, per post), stored here only as its SHA-256, never the
    approval id: a press names the post by that token and is accepted only on the channel the
    post was made to. `shown_status` is the outcome the chat message shows, so each change of
    the approval edits it once.

    The row is also the job (the outbox): created due with the approval, for each channel that
    takes approvals, and made due again when the approval is decided or expires; its task posts
    the message or edits it to the outcome. `tries` counts the transient failures of the current
    step; `failed_at` marks a post given up on (the last reason in `error`).
    """

    id = models.BigAutoField(primary_key=True)
    approval = models.ForeignKey(Approval, on_delete=models.CASCADE, related_name="chat_posts")
    channel = models.ForeignKey(
        "channels_app.Channel", on_delete=models.CASCADE, related_name="approval_posts"
    )
    token_hash = models.CharField(max_length=64, unique=True)
    chat_id = models.CharField(max_length=200, blank=True, default="")
    platform_message_id = models.CharField(max_length=200, blank=True, default="")
    shown_status = models.CharField(max_length=16, blank=True, default="")
    error = models.CharField(max_length=300, blank=True, default="")
    tries = models.PositiveSmallIntegerField(default=0, editable=False)
    failed_at = models.DateTimeField(null=True, blank=True, editable=False)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ("created_at", "id")
        constraints = [
            models.UniqueConstraint(fields=["approval", "channel"], name="uniq_approval_chat_post")
        ]
        indexes = [outbox_index("approval_post_relay_due")]

    def __str__(self) -> str:
        return f"{self.approval_id} → {self.channel_id}"


NOTICE = register(
    OutboxKind(
        label="approvals.notice",
        model=Approval,
        task="approvals.notify_agent",
        batched=True,
        # A decided or expired approval whose agent was neither told nor given up on.
        active=~models.Q(status=ApprovalStatus.PENDING) & models.Q(notified_at__isnull=True, notify_error=""),
    )
)
APPROVAL_CHAT = register(
    OutboxKind(
        label="approvals.chat",
        model=ApprovalChatPost,
        task="approvals.sync_chat_post",
        batched=True,
        # Every post not given up on: whether it needs a post or an edit is the task's to see
        # (the approval's effective status is on another table; the relay locks only posts).
        active=models.Q(failed_at__isnull=True),
    )
)
