"""Schedule writes: create/update/delete, run now, the dispatcher and the run itself.

Views, admin actions and Celery tasks are thin wrappers around these functions.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from functools import partial
from typing import Any
from uuid import UUID

from django.conf import settings
from django.db import DatabaseError, IntegrityError, connection, connections, transaction
from django.db.models import Case, CharField, DateTimeField, F, Q, TextField, Value, When
from django.utils import timezone as djtz

from channels_app.models import Channel
from channels_app.services import channel_send_service
from common.db import retry_on_lost_connection
from common.errors import ApplicationError, Conflict
from common.outbox import Attempt, created_fields, publish_created, wake_on_commit
from observability.metrics import schedule_run_finished, schedule_run_started
from schedules import cron, dispatch_sql
from schedules.models import (
    NAME_MAX_CHARS,
    PROMPT_MAX_CHARS,
    RESPONSE_EXCERPT_MAX_CHARS,
    RUN,
    RunStatus,
    RunTrigger,
    Schedule,
    SchedulerTick,
    ScheduleRun,
    ScheduleSource,
)
from workspaces.a2a import A2AError
from workspaces.delivery import SCHEDULE_SOURCE, deliver_prompt, deliveries_register
from workspaces.models import AgentDelivery, Workspace
from workspaces.quotas import quota_check
from workspaces.selectors import workspace_busy_states

logger = logging.getLogger(__name__)

DISPATCH_BATCH_SIZE = 1000
ADVANCE_GROUPS_MAX = 20
BUSY_RECHECK_SECONDS = 5.0
EDITABLE_FIELDS = ("expression", "timezone", "prompt", "enabled", "name", "deliver_to")
DELIVER_TO_MAX_ITEMS = 10


# --- validation ---------------------------------------------------------------------------------


def _invalid(field: str, message: str) -> ApplicationError:
    return ApplicationError(f"{field}: {message}", details={field: [message]})


def prompt_normalize(prompt: Any) -> str:
    """`\\r` removed, then 1 to 32,000 characters and not only whitespace."""
    if not isinstance(prompt, str):
        raise _invalid("prompt", "Must be a string.")
    text = prompt.replace("\r", "")
    if not text.strip():
        raise _invalid("prompt", "Must not be blank.")
    if len(text) > PROMPT_MAX_CHARS:
        raise _invalid("prompt", f"Must be at most {PROMPT_MAX_CHARS} characters (got {len(text)}).")
    return text


def name_normalize(name: Any) -> str:
    if name is None:
        return ""
    if not isinstance(name, str):
        raise _invalid("name", "Must be a string.")
    name = name.strip()
    if len(name) > NAME_MAX_CHARS:
        raise _invalid("name", f"Must be at most {NAME_MAX_CHARS} characters.")
    return name


def deliver_to_normalize(*, workspace_id: UUID, value: Any) -> list[str]:
    """`deliver_to` as stored: distinct ids of channels of the same workspace, at most
    `DELIVER_TO_MAX_ITEMS` (400 `invalid_request` otherwise, naming the field)."""
    if not isinstance(value, (list, tuple)):
        raise _invalid("deliver_to", "Must be a list of channel ids.")
    ids: list[str] = []
    for item in value:
        try:
            text = str(UUID(str(item)))
        except ValueError:
            raise _invalid("deliver_to", "Each entry must be a channel id.") from None
        if text not in ids:
            ids.append(text)
    if len(ids) > DELIVER_TO_MAX_ITEMS:
        raise _invalid("deliver_to", f"At most {DELIVER_TO_MAX_ITEMS} channels.")
    found = {
        str(pk)
        for pk in Channel.objects.filter(workspace_id=workspace_id, pk__in=ids).values_list("pk", flat=True)
    }
    if len(found) != len(ids):
        raise _invalid("deliver_to", "Each entry must be a channel of this workspace.")
    return ids


def _name_conflict(name: str) -> Conflict:
    return Conflict(
        f"A schedule named {name!r} already exists in this workspace.",
        details={"name": ["Must be unique within the workspace."]},
    )


def _check_name_free(*, workspace_id: UUID, name: str, exclude_id: UUID | None = None) -> None:
    if not name:
        return
    clash = Schedule.objects.filter(workspace_id=workspace_id, name=name)
    if exclude_id is not None:
        clash = clash.exclude(pk=exclude_id)
    if clash.exists():
        raise _name_conflict(name)


def _next_run(schedule: Schedule, now: datetime) -> datetime | None:
    if not schedule.enabled:
        return None
    return cron.next_fire(schedule.expression, schedule.timezone, now)


# --- create, update, delete -------------------------------------------------------------------------


def schedule_prepare(
    *,
    workspace: Workspace,
    expression: str,
    prompt: str,
    timezone: str = "UTC",
    enabled: bool = True,
    name: str = "",
    source: str = ScheduleSource.RUNTIME,
    deliver_to: Sequence[Any] = (),
) -> Schedule:
    """A validated, UNSAVED schedule with `next_run_at` computed (for create and bulk imports)."""
    normalized = cron.validate_expression(expression)
    cron.zone(timezone)
    if source not in ScheduleSource.values:
        raise _invalid("source", f"Must be one of {', '.join(ScheduleSource.values)}.")
    schedule = Schedule(
        workspace=workspace,
        name=name_normalize(name),
        expression=normalized,
        timezone=timezone,
        prompt=prompt_normalize(prompt),
        enabled=bool(enabled),
        source=source,
        deliver_to=deliver_to_normalize(workspace_id=workspace.pk, value=deliver_to) if deliver_to else [],
    )
    schedule.next_run_at = _next_run(schedule, djtz.now())
    return schedule


def schedule_create(
    *,
    workspace: Workspace,
    expression: str,
    prompt: str,
    timezone: str = "UTC",
    enabled: bool = True,
    name: str = "",
    source: str = ScheduleSource.RUNTIME,
    deliver_to: Sequence[Any] = (),
) -> Schedule:
    """Validate and save; a non-empty name already used in the workspace is a 409 `conflict`."""
    schedule = schedule_prepare(
        workspace=workspace,
        expression=expression,
        prompt=prompt,
        timezone=timezone,
        enabled=enabled,
        name=name,
        source=source,
        deliver_to=deliver_to,
    )
    _check_name_free(workspace_id=workspace.pk, name=schedule.name)
    try:
        with transaction.atomic():
            quota_check(
                workspace=workspace,
                resource="schedules",
                existing=Schedule.objects.filter(workspace=workspace),
            )
            schedule.save(force_insert=True)
    except IntegrityError:
        raise _name_conflict(schedule.name) from None
    return schedule


def schedule_bulk_create(*, schedules: list[Schedule]) -> list[Schedule]:
    """Save prepared schedules in one INSERT (org/bundle imports); a duplicate name is a 409."""
    if not schedules:
        return []
    try:
        with transaction.atomic():
            return Schedule.objects.bulk_create(schedules)
    except IntegrityError:
        raise Conflict(
            "Two schedules of one workspace would have the same name.",
            details={"name": ["Must be unique within the workspace."]},
        ) from None


@transaction.atomic
def schedule_update(*, schedule: Schedule, data: dict[str, Any], now: datetime | None = None) -> Schedule:
    """Apply any of expression, timezone, prompt, enabled, name.

    `next_run_at` is recomputed from now when the expression, time zone or enabled flag changes;
    any edit turns a template schedule into a runtime one (it no longer matches its template).
    """
    unknown = sorted(set(data) - set(EDITABLE_FIELDS))
    if unknown:
        raise _invalid(unknown[0], "This field cannot be changed.")
    # Lock the row: the dispatcher skips it meanwhile instead of advancing a stale copy.
    current = Schedule.objects.select_for_update().get(pk=schedule.pk)
    changes: dict[str, Any] = {}
    if "expression" in data:
        changes["expression"] = cron.validate_expression(data["expression"])
    if "timezone" in data:
        cron.zone(data["timezone"])
        changes["timezone"] = data["timezone"]
    if "prompt" in data:
        changes["prompt"] = prompt_normalize(data["prompt"])
    if "enabled" in data:
        if not isinstance(data["enabled"], bool):
            raise _invalid("enabled", "Must be a boolean.")
        changes["enabled"] = data["enabled"]
    if "deliver_to" in data:
        changes["deliver_to"] = deliver_to_normalize(
            workspace_id=current.workspace_id, value=data["deliver_to"]
        )
    if "name" in data:
        changes["name"] = name_normalize(data["name"])
        if changes["name"] != current.name:
            _check_name_free(workspace_id=current.workspace_id, name=changes["name"], exclude_id=current.pk)
    timing_changed = any(
        field in changes and changes[field] != getattr(current, field)
        for field in ("expression", "timezone", "enabled")
    )
    for field, value in changes.items():
        setattr(current, field, value)
    update_fields = [*changes, "updated_at"]
    if data and current.source != ScheduleSource.RUNTIME:
        current.source = ScheduleSource.RUNTIME
        update_fields.append("source")
    if timing_changed:
        current.next_run_at = _next_run(current, now or djtz.now())
        update_fields.append("next_run_at")
    if changes or "source" in update_fields:
        try:
            with transaction.atomic():
                current.save(update_fields=update_fields)
        except IntegrityError:
            raise _name_conflict(current.name) from None
    return current


def schedule_delete(*, schedule: Schedule) -> None:
    """Delete the schedule and its history; a queued run then finds nothing and never fires."""
    schedule.delete()


# --- runs ----------------------------------------------------------------------------------------


@transaction.atomic
def schedule_run_now(*, schedule: Schedule, now: datetime | None = None) -> ScheduleRun:
    """Queue a manual run, whether the schedule is enabled or not (202 in the API); the relay
    publishes it once committed."""
    now = now or djtz.now()
    return ScheduleRun.objects.create(
        schedule=schedule, trigger=RunTrigger.MANUAL, status=RunStatus.QUEUED, scheduled_for=now
    )


class _SlotPlanner:
    """Works out (slot to run, next slot) per due schedule, memoised within one dispatch pass.

    Many schedules share an expression, zone and due time (every hour on the hour...), so one
    cron computation usually serves a whole batch.
    """

    def __init__(self, now: datetime) -> None:
        self.now = now
        self._memo: dict[tuple[str, str, datetime], tuple[datetime, datetime | None]] = {}

    def plan(self, expression: str, timezone: str, due: datetime) -> tuple[datetime, datetime | None]:
        key = (expression, timezone, due)
        if key not in self._memo:
            self._memo[key] = self._compute(expression, timezone, due)
        return self._memo[key]

    def _compute(self, expression: str, timezone: str, due: datetime) -> tuple[datetime, datetime | None]:
        following = cron.next_fire(expression, timezone, due)
        if following is None or following > self.now:
            return due, following
        # Downtime: several slots were missed. One catch-up run for the latest of them, then the
        # series continues from now.
        latest = cron.latest_fire(expression, timezone, self.now)
        slot = latest if latest is not None and latest >= following else following
        return slot, cron.next_fire(expression, timezone, self.now)


def schedule_dispatch_due(*, now: datetime | None = None, batch_size: int = DISPATCH_BATCH_SIZE) -> int:
    """Claim due schedules, create one queued run each, advance them, and publish the runs.

    Rows are claimed with `FOR UPDATE SKIP LOCKED`, so concurrent dispatchers share the work
    instead of waiting or doubling it; the unique (schedule, scheduled_for) constraint is the
    backstop. The runs are outbox rows created already published (`created_fields`): the
    dispatcher publishes them itself once their batch has committed, and the relay only steps in
    if it died in between (when their lease ends) or the broker refused them.
    Returns the number of runs created.
    """
    now = now or djtz.now()
    planner = _SlotPlanner(now)
    created = 0
    in_callers_transaction = connection.in_atomic_block
    # Publishing a batch overlaps with claiming the next (one thread, batches in order).
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="dispatch-publish") as publisher:
        while True:
            with transaction.atomic():
                claimed = list(
                    Schedule.objects.select_for_update(skip_locked=True)
                    .filter(enabled=True, next_run_at__lte=now)
                    .order_by("next_run_at")
                    .values_list("id", "expression", "timezone", "next_run_at")[:batch_size]
                )
                if not claimed:
                    break
                plan = [(pk, *planner.plan(expression, zone, due)) for pk, expression, zone, due in claimed]
                inserted = _record_runs(plan, now=now)
            if in_callers_transaction:  # published when the caller's transaction commits
                transaction.on_commit(partial(_publish_runs, inserted))
            else:
                publisher.submit(_publish_runs_in_thread, inserted)
            created += len(inserted)
            if len(claimed) < batch_size:
                break
    return created


def _publish_runs(ids: list[UUID]) -> None:
    """Publish a committed batch of runs; a failure leaves them to the relay."""
    try:
        publish_created(RUN, ids)
    except Exception:
        logger.exception(
            "dispatcher: %d runs not published; the relay sends them when their lease ends", len(ids)
        )


def _publish_runs_in_thread(ids: list[UUID]) -> None:
    try:
        _publish_runs(ids)
    finally:
        connections.close_all()  # this thread's, if the broker's refusal made it use one


def _record_runs(plan: list[tuple[UUID, datetime, datetime | None]], *, now: datetime) -> list[UUID]:
    """Advance each planned (schedule, slot, next time) and insert its run; the ids inserted."""
    outbox = created_fields(now)
    if dispatch_sql.supported():
        return dispatch_sql.advance_and_insert_runs(plan, now=now, outbox=outbox)
    runs = [
        ScheduleRun(
            schedule_id=pk,
            trigger=RunTrigger.CRON,
            status=RunStatus.QUEUED,
            scheduled_for=slot,
            created_at=now,
            **outbox,
        )
        for pk, slot, _ in plan
    ]
    ScheduleRun.objects.bulk_create(runs, ignore_conflicts=True)
    inserted = list(ScheduleRun.objects.filter(pk__in=[run.pk for run in runs]).values_list("pk", flat=True))
    _advance([(pk, following) for pk, _, following in plan])
    return inserted


def scheduler_tick_record(*, at: datetime | None = None) -> None:
    """Note that the dispatcher completed a pass (one upsert of the single tick row)."""
    SchedulerTick.objects.bulk_create(
        [SchedulerTick(pk=1, last_tick_at=at or djtz.now())],
        update_conflicts=True,
        unique_fields=["id"],
        update_fields=["last_tick_at"],
    )


def _advance(moves: list[tuple[UUID, datetime | None]]) -> None:
    """Store new next_run_at values in one statement per distinct value (ORM path).

    Due schedules mostly share their next time (every minute, every hour...), so this is a
    handful of `UPDATE ... WHERE id IN (...)`; far cheaper than a per-row CASE.
    """
    groups: dict[datetime | None, list[UUID]] = {}
    for pk, next_run_at in moves:
        groups.setdefault(next_run_at, []).append(pk)
    if len(groups) > ADVANCE_GROUPS_MAX:
        Schedule.objects.bulk_update(
            [Schedule(pk=pk, next_run_at=next_run_at) for pk, next_run_at in moves], ["next_run_at"]
        )
        return
    for next_run_at, ids in groups.items():
        Schedule.objects.filter(pk__in=ids).update(next_run_at=next_run_at)


def _bookkeep(*, run: ScheduleRun, status: str, at: datetime, error: str | None) -> None:
    """Count the finished run and, unless a later run finished first, make it the schedule's last."""
    newer = Q(last_run_at__isnull=True) | Q(last_run_at__lte=at)
    Schedule.objects.filter(pk=run.schedule_id).update(
        run_count=F("run_count") + 1,
        last_run_at=Case(When(newer, then=Value(at)), default=F("last_run_at"), output_field=DateTimeField()),
        last_status=Case(When(newer, then=Value(status)), default=F("last_status"), output_field=CharField()),
        last_error=Case(When(newer, then=Value(error)), default=F("last_error"), output_field=TextField()),
    )


def _finish(
    *,
    run: ScheduleRun,
    status: str,
    now: datetime,
    from_status: str,
    error: str | None = None,
    excerpt: str | None = None,
    a2a_protocol: str = "",
) -> bool:
    """Close a run (only from the status we hold) and update the schedule's bookkeeping."""
    duration = int((now - run.started_at).total_seconds() * 1000) if run.started_at else None
    with transaction.atomic(savepoint=False):  # one commit for the run and its schedule
        closed = ScheduleRun.objects.filter(pk=run.pk, status=from_status).update(
            relay_due_at=None,  # finished: no more attempts
            status=status,
            finished_at=now,
            duration_ms=max(duration, 0) if duration is not None else None,
            error_detail=error,
            response_excerpt=excerpt,
            a2a_protocol=a2a_protocol,
        )
        if closed:
            _bookkeep(run=run, status=status, at=run.started_at or now, error=error)
    if closed:
        schedule_run_finished(status=status)
    return bool(closed)


@dataclass
class RunClaims:
    """What one claiming transaction decided: runs to deliver now (each with its in-flight
    marker) and runs waiting for a busy workspace (seconds until their next check)."""

    deliver: list[tuple[ScheduleRun, AgentDelivery]] = dataclasses.field(default_factory=list)
    waits: dict[str, float] = dataclasses.field(default_factory=dict)


def run_execute(
    *, run_id: UUID | str, now: datetime | None = None, job: Attempt | None = None
) -> float | None:
    """Execute one run: the body of `schedules.execute_run`, idempotent on the run id.

    Claims it (`runs_claim`), then asks the agent with no connection held and records the
    outcome. Returns None when the run is done (or there was nothing to do), or the number of
    seconds to wait before trying again because the workspace is busy and the grace has not
    ended (the row is then due again at that time).
    """
    claims = runs_claim(jobs=[(run_id, job)], now=now)
    for run, marker in claims.deliver:
        run_deliver(run=run, marker=marker, now=now)
    return claims.waits.get(str(run_id))


def runs_claim(
    *, jobs: Sequence[tuple[UUID | str, Attempt | None]], now: datetime | None = None
) -> RunClaims:
    """Claim runs (one message's, up to OUTBOX_MESSAGE_ROWS) in one transaction.

    The runs' workspaces are locked (in id order), so busy checks and claims of one workspace
    go one at a time; their load is counted in one query; the runs admitted are claimed with one
    UPDATE per attempt number, which also claims the outbox attempt of the message (`job`,
    common.outbox), and registered as in flight in one INSERT. A few statements for the whole
    message instead of a transaction per run. A run the workspace has no room for waits (busy
    grace, SPEC §4) or is skipped. With `job`, a run left `running` by an attempt that died is
    delivered again (same messageId); without (tests, tools), it is left alone.
    """
    clock_now = now or djtz.now()
    by_pk = {str(pk): job for pk, job in jobs}
    claims = RunClaims()
    with transaction.atomic():
        workspaces = {
            w.pk: w
            for w in Workspace.objects.select_for_update(of=("self",))
            .filter(schedules__runs__pk__in=list(by_pk))
            .order_by("pk")
        }
        runs = _claimable_runs(by_pk)
        states = workspace_busy_states(workspaces=workspaces.values(), now=clock_now)
        admitted: dict[int | None, list[ScheduleRun]] = {}
        starting: list[ScheduleRun] = []
        for run in runs:
            job = by_pk[str(run.pk)]
            workspace = workspaces.get(run.schedule.workspace_id)
            if workspace is None:  # not locked above: leave it to the lease rather than guess
                continue
            run.schedule.workspace = workspace
            if run.status == RunStatus.RUNNING:
                # The attempt that claimed it died (worker killed, connection lost): the outcome
                # is unknown, so deliver again with the same messageId rather than record a failure.
                if job is not None and _claim_attempt(job, from_status=RunStatus.RUNNING):
                    starting.append(run)
            elif run.trigger == RunTrigger.CRON and not run.schedule.enabled:
                _skip(run=run, now=clock_now, reason="schedule disabled")
            elif states[workspace.pk].busy:
                state = states[workspace.pk]
                claim = job.claim_fields() if job else {}
                wait = _defer_or_skip(run=run, reason=state.reason, now=clock_now, claim=claim)
                if wait is not None:
                    claims.waits[str(run.pk)] = wait
            else:
                states[workspace.pk] = replace(
                    states[workspace.pk], in_flight=states[workspace.pk].in_flight + 1
                )
                admitted.setdefault(job.number if job else None, []).append(run)
        for number, group in admitted.items():
            starting += _start_runs(group, by_pk, number, clock_now)
        markers = deliveries_register(
            [(run.schedule.workspace, SCHEDULE_SOURCE, str(run.pk)) for run in starting]
        )
        claims.deliver = list(zip(starting, markers, strict=True))
    for run, _ in claims.deliver:
        if run.trigger == RunTrigger.CRON and run.status == RunStatus.QUEUED:
            schedule_run_started(lag_seconds=(clock_now - run.scheduled_for).total_seconds())
    return claims


def _claimable_runs(by_pk: dict[str, Attempt | None]) -> list[ScheduleRun]:
    """The runs still queued or running, read under the workspace locks, that their message's
    attempt may claim (all of them without one)."""
    rows = ScheduleRun.objects.select_related("schedule").filter(
        pk__in=list(by_pk), status__in=(RunStatus.QUEUED, RunStatus.RUNNING)
    )
    runs = list(rows.order_by())
    early = [r for r in runs if (job := by_pk[str(r.pk)]) is not None and r.publish_attempt < job.number]
    if early and by_pk[str(early[0].pk)].relay_still_marking():
        runs = list(rows.order_by())  # the relay's transaction marked them meanwhile
    return [
        run
        for run in runs
        if (job := by_pk[str(run.pk)]) is None
        or (run.publish_attempt == job.number and run.run_attempt < job.number)
    ]


def _start_runs(
    group: list[ScheduleRun], by_pk: dict[str, Attempt | None], number: int | None, now: datetime
) -> list[ScheduleRun]:
    """Claim admitted runs of one attempt number in one UPDATE; those whose schedule was
    disabled a moment ago are skipped instead. The runs claimed."""
    fields: dict[str, Any] = {"status": RunStatus.RUNNING, "started_at": now}
    rows = ScheduleRun.objects.filter(pk__in=[run.pk for run in group], status=RunStatus.QUEUED).filter(
        Q(trigger=RunTrigger.MANUAL) | Q(schedule__enabled=True)
    )
    if number is not None:
        job = by_pk[str(group[0].pk)]
        fields.update(job.claim_fields())
        rows = rows.filter(publish_attempt=number, run_attempt__lt=number)
    started = group
    if rows.update(**fields) < len(group):
        claimed = set(
            ScheduleRun.objects.filter(
                pk__in=[run.pk for run in group], status=RunStatus.RUNNING, started_at=now
            ).values_list("pk", flat=True)
        )
        started = [run for run in group if run.pk in claimed]
        for run in group:
            if run.pk not in claimed:
                _skip(run=run, now=now, reason="schedule disabled")
    for run in started:
        run.started_at = now
    return started


def _claim_attempt(job: Attempt, *, from_status: str) -> bool:
    return bool(ScheduleRun.objects.filter(job.claimable(), status=from_status).update(**job.claim_fields()))


def _skip(*, run: ScheduleRun, now: datetime, reason: str) -> None:
    _finish(run=run, status=RunStatus.SKIPPED, now=now, from_status=RunStatus.QUEUED, error=reason)


def _defer_or_skip(*, run: ScheduleRun, reason: str, now: datetime, claim: dict[str, Any]) -> float | None:
    """Busy: skip once the grace has passed since the run first found the workspace busy, else
    claim the attempt and make the row due again at the next check."""
    grace = settings.SCHEDULE_BUSY_GRACE_SECONDS
    busy_since = run.busy_since or now
    waited = (now - busy_since).total_seconds()
    if waited >= grace:
        _skip(run=run, now=now, reason=reason)
        return None
    delay = max(0.1, min(BUSY_RECHECK_SECONDS, grace - waited))
    fields: dict[str, Any] = {"busy_since": busy_since}
    if claim:
        fields.update(claim, relay_due_at=now + timedelta(seconds=delay))
        if delay <= settings.OUTBOX_POLL_SECONDS:
            wake_on_commit()
    ScheduleRun.objects.filter(pk=run.pk, status=RunStatus.QUEUED).update(**fields)
    return delay


def run_deliver(*, run: ScheduleRun, marker: AgentDelivery, now: datetime | None = None) -> None:
    """Ask the agent for a claimed run (`runs_claim`, with its in-flight `marker`) and record the
    outcome; no connection is held while the agent answers."""
    schedule = run.schedule
    started = time.monotonic()
    status, error, excerpt, protocol, reply_text = RunStatus.SUCCESS, None, None, "", ""
    try:
        reply = deliver_prompt(
            workspace=schedule.workspace,
            text=schedule.prompt,
            # Stable per run: any retry or redelivery of this run carries the same messageId.
            message_id=str(run.pk),
            source=SCHEDULE_SOURCE,
            reference=str(run.pk),
            admitted=marker,
            metadata={
                "source": "schedule",
                "schedule_id": str(schedule.pk),
                "schedule_name": schedule.name,
                "run_id": str(run.pk),
                "trigger": run.trigger,
                "scheduled_for": run.scheduled_for.isoformat().replace("+00:00", "Z"),
            },
        )
        excerpt, protocol = reply.text[:RESPONSE_EXCERPT_MAX_CHARS], reply.protocol
        reply_text = reply.text
    except A2AError as exc:
        status, error, protocol = RunStatus.ERROR, exc.reason, exc.protocol
    except DatabaseError:
        raise  # the outbox runs the attempt again on a fresh connection
    except Exception:
        logger.exception("schedule run %s failed unexpectedly", run.pk)
        status, error = RunStatus.ERROR, "internal error"
    elapsed = timedelta(seconds=time.monotonic() - started)
    finished = (now + elapsed) if now is not None else djtz.now()
    record = partial(
        _finish,
        run=run,
        status=status,
        now=finished,
        from_status=RunStatus.RUNNING,
        error=error,
        excerpt=excerpt,
        a2a_protocol=protocol,
    )
    # The agent answered: record it rather than ask again.
    closed = retry_on_lost_connection(record)
    if closed and schedule.deliver_to:
        result = reply_text if status == RunStatus.SUCCESS else f"failed: {error}"
        retry_on_lost_connection(partial(run_deliver_result, run=run, schedule=schedule, text=result))


def run_deliver_result(*, run: ScheduleRun, schedule: Schedule, text: str) -> int:
    """Send a run's reply (or failure reason) to the schedule's `deliver_to` channels through
    the normal outbound path, marked with the schedule's name; returns how many were queued."""
    label = schedule.name or f"schedule {str(schedule.pk)[:8]}"
    body = f"[{label}] {text.strip() or '(the agent sent no text)'}"
    queued = 0
    for channel_id in schedule.deliver_to:
        message = channel_send_service(
            channel_id=channel_id,
            workspace_id=schedule.workspace_id,
            text=body,
            service="schedule",
            meta={"schedule_id": str(schedule.pk), "run_id": str(run.pk)},
        )
        queued += message is not None
    return queued
