"""Celery tasks of housekeeping (ticked by Beat)."""

from __future__ import annotations

from celery import shared_task

from housekeeping import services


@shared_task(name="housekeeping.prune_history", ignore_result=True)
def prune_history() -> dict[str, int]:
    """Delete finished history past its keep period, in small batches (see housekeeping.services)."""
    return services.history_prune()
