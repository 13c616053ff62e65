"""Approval writes: create, decide (exactly once), expire, and tell the requesting agent.

A decision is ONE conditional UPDATE (`WHERE status = 'pending' AND expires_at > now`), so of
any number of concurrent deciders exactly one changes the row; the others see the row already
decided (409 `already_decided`) or past its expiry (409 `expired`). Expiry uses the disjoint
condition `expires_at <= now`, so an expired approval can never become approved.
"""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, timedelta
from typing import Any
from uuid import UUID

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from access.principal import Principal
from approvals import chat
from approvals.models import NOTE_MAX_CHARS, Approval, ApprovalEvent, ApprovalEventKind, ApprovalStatus
from common.errors import ApplicationError, Conflict, Forbidden, NotFound
from common.outbox import wake_on_commit
from workspaces.a2a import A2AError
from workspaces.delivery import WorkspaceAtCapacity, deliver_prompt
from workspaces.models import Workspace
from workspaces.quotas import quota_check

logger = logging.getLogger(__name__)

SYSTEM_ACTOR = "system"
DECISIONS = {"approve": ApprovalStatus.APPROVED, "reject": ApprovalStatus.REJECTED}
# Fixed namespace: the A2A messageId of a notification is derived from the approval and its
# final status, so every retry of the same notification carries the same messageId.
_NOTIFY_NAMESPACE = uuid.UUID("6f1c1f0e-3d0a-4b8e-9f5c-2a9d7e0b4c11")


class AlreadyDecided(Conflict):
    code = "already_decided"
    message = "The approval has already been decided."


class ApprovalExpired(Conflict):
    code = "expired"
    message = "The approval has expired and can no longer be decided."


class AgentCannotDecide(Forbidden):
    message = "Agent tokens cannot decide approvals; use an operator token or admin credentials."


def _record(approval_id: UUID, kind: str, actor: str, details: dict[str, Any] | None = None) -> None:
    ApprovalEvent.objects.create(approval_id=approval_id, kind=kind, actor=actor, details=details or {})


@transaction.atomic
def approval_create(
    *,
    workspace: Workspace,
    action: str,
    created_by: str,
    description: str = "",
    metadata: dict[str, Any] | None = None,
    options: list[str] | None = None,
    expires_in_seconds: int = 3600,
) -> Approval:
    """Create a pending approval; at most WORKSPACE_MAX_PENDING_APPROVALS pending per workspace
    (expired ones do not count, swept or not)."""
    now = timezone.now()
    pending = Approval.objects.filter(workspace=workspace, status=ApprovalStatus.PENDING, expires_at__gt=now)
    quota_check(workspace=workspace, resource="pending_approvals", existing=pending)
    approval = Approval.objects.create(
        workspace=workspace,
        action=action,
        description=description,
        metadata=metadata or {},
        options=list(options or []),
        expires_at=now + timedelta(seconds=expires_in_seconds),
        created_by=created_by,
        created_at=now,
    )
    _record(approval.pk, ApprovalEventKind.CREATED, created_by, {"expires_at": _utc(approval.expires_at)})
    chat.approval_chat_posts_create(approval=approval)  # the relay publishes them after commit
    return approval


def approval_decide(
    *,
    approval: Approval,
    decision: str,
    actor: Principal,
    option: str | None = None,
    note: str | None = None,
) -> Approval:
    """Approve or reject; the API and the admin console both come through here.

    `decided_by` is always the credential's name (token name, staff username or ADMIN_TOKEN).
    """
    if not actor.is_operator:
        raise AgentCannotDecide()
    if decision not in DECISIONS:
        raise ApplicationError(
            "decision must be approve or reject.", details={"decision": ["Must be approve or reject."]}
        )
    if option is not None and option not in approval.options:
        raise ApplicationError(
            "option must be one of the approval's options.",
            details={"option": [f"Must be one of: {', '.join(approval.options) or '(none offered)'}."]},
        )
    if note is not None and len(note) > NOTE_MAX_CHARS:
        raise ApplicationError(
            f"note must be at most {NOTE_MAX_CHARS} characters.",
            details={"note": [f"At most {NOTE_MAX_CHARS} characters."]},
        )
    if note is not None and "\x00" in note:  # PostgreSQL text cannot hold NUL (the console's form)
        raise ApplicationError(
            "note: Null characters are not allowed.", details={"note": ["Null characters are not allowed."]}
        )
    status = DECISIONS[decision]
    now = timezone.now()
    with transaction.atomic():
        won = Approval.objects.filter(
            pk=approval.pk, status=ApprovalStatus.PENDING, expires_at__gt=now
        ).update(
            status=status,
            decision_option=option,
            note=note,
            decided_by=actor.name,
            decided_at=now,
            relay_due_at=now,  # the relay publishes the agent's notice after commit
        )
        if won:
            _record(approval.pk, ApprovalEventKind.DECIDED, actor.name, {"status": status, "option": option})
            wake_on_commit()
            chat.approval_chat_posts_due([approval.pk])  # edited to show the outcome
    try:
        approval.refresh_from_db()
    except Approval.DoesNotExist:  # deleted with its workspace meanwhile
        raise NotFound("Approval not found.") from None
    if not won:
        if approval.status in (ApprovalStatus.PENDING, ApprovalStatus.EXPIRED):
            raise ApprovalExpired()
        raise AlreadyDecided(details={"status": [approval.status]})
    return approval


def approval_expire_due(*, now: Any = None, limit: int = 500) -> int:
    """Mark pending approvals past `expires_at` as expired (the Beat sweep); returns how many.

    Rows being decided right now are skipped (locked) and re-checked on the next sweep.
    """
    now = now or timezone.now()
    with transaction.atomic():
        ids = list(
            Approval.objects.select_for_update(skip_locked=True)
            .filter(status=ApprovalStatus.PENDING, expires_at__lte=now)
            .order_by("expires_at")
            .values_list("id", flat=True)[:limit]
        )
        if not ids:
            return 0
        Approval.objects.filter(id__in=ids, status=ApprovalStatus.PENDING).update(
            status=ApprovalStatus.EXPIRED, relay_due_at=now
        )
        ApprovalEvent.objects.bulk_create(
            [
                ApprovalEvent(
                    approval_id=pk, kind=ApprovalEventKind.EXPIRED, actor=SYSTEM_ACTOR, created_at=now
                )
                for pk in ids
            ]
        )
        wake_on_commit()
        chat.approval_chat_posts_due(ids)
    logger.info("expired %d approval(s)", len(ids))
    return len(ids)


def _utc(moment: Any) -> str:
    """ISO 8601 in UTC with `Z`, in exactly the API's format (SPEC §1)."""
    return moment.astimezone(UTC).strftime(settings.REST_FRAMEWORK["DATETIME_FORMAT"])


def notification_text(approval: Approval) -> str:
    subject = f'Approval {approval.id} ("{approval.action}")'
    if approval.status == ApprovalStatus.EXPIRED:
        return (
            f"{subject} expired at {_utc(approval.expires_at)} without a decision. Treat it as not approved."
        )
    lines = [f"{subject} was {approval.status} by {approval.decided_by}."]
    if approval.decision_option is not None:
        lines.append(f"Option: {approval.decision_option}")
    if approval.note:
        lines.append(f"Note: {approval.note}")
    return "\n".join(lines)


def notification_metadata(approval: Approval) -> dict[str, Any]:
    return {
        "type": "approval.decision",
        "approval_id": str(approval.id),
        "status": approval.status,
        "option": approval.decision_option,
        "note": approval.note,
        "decided_by": approval.decided_by,
        "decided_at": _utc(approval.decided_at) if approval.decided_at else None,
    }


def notification_message_id(approval: Approval) -> str:
    return str(uuid.uuid5(_NOTIFY_NAMESPACE, f"{approval.id}:{approval.status}"))


def approval_notify(*, approval_id: UUID | str, final_attempt: bool = True) -> str:
    """Tell the requesting agent the outcome, at most once; returns "sent", "failed" or "skipped".

    A claim (conditional UPDATE on `notify_claimed_at`) makes duplicate task runs skip, and the
    `notified_at` stamp is set only after the agent accepted the message. A transient failure
    releases the claim and re-raises the `A2AError` so the task can retry, unless this is the
    final attempt, in which case the failure is recorded.
    """
    now = timezone.now()
    lease_start = now - timedelta(seconds=settings.A2A_TIMEOUT_SECONDS + 60)
    claimed = (
        Approval.objects.filter(pk=approval_id, notified_at__isnull=True, notify_error="")
        .exclude(status=ApprovalStatus.PENDING)
        .filter(Q(notify_claimed_at__isnull=True) | Q(notify_claimed_at__lt=lease_start))
        .update(notify_claimed_at=now)
    )
    if not claimed:
        return "skipped"
    approval = Approval.objects.select_related("workspace").get(pk=approval_id)
    message_id = notification_message_id(approval)
    try:
        reply = deliver_prompt(
            workspace=approval.workspace,
            text=notification_text(approval),
            message_id=message_id,
            source="approval",
            reference=str(approval.id),
            metadata=notification_metadata(approval),
        )
    except WorkspaceAtCapacity:
        # Nothing was sent: give the claim back; the task tries again shortly.
        Approval.objects.filter(pk=approval.pk, notify_claimed_at=now).update(notify_claimed_at=None)
        raise
    except A2AError as exc:
        if exc.transient and not final_attempt:
            Approval.objects.filter(pk=approval.pk, notify_claimed_at=now).update(notify_claimed_at=None)
            raise
        reason = exc.reason[:300]
        with transaction.atomic():
            Approval.objects.filter(pk=approval.pk, notify_claimed_at=now).update(notify_error=reason)
            _record(
                approval.pk,
                ApprovalEventKind.NOTIFY_FAILED,
                SYSTEM_ACTOR,
                {"reason": reason, "a2a_protocol": exc.protocol},
            )
        logger.warning("approval %s: agent not notified: %s", approval.pk, reason)
        return "failed"
    with transaction.atomic():
        Approval.objects.filter(pk=approval.pk, notify_claimed_at=now).update(notified_at=timezone.now())
        _record(
            approval.pk,
            ApprovalEventKind.NOTIFIED,
            SYSTEM_ACTOR,
            {"status": approval.status, "message_id": message_id, "a2a_protocol": reply.protocol},
        )
    return "sent"
