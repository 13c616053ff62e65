"""Schedules (cron jobs that prompt the workspace agent) and their runs.

`next_run_at` is precomputed in UTC so the dispatcher only reads due rows through a partial
index; a run is unique per (schedule, scheduled_for) for cron triggers, which is what makes a
slot fire at most once whatever the number of dispatchers.
"""

from __future__ import annotations

import uuid

from django.db import models
from django.db.models import Q
from django.utils import timezone as djtz

from common.outbox import OutboxKind, OutboxRow, outbox_index, register
from workspaces.models import Workspace

PROMPT_MAX_CHARS = 32_000
NAME_MAX_CHARS = 200
RESPONSE_EXCERPT_MAX_CHARS = 2_000


class ScheduleSource(models.TextChoices):
    RUNTIME = "runtime"
    TEMPLATE = "template"


class RunStatus(models.TextChoices):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCESS = "success"
    ERROR = "error"
    SKIPPED = "skipped"


FINISHED_STATUSES = (RunStatus.SUCCESS, RunStatus.ERROR, RunStatus.SKIPPED)


class RunTrigger(models.TextChoices):
    CRON = "cron"
    MANUAL = "manual"


class Schedule(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="schedules")
    name = models.CharField(max_length=NAME_MAX_CHARS, blank=True, default="")
    expression = models.CharField(max_length=200)
    timezone = models.CharField(max_length=64, default="UTC")
    prompt = models.TextField()
    enabled = models.BooleanField(default=True)
    source = models.CharField(max_length=16, choices=ScheduleSource.choices, default=ScheduleSource.RUNTIME)
    next_run_at = models.DateTimeField(null=True, blank=True)
    last_run_at = models.DateTimeField(null=True, blank=True)
    last_status = models.CharField(max_length=16, choices=RunStatus.choices, null=True, blank=True)  # noqa: DJ001 - null until the first run (contract)
    last_error = models.TextField(null=True, blank=True)  # noqa: DJ001 - null: no error
    run_count = models.PositiveIntegerField(default=0)
    # Channel ids (same workspace) that receive each run's reply or failure reason.
    deliver_to = models.JSONField(default=list, blank=True)
    created_at = models.DateTimeField(default=djtz.now, editable=False)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ("created_at", "id")
        constraints = [
            models.UniqueConstraint(
                fields=["workspace", "name"], condition=~Q(name=""), name="uniq_schedule_name_per_workspace"
            ),
        ]
        indexes = [
            models.Index(fields=["workspace", "created_at"], name="schedule_ws_created_idx"),
            # The dispatcher's only query: enabled rows whose next_run_at has passed.
            models.Index(fields=["next_run_at"], condition=Q(enabled=True), name="schedule_due_idx"),
        ]

    def __str__(self) -> str:
        return self.name or f"{self.expression} ({self.timezone})"


class ScheduleRun(OutboxRow):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    # No index of its own: run_schedule_created_idx starts with it (one index fewer per insert).
    schedule = models.ForeignKey(Schedule, on_delete=models.CASCADE, related_name="runs", db_index=False)
    trigger = models.CharField(max_length=16, choices=RunTrigger.choices, default=RunTrigger.CRON)
    status = models.CharField(max_length=16, choices=RunStatus.choices, default=RunStatus.QUEUED)
    scheduled_for = models.DateTimeField()
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    duration_ms = models.PositiveIntegerField(null=True, blank=True)
    error_detail = models.TextField(null=True, blank=True)  # noqa: DJ001 - null: no error
    response_excerpt = models.TextField(null=True, blank=True)  # noqa: DJ001 - null: no reply
    # The A2A version the delivery spoke ("1.0" or "0.3"); empty when no request was sent.
    a2a_protocol = models.CharField(
        "A2A protocol",
        max_length=8,
        blank=True,
        default="",
        help_text="The A2A version the agent was asked in (1.0 or 0.3); empty when no request was sent.",
    )
    # First time the run found its workspace busy; the grace period counts from here.
    busy_since = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=djtz.now, editable=False)

    class Meta:
        ordering = ("-created_at", "-id")
        constraints = [
            # Exactly once: one cron run per slot. Manual runs are extra by definition.
            models.UniqueConstraint(
                fields=["schedule", "scheduled_for"],
                condition=Q(trigger="cron"),
                name="uniq_cron_run_per_slot",
            ),
        ]
        indexes = [
            models.Index(fields=["schedule", "-created_at"], name="run_schedule_created_idx"),
            models.Index(fields=["started_at"], condition=Q(status="running"), name="run_running_idx"),
            # The reaper and /metrics count queued runs; retention deletes by age.
            models.Index(fields=["created_at"], condition=Q(status="queued"), name="run_queued_idx"),
            models.Index(fields=["created_at"], name="run_created_idx"),
            outbox_index("run_relay_due_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.schedule_id} {self.scheduled_for:%Y-%m-%d %H:%M} {self.status}"


class SchedulerTick(models.Model):
    """When the dispatcher last completed a pass: one row, written by the dispatcher task itself.

    Beat's own `last_run_at` moves when Beat *sends* the task, even if the broker never takes
    it, so /health reads this row instead.
    """

    id = models.PositiveSmallIntegerField(primary_key=True, default=1)
    last_tick_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"dispatcher tick {self.last_tick_at:%Y-%m-%d %H:%M:%S}"


RUN = register(
    OutboxKind(
        label="schedules.run",
        model=ScheduleRun,
        task="schedules.execute_run",
        batched=True,
        rows_task="schedules.execute_runs",
        # `running` too: a run whose worker died is published again when its lease ends.
        active=Q(status__in=(RunStatus.QUEUED, RunStatus.RUNNING)),
    )
)
