"""Approval reads. Every status shown or filtered here is the effective one (lazy expiry)."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from django.db.models import Q, QuerySet
from django.utils import timezone

from approvals.models import Approval, ApprovalEvent, ApprovalStatus
from common.errors import NotFound
from workspaces.models import Workspace


def status_q(status: str, *, now: datetime | None = None) -> Q:
    """Rows whose effective status is `status`: pending past `expires_at` counts as expired."""
    now = now or timezone.now()
    if status == ApprovalStatus.PENDING:
        return Q(status=ApprovalStatus.PENDING, expires_at__gt=now)
    if status == ApprovalStatus.EXPIRED:
        return Q(status=ApprovalStatus.EXPIRED) | Q(status=ApprovalStatus.PENDING, expires_at__lte=now)
    return Q(status=status)


def approval_list(*, workspace: Workspace, status: str | None = None) -> QuerySet[Approval]:
    queryset = Approval.objects.filter(workspace=workspace)
    if status:
        queryset = queryset.filter(status_q(status))
    return queryset


def approval_get(*, workspace: Workspace, approval_id: UUID | str) -> Approval:
    """One approval of this workspace; another workspace's approval is a 404, as if absent."""
    approval = Approval.objects.filter(workspace=workspace, pk=approval_id).first()
    if approval is None:
        raise NotFound("Approval not found.")
    return approval


def approval_pending_list(*, now: datetime | None = None) -> QuerySet[Approval]:
    """Pending approvals of every workspace (not yet expired), with their workspace loaded."""
    return Approval.objects.filter(status_q(ApprovalStatus.PENDING, now=now)).select_related("workspace")


def approval_pending_count(*, now: datetime | None = None) -> int:
    return Approval.objects.filter(status_q(ApprovalStatus.PENDING, now=now)).count()


def approval_events(*, approval: Approval) -> QuerySet[ApprovalEvent]:
    return ApprovalEvent.objects.filter(approval=approval)
