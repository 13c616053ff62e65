"""Workspace reads: lookups, secrets and memory lists, and the busy state used by deliveries."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from uuid import UUID

from django.conf import settings
from django.db.models import Count, QuerySet
from django.utils import timezone

from common.errors import NotFound
from workspaces.models import AgentDelivery, Workspace, WorkspaceMemory, WorkspaceSecret

DELIVERY_STALE_MARGIN_SECONDS = 60


def workspace_get(*, workspace_id: UUID | str) -> Workspace:
    workspace = Workspace.objects.filter(pk=workspace_id).first()
    if workspace is None:
        raise NotFound("Workspace not found.")
    return workspace


def workspace_list() -> QuerySet[Workspace]:
    return Workspace.objects.all()


def workspace_ancestor_ids(*, workspace_id: UUID) -> list[UUID]:
    """Ids from the parent of `workspace_id` up to its root (one query per level)."""
    ancestors: list[UUID] = []
    current = Workspace.objects.filter(pk=workspace_id).values_list("parent_id", flat=True).first()
    while current is not None and current not in ancestors:
        ancestors.append(current)
        current = Workspace.objects.filter(pk=current).values_list("parent_id", flat=True).first()
    return ancestors


def secret_list(*, workspace: Workspace) -> QuerySet[WorkspaceSecret]:
    """Secret keys only: the encrypted value is not even loaded."""
    return WorkspaceSecret.objects.filter(workspace=workspace).defer("value")


def memory_list(*, workspace: Workspace) -> QuerySet[WorkspaceMemory]:
    return WorkspaceMemory.objects.filter(workspace=workspace)


@dataclass(frozen=True)
class BusyState:
    """How loaded a workspace is: the larger of our in-flight deliveries and its own report."""

    in_flight: int
    reported: int
    capacity: int

    @property
    def active(self) -> int:
        return max(self.in_flight, self.reported)

    @property
    def busy(self) -> bool:
        return self.active >= self.capacity

    @property
    def reason(self) -> str:
        return f"workspace busy: {self.active}/{self.capacity} tasks active"


def delivery_stale_before(now: datetime) -> datetime:
    """In-flight markers (and running runs) older than this no longer count as busy: past the A2A
    timeout and a margin, or past the job lease, after which the relay hands the job to another
    worker (a killed worker's marker must not block that attempt)."""
    seconds = min(settings.A2A_TIMEOUT_SECONDS + DELIVERY_STALE_MARGIN_SECONDS, settings.OUTBOX_LEASE_SECONDS)
    return now - timedelta(seconds=seconds)


def delivery_capacity(workspace: Workspace) -> int:
    """Deliveries the workspace may have in flight at once: its `max_concurrent_tasks`, never
    more than WORKSPACE_MAX_CONCURRENT_DELIVERIES server-wide."""
    return max(1, min(workspace.max_concurrent_tasks, settings.WORKSPACE_MAX_CONCURRENT_DELIVERIES))


def workspace_busy_state(*, workspace: Workspace, now: datetime | None = None) -> BusyState:
    now = now or timezone.now()
    in_flight = AgentDelivery.objects.filter(
        workspace=workspace, started_at__gte=delivery_stale_before(now)
    ).count()
    return _busy_state(workspace, in_flight, now)


def workspace_busy_states(
    *, workspaces: Iterable[Workspace], now: datetime | None = None
) -> dict[UUID, BusyState]:
    """`workspace_busy_state` of several workspaces by id, in one query."""
    now = now or timezone.now()
    workspaces = list(workspaces)
    counts = dict(
        AgentDelivery.objects.filter(
            workspace_id__in=[w.pk for w in workspaces], started_at__gte=delivery_stale_before(now)
        )
        .values_list("workspace_id")
        .annotate(n=Count("id"))
        .order_by()
    )
    return {w.pk: _busy_state(w, counts.get(w.pk, 0), now) for w in workspaces}


def _busy_state(workspace: Workspace, in_flight: int, now: datetime) -> BusyState:
    reported = 0
    fresh = timedelta(seconds=settings.WORKSPACE_HEARTBEAT_FRESH_SECONDS)
    if workspace.last_heartbeat_at and now - workspace.last_heartbeat_at < fresh:
        reported = workspace.active_tasks
    return BusyState(in_flight=in_flight, reported=reported, capacity=delivery_capacity(workspace))
