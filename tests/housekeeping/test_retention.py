"""Retention: finished history past its keep period goes, in small batches; pending work never."""

from __future__ import annotations

import uuid
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.utils import timezone

from approvals.models import Approval, ApprovalEvent
from channels_app.models import ChannelCleanup, ChannelMessage
from housekeeping.services import history_prune
from housekeeping.tasks import prune_history
from schedules.models import Schedule, ScheduleRun
from templates_app.models import BundleImportJob, TemplateImportJob
from tests.channels_app.helpers import telegram_channel
from workspaces.models import AgentDelivery

pytestmark = pytest.mark.django_db

NOW = timezone.now().replace(microsecond=0)
DAY = timedelta(days=1)
SECOND = timedelta(seconds=1)


@pytest.fixture(autouse=True)
def keep(settings):
    settings.SCHEDULE_RUNS_KEEP_DAYS = 90
    settings.SCHEDULE_RUNS_KEEP_PER_SCHEDULE = 1000
    settings.CHANNEL_MESSAGES_KEEP_DAYS = 90
    settings.APPROVALS_KEEP_DAYS = 365
    settings.JOBS_KEEP_DAYS = 30
    return settings


@pytest.fixture
def schedule(workspace) -> Schedule:
    return Schedule.objects.create(workspace=workspace, expression="* * * * *", prompt="p", name="s")


def _run(schedule: Schedule, *, at, status: str = "success") -> ScheduleRun:
    return ScheduleRun.objects.create(
        schedule=schedule, trigger="manual", status=status, scheduled_for=at, created_at=at
    )


def _left(model, **filters) -> int:
    return model.objects.filter(**filters).count()


def test_runs_go_after_keep_days_exactly(schedule):
    cutoff = NOW - 90 * DAY
    over = _run(schedule, at=cutoff - SECOND)
    at_edge = _run(schedule, at=cutoff)
    recent = _run(schedule, at=NOW - 89 * DAY)
    for status in ("success", "error", "skipped"):
        _run(schedule, at=cutoff - DAY, status=status)
    report = history_prune(now=NOW)
    assert report["schedule_runs_by_age"] == 4
    assert set(ScheduleRun.objects.values_list("pk", flat=True)) == {at_edge.pk, recent.pk}
    assert not ScheduleRun.objects.filter(pk=over.pk).exists()


def test_pending_runs_are_never_pruned(schedule, keep):
    keep.SCHEDULE_RUNS_KEEP_PER_SCHEDULE = 1
    schedule.run_count = 10
    schedule.save()
    queued = _run(schedule, at=NOW - 400 * DAY, status="queued")
    running = _run(schedule, at=NOW - 400 * DAY, status="running")
    _run(schedule, at=NOW, status="queued")
    history_prune(now=NOW)
    assert _left(ScheduleRun, pk__in=[queued.pk, running.pk]) == 2


@pytest.mark.parametrize(("runs", "deleted"), [(3, 0), (4, 1), (6, 3)])
def test_per_schedule_keeps_the_newest_n(schedule, workspace, keep, runs, deleted):
    keep.SCHEDULE_RUNS_KEEP_PER_SCHEDULE = 3
    schedule.run_count = runs
    schedule.save()
    made = [_run(schedule, at=NOW - (runs - i) * SECOND) for i in range(runs)]  # oldest first
    other = Schedule.objects.create(workspace=workspace, expression="* * * * *", prompt="p", name="o")
    other.run_count = 5
    other.save()
    for i in range(5):
        _run(other, at=NOW - DAY - i * SECOND)
    report = history_prune(now=NOW)
    assert report["schedule_runs_over_limit"] == deleted + 2  # the other schedule's 2 oldest too
    kept = set(ScheduleRun.objects.filter(schedule=schedule).values_list("pk", flat=True))
    assert kept == {run.pk for run in made[deleted:]}
    assert _left(ScheduleRun, schedule=other) == 3


def test_per_schedule_limit_breaks_ties_on_the_id(schedule, keep):
    keep.SCHEDULE_RUNS_KEEP_PER_SCHEDULE = 3
    schedule.run_count = 4
    schedule.save()
    made = sorted((_run(schedule, at=NOW - DAY) for _ in range(4)), key=lambda run: run.pk)
    history_prune(now=NOW)
    assert set(ScheduleRun.objects.values_list("pk", flat=True)) == {run.pk for run in made[1:]}


def test_per_schedule_limit_never_takes_pending_runs(schedule, keep):
    keep.SCHEDULE_RUNS_KEEP_PER_SCHEDULE = 2
    schedule.run_count = 5
    schedule.save()
    old_queued = _run(schedule, at=NOW - 3 * DAY, status="queued")
    old_done = _run(schedule, at=NOW - 3 * DAY + SECOND)
    for i in range(2):
        _run(schedule, at=NOW - i * SECOND)
    history_prune(now=NOW)
    assert ScheduleRun.objects.filter(pk=old_queued.pk).exists()
    assert not ScheduleRun.objects.filter(pk=old_done.pk).exists()


def _message(channel, *, direction: str, status: str, at, reply_to=None) -> ChannelMessage:
    return ChannelMessage.objects.create(
        channel=channel, direction=direction, status=status, created_at=at, reply_to=reply_to
    )


def test_messages_go_after_keep_days_but_pending_ones_stay(workspace):
    channel = telegram_channel(workspace)
    cutoff = NOW - 90 * DAY
    old = cutoff - SECOND
    gone = [
        _message(channel, direction="inbound", status=status, at=old)
        for status in ("delivered", "ignored", "failed")
    ] + [_message(channel, direction="outbound", status=status, at=old) for status in ("sent", "failed")]
    stays = [
        _message(channel, direction="inbound", status="received", at=old - DAY),
        _message(channel, direction="outbound", status="queued", at=old - DAY),
        _message(channel, direction="inbound", status="delivered", at=cutoff),
    ]
    # An old inbound message whose reply is still queued is pending work too.
    waiting = _message(channel, direction="inbound", status="failed", at=old)
    stays += [waiting, _message(channel, direction="outbound", status="queued", at=old, reply_to=waiting)]
    # An answered one goes with its reply.
    answered = _message(channel, direction="inbound", status="delivered", at=old)
    gone += [answered, _message(channel, direction="outbound", status="sent", at=old, reply_to=answered)]
    report = history_prune(now=NOW)
    assert report["channel_messages"] == len(gone)
    assert set(ChannelMessage.objects.values_list("pk", flat=True)) == {m.pk for m in stays}


def _approval(workspace, *, status: str, at, notified: bool = True, notify_error: str = "") -> Approval:
    approval = Approval.objects.create(
        workspace=workspace,
        action="deploy",
        status=status,
        expires_at=at + DAY,
        created_at=at,
        notified_at=at if notified else None,
        notify_error=notify_error,
    )
    ApprovalEvent.objects.create(approval=approval, kind="created", created_at=at)
    return approval


def test_closed_approvals_and_their_events_go_after_keep_days(workspace):
    cutoff = NOW - 365 * DAY
    old = cutoff - SECOND
    gone = [
        _approval(workspace, status="approved", at=old),
        _approval(workspace, status="rejected", at=old),
        _approval(workspace, status="expired", at=old, notified=False, notify_error="agent unreachable"),
    ]
    stays = [
        _approval(workspace, status="pending", at=old - DAY, notified=False),
        _approval(workspace, status="approved", at=old, notified=False),  # the agent is not told yet
        _approval(workspace, status="approved", at=cutoff),
    ]
    assert history_prune(now=NOW)["approvals"] == len(gone)
    assert set(Approval.objects.values_list("pk", flat=True)) == {a.pk for a in stays}
    assert set(ApprovalEvent.objects.values_list("approval_id", flat=True)) == {a.pk for a in stays}


@pytest.mark.parametrize("model", [TemplateImportJob, BundleImportJob])
def test_finished_jobs_go_after_keep_days(model):
    cutoff = NOW - 30 * DAY
    gone = [
        model.objects.create(status=status, created_at=cutoff - SECOND) for status in ("succeeded", "failed")
    ]
    stays = [
        model.objects.create(status=status, created_at=cutoff - 9 * DAY) for status in ("queued", "running")
    ]
    stays.append(model.objects.create(status="failed", created_at=cutoff))
    history_prune(now=NOW)
    assert set(model.objects.values_list("pk", flat=True)) == {job.pk for job in stays}
    assert not model.objects.filter(pk__in=[job.pk for job in gone]).exists()


def test_given_up_channel_cleanups_go_after_keep_days_pending_ones_stay():
    """A clean-up that ran deletes itself; one given up on keeps its reason for JOBS_KEEP_DAYS;
    one still being tried is never pruned, however old."""
    cutoff = NOW - 30 * DAY

    def cleanup(*, at, failed: bool) -> ChannelCleanup:
        return ChannelCleanup.objects.create(
            channel_id=uuid.uuid4(),
            platform="telegram",
            failed_at=at if failed else None,
            error="telegram: credentials refused (HTTP 401)" if failed else "",
            created_at=at,
        )

    gone = cleanup(at=cutoff - SECOND, failed=True)
    stays = [cleanup(at=cutoff, failed=True), cleanup(at=cutoff - 9 * DAY, failed=False)]
    assert history_prune(now=NOW)["channel_cleanups"] == 1
    assert set(ChannelCleanup.objects.values_list("pk", flat=True)) == {row.pk for row in stays}
    assert not ChannelCleanup.objects.filter(pk=gone.pk).exists()


def test_stale_delivery_markers_go_fresh_ones_stay(workspace, settings):
    stale_at = NOW - timedelta(seconds=settings.A2A_TIMEOUT_SECONDS + 60) - SECOND
    stale = AgentDelivery.objects.create(workspace=workspace, source="schedule", started_at=stale_at)
    fresh = AgentDelivery.objects.create(workspace=workspace, source="schedule", started_at=NOW - SECOND)
    assert history_prune(now=NOW)["agent_delivery_markers"] == 1
    assert list(AgentDelivery.objects.values_list("pk", flat=True)) == [fresh.pk]
    assert not AgentDelivery.objects.filter(pk=stale.pk).exists()


def test_deletes_in_batches_of_the_setting(schedule):
    for i in range(5):
        _run(schedule, at=NOW - 100 * DAY - i * SECOND)
    batches: list[tuple[str, int]] = []
    history_prune(now=NOW, batch_size=2, on_batch=lambda part, n, seconds: batches.append((part, n)))
    assert batches == [("schedule_runs_by_age", 2), ("schedule_runs_by_age", 2), ("schedule_runs_by_age", 1)]


def test_dry_run_command_shows_what_would_go_and_deletes_nothing(schedule, workspace):
    now = timezone.now()
    for i in range(3):
        _run(schedule, at=now - 91 * DAY - i * SECOND)
    _run(schedule, at=now - 89 * DAY)
    TemplateImportJob.objects.create(status="succeeded", created_at=now - 31 * DAY)
    out = StringIO()
    call_command("prune_history", "--dry-run", stdout=out)
    text = out.getvalue()
    assert "schedule_runs_by_age: would delete 3" in text
    assert "template_import_jobs: would delete 1" in text
    assert "total: would delete 4" in text
    assert _left(ScheduleRun) == 4 and _left(TemplateImportJob) == 1
    out = StringIO()
    call_command("prune_history", stdout=out)
    assert "total: deleted 4" in out.getvalue()
    assert _left(ScheduleRun) == 1 and _left(TemplateImportJob) == 0


def test_beat_task_prunes(schedule, settings):
    _run(schedule, at=timezone.now() - 91 * DAY)
    assert "housekeeping.prune_history" in {entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()}
    from integrations_project.celery import app

    app.loader.import_default_modules()
    assert "housekeeping.prune_history" in app.tasks  # a worker finds it
    assert prune_history.apply().get()["schedule_runs_by_age"] == 1
    assert _left(ScheduleRun) == 0


def test_batches_sharing_one_timestamp_miss_no_row(schedule):
    """Each batch starts at the last one's time (inclusive): rows of that same instant still go."""
    for _ in range(5):
        _run(schedule, at=NOW - 100 * DAY)
    assert history_prune(now=NOW, batch_size=2)["schedule_runs_by_age"] == 5
    assert _left(ScheduleRun) == 0
