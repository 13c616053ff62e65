"""Celery tasks of the scheduler: the dispatcher and reaper (ticked by Beat) and the run task."""

from __future__ import annotations

from celery import shared_task
from celery.app.task import Task

from schedules import services


@shared_task(name="schedules.dispatch_due", ignore_result=True)
def dispatch_due() -> int:
    """Beat tick: turn due schedules into queued runs and enqueue them.

    The tick is recorded here, after the pass, so /health's `scheduler_last_tick_at` only moves
    when a worker really ran the dispatcher (Beat's own timestamp moves on every send).
    """
    created = services.schedule_dispatch_due()
    services.scheduler_tick_record()
    return created


@shared_task(
    bind=True,
    name="schedules.execute_run",
    acks_late=True,
    reject_on_worker_lost=True,
    max_retries=None,
    ignore_result=True,
)
def execute_run(self: Task, run_id: str) -> None:
    """Deliver one run. Idempotent on the run id; a busy workspace re-queues it with a countdown
    (the worker is free meanwhile) until SCHEDULE_BUSY_GRACE_SECONDS have passed."""
    wait = services.run_execute(run_id=run_id)
    if wait is not None:
        raise self.retry(countdown=wait)


@shared_task(name="schedules.reap_stuck_runs", ignore_result=True)
def reap_stuck_runs() -> int:
    """Close runs whose worker died mid-run as `error` ("run lost")."""
    return services.run_reap_stuck()
