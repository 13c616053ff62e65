"""Schedule reads: lists, lookups, history, preview and the busy state seen by a run."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from django.db.models import Count, Min, QuerySet
from django.utils import timezone as djtz

from common.errors import NotFound
from schedules import cron
from schedules.models import Schedule, SchedulerTick, ScheduleRun
from workspaces.models import Workspace

PREVIEW_MAX_COUNT = 50
# `after` of a preview: from here on (see PreviewInputSerializer).
PREVIEW_MIN_YEAR = 1970


def schedule_list(*, workspace: Workspace) -> QuerySet[Schedule]:
    return Schedule.objects.filter(workspace=workspace)


def schedule_get(*, workspace: Workspace, schedule_id: UUID | str) -> Schedule:
    """A schedule of this workspace; one of another workspace is a 404 like a missing one."""
    schedule = Schedule.objects.filter(workspace=workspace, pk=schedule_id).first()
    if schedule is None:
        raise NotFound("Schedule not found.")
    return schedule


def run_list(*, schedule: Schedule) -> QuerySet[ScheduleRun]:
    return ScheduleRun.objects.filter(schedule=schedule)


def schedule_preview(
    *, expression: str, timezone: str = "UTC", after: datetime | None = None, count: int = 5
) -> tuple[str, list[datetime]]:
    """Description and the next `count` fire times (UTC) strictly after `after`, without saving."""
    normalized = cron.validate_expression(expression)
    cron.zone(timezone)
    count = max(1, min(count, PREVIEW_MAX_COUNT))
    return cron.describe(normalized), cron.fire_times(normalized, timezone, after or djtz.now(), count)


def scheduler_last_tick_at() -> datetime | None:
    """When the dispatcher last completed a pass (None: never)."""
    return SchedulerTick.objects.values_list("last_tick_at", flat=True).first()


def schedule_dispatch_backlog(*, now: datetime | None = None) -> tuple[int, float]:
    """Due schedules not yet dispatched, and how late the oldest of them is (seconds, 0 if none).

    One aggregate over the partial index the dispatcher itself reads.
    """
    now = now or djtz.now()
    row = Schedule.objects.filter(enabled=True, next_run_at__lte=now).aggregate(
        due=Count("id"), oldest=Min("next_run_at")
    )
    oldest = row["oldest"]
    return row["due"], max(0.0, (now - oldest).total_seconds()) if oldest else 0.0
