"""Celery tasks of the scheduler: the dispatcher (ticked by Beat) and the run task."""

from __future__ import annotations

import logging
from functools import partial
from typing import Any

from celery import shared_task
from django.conf import settings
from django.db import DatabaseError

from common.db import release_connections
from common.outbox import Attempt, side_by_side
from schedules import services
from schedules.models import RUN, ScheduleRun
from workspaces.models import AgentDelivery

logger = logging.getLogger(__name__)


@shared_task(name="schedules.dispatch_due", ignore_result=True)
def dispatch_due() -> int:
    """Beat tick: turn due schedules into queued runs and publish them.

    The tick is recorded here, after the pass, so /health's `scheduler_last_tick_at` only moves
    when a worker really ran the dispatcher (Beat's own timestamp moves on every send).
    """
    created = services.schedule_dispatch_due()
    services.scheduler_tick_record()
    return created


@shared_task(name="schedules.execute_run", acks_late=True, ignore_result=True)
def execute_run(run_id: str, attempt: int) -> None:
    """Deliver attempt `attempt` of one run (published by the dispatcher or the relay).
    Idempotent on the run id; a busy workspace makes the row due again after a short wait (the
    worker is free meanwhile) until SCHEDULE_BUSY_GRACE_SECONDS have passed."""
    job = Attempt.start(kind=RUN, pk=run_id, number=int(attempt))
    try:
        services.run_execute(run_id=run_id, job=job)
    except DatabaseError:
        _retry_soon([job])


@shared_task(name="schedules.execute_runs", acks_late=True, ignore_result=True)
def execute_runs(kind_label: str, rows: list[list[Any]]) -> None:
    """Several runs in one message (`[[run id, attempt], ...]`, published by the dispatcher or
    the relay): claimed together in one transaction, then each agent asked side by side (greenlets
    on the agents worker), each outcome recorded on its own."""
    jobs = {str(pk): Attempt.start(kind=RUN, pk=pk, number=int(attempt)) for pk, attempt in rows}
    try:
        claims = services.runs_claim(jobs=[(pk, job) for pk, job in jobs.items()])
    except DatabaseError:
        _retry_soon(list(jobs.values()))
        return
    # The deliveries take connections of their own: this one goes back to the pool first (with
    # hundreds of messages at once, held ones would leave none for them).
    release_connections()

    def deliver(run: ScheduleRun, marker: AgentDelivery) -> None:
        try:
            services.run_deliver(run=run, marker=marker)
        except DatabaseError:
            _retry_soon([jobs[str(run.pk)]])
        except Exception:
            logger.exception("run %s: attempt %s failed", run.pk, jobs[str(run.pk)].number)

    side_by_side([partial(deliver, run, marker) for run, marker in claims.deliver])


def _retry_soon(jobs: list[Attempt]) -> None:
    logger.warning(
        "%d runs: database error; retried in %ss", len(jobs), settings.OUTBOX_RETRY_SECONDS, exc_info=True
    )
    for job in jobs:
        job.retry_soon()
