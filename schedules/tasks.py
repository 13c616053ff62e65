"""Celery tasks of the scheduler: the dispatcher (ticked by Beat) and the run task."""

from __future__ import annotations

from celery import shared_task

from common.outbox import outbox_step
from schedules import services
from schedules.models import RUN


@shared_task(name="schedules.dispatch_due", ignore_result=True)
def dispatch_due() -> int:
    """Beat tick: turn due schedules into queued runs (the relay publishes them).

    The tick is recorded here, after the pass, so /health's `scheduler_last_tick_at` only moves
    when a worker really ran the dispatcher (Beat's own timestamp moves on every send).
    """
    created = services.schedule_dispatch_due()
    services.scheduler_tick_record()
    return created


@shared_task(name="schedules.execute_run", acks_late=True, ignore_result=True)
def execute_run(run_id: str, attempt: int) -> None:
    """Deliver attempt `attempt` of one run (published by the relay). Idempotent on the run id;
    a busy workspace makes the row due again after a short wait (the worker is free meanwhile)
    until SCHEDULE_BUSY_GRACE_SECONDS have passed."""
    outbox_step(
        kind=RUN,
        pk=run_id,
        attempt=int(attempt),
        body=lambda: services.run_execute(run_id=run_id, resume=True),
    )
