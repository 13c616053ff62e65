"""The relay's own task: several due rows of one kind in one message (common.outbox)."""

from __future__ import annotations

from typing import Any

from celery import shared_task

from common.outbox import RUN_ROWS_TASK, outbox_run_rows


@shared_task(name=RUN_ROWS_TASK, acks_late=True, ignore_result=True)
def run_rows(kind_label: str, rows: list[list[Any]]) -> None:
    outbox_run_rows(kind_label, rows)
