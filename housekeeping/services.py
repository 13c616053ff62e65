"""Retention: delete finished history older than its keep period, a small batch at a time.

Every batch is one short DELETE (one transaction, at most RETENTION_BATCH_SIZE rows, found
through an index), so no table is locked for long and the web and workers carry on meanwhile.
Pending work is never selected: queued or running runs, received or queued messages (and a
message whose reply is still queued), pending approvals or ones whose agent has not been told
yet, queued or running jobs, channel clean-ups still being tried.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Model, Q, QuerySet
from django.utils import timezone

from approvals.models import Approval, ApprovalStatus
from channels_app.models import Channel, ChannelCleanup, ChannelMessage, MessageStatus
from schedules.models import FINISHED_STATUSES, Schedule, ScheduleRun
from templates_app.models import BundleImportJob, JobStatus, TemplateImportJob
from workspaces.models import AgentDelivery
from workspaces.selectors import DELIVERY_STALE_MARGIN_SECONDS

logger = logging.getLogger(__name__)

PENDING_MESSAGE_STATUSES = (MessageStatus.RECEIVED, MessageStatus.QUEUED)
FINISHED_JOB_STATUSES = (JobStatus.SUCCEEDED, JobStatus.FAILED)
CLOSED_APPROVAL_STATUSES = (ApprovalStatus.APPROVED, ApprovalStatus.REJECTED, ApprovalStatus.EXPIRED)

# Called after each batch with (part, rows deleted, seconds the DELETE's transaction took).
BatchHook = Callable[[str, int, float], None]


@dataclass(frozen=True)
class Part:
    """One kind of history: a name for reports, the querysets of its old rows (scope and age),
    the state that makes a row prunable (re-checked by each DELETE), and the indexed time column
    batches walk along."""

    name: str
    querysets: Callable[[datetime], Iterator[QuerySet]]
    state: Q
    key: str = "created_at"


def _days_ago(now: datetime, days: int) -> datetime:
    return now - timedelta(days=days)


def _runs_by_age(now: datetime) -> Iterator[QuerySet]:
    cutoff = _days_ago(now, settings.SCHEDULE_RUNS_KEEP_DAYS)
    yield ScheduleRun.objects.filter(created_at__lt=cutoff)


def _runs_over_limit(now: datetime) -> Iterator[QuerySet]:
    """Per schedule, finished runs older than its N newest runs (N = KEEP_PER_SCHEDULE).

    Only schedules that have finished more than N runs can hold more than N finished rows;
    `run_count` says which without counting rows. Rows the age rule removes are left to it.
    """
    keep = settings.SCHEDULE_RUNS_KEEP_PER_SCHEDULE
    cutoff = _days_ago(now, settings.SCHEDULE_RUNS_KEEP_DAYS)
    candidates = Schedule.objects.filter(run_count__gt=keep).values_list("pk", flat=True)
    for schedule_id in candidates.iterator(chunk_size=500):
        newest = ScheduleRun.objects.filter(schedule_id=schedule_id).order_by("-created_at", "-id")
        boundary = list(newest.values_list("created_at", "id")[keep - 1 : keep])
        if not boundary:
            continue
        created_at, run_id = boundary[0]
        older = Q(created_at__lt=created_at) | Q(created_at=created_at, id__lt=run_id)
        yield ScheduleRun.objects.filter(older, schedule_id=schedule_id, created_at__gte=cutoff)


def _messages(now: datetime) -> Iterator[QuerySet]:
    """Per channel, through the (channel, created_at) index the message list already uses."""
    cutoff = _days_ago(now, settings.CHANNEL_MESSAGES_KEEP_DAYS)
    for channel_id in Channel.objects.values_list("pk", flat=True).iterator(chunk_size=500):
        yield ChannelMessage.objects.filter(channel_id=channel_id, created_at__lt=cutoff)


def _approvals(now: datetime) -> Iterator[QuerySet]:
    """Closed approvals whose agent has been told (or telling it failed for good), with their
    audit events (deleted with them)."""
    cutoff = _days_ago(now, settings.APPROVALS_KEEP_DAYS)
    yield Approval.objects.filter(created_at__lt=cutoff)


def _jobs(model: type[Model]) -> Callable[[datetime], Iterator[QuerySet]]:
    def querysets(now: datetime) -> Iterator[QuerySet]:
        cutoff = _days_ago(now, settings.JOBS_KEEP_DAYS)
        yield model.objects.filter(created_at__lt=cutoff)

    return querysets


def _given_up_cleanups(now: datetime) -> Iterator[QuerySet]:
    """Deleted channels' clean-ups that were given up on (done ones delete themselves): kept as
    long as finished jobs, for the reason they record."""
    yield ChannelCleanup.objects.filter(created_at__lt=_days_ago(now, settings.JOBS_KEEP_DAYS))


def _stale_delivery_markers(now: datetime) -> Iterator[QuerySet]:
    """In-flight markers a crashed process left behind (the busy check already ignores them)."""
    stale = now - timedelta(seconds=settings.A2A_TIMEOUT_SECONDS + DELIVERY_STALE_MARGIN_SECONDS)
    yield AgentDelivery.objects.filter(started_at__lt=stale)


FINISHED_RUN = Q(status__in=FINISHED_STATUSES)
HANDLED_MESSAGE = ~Q(status__in=PENDING_MESSAGE_STATUSES) & ~Q(replies__status__in=PENDING_MESSAGE_STATUSES)
# Closed, and the agent told (or telling it failed for good).
TOLD_APPROVAL = Q(status__in=CLOSED_APPROVAL_STATUSES) & (Q(notified_at__isnull=False) | ~Q(notify_error=""))
FINISHED_JOB = Q(status__in=FINISHED_JOB_STATUSES)
GIVEN_UP = Q(failed_at__isnull=False)

PARTS = (
    Part("schedule_runs_by_age", _runs_by_age, FINISHED_RUN),
    Part("schedule_runs_over_limit", _runs_over_limit, FINISHED_RUN),
    Part("channel_messages", _messages, HANDLED_MESSAGE),
    Part("approvals", _approvals, TOLD_APPROVAL),
    Part("template_import_jobs", _jobs(TemplateImportJob), FINISHED_JOB),
    Part("bundle_import_jobs", _jobs(BundleImportJob), FINISHED_JOB),
    Part("channel_cleanups", _given_up_cleanups, GIVEN_UP),
    Part("agent_delivery_markers", _stale_delivery_markers, Q(), key="started_at"),
)


def _delete_in_batches(queryset: QuerySet, *, part: Part, batch_size: int, on_batch: BatchHook | None) -> int:
    """Delete the queryset's rows, `batch_size` at a time, each batch its own short transaction.

    Batches walk the time index from the oldest row and each starts where the last one ended,
    so none re-reads the index entries its predecessors left dead (until VACUUM removes them).
    The ids are read first, then deleted by primary key with the state re-checked, so a row that
    became pending in between stays (the age and scope cannot change; leaving them out keeps the
    DELETE on the primary key instead of a bitmap over the time index).
    """
    model = queryset.model
    queryset = queryset.filter(part.state)
    total = 0
    while True:
        rows = list(queryset.order_by(part.key).values_list("pk", part.key)[:batch_size])
        if not rows:
            return total
        ids = [pk for pk, _ in rows]
        started = time.perf_counter()
        deleted = model.objects.filter(part.state, pk__in=ids).delete()[1].get(model._meta.label, 0)
        if on_batch is not None:
            on_batch(part.name, deleted, time.perf_counter() - started)
        total += deleted
        if len(rows) < batch_size:
            return total
        queryset = queryset.filter(**{f"{part.key}__gte": rows[-1][1]})


def history_prune(
    *,
    now: datetime | None = None,
    dry_run: bool = False,
    batch_size: int | None = None,
    on_batch: BatchHook | None = None,
) -> dict[str, int]:
    """Delete (or, with `dry_run`, count) prunable history; returns the rows per part."""
    now = now or timezone.now()
    batch_size = batch_size or settings.RETENTION_BATCH_SIZE
    report: dict[str, int] = {}
    for part in PARTS:
        count = 0
        for queryset in part.querysets(now):
            if dry_run:
                count += queryset.filter(part.state).count()
            else:
                count += _delete_in_batches(queryset, part=part, batch_size=batch_size, on_batch=on_batch)
        report[part.name] = count
    if not dry_run and any(report.values()):
        logger.info("pruned history: %s", ", ".join(f"{name}={n}" for name, n in report.items() if n))
    return report
