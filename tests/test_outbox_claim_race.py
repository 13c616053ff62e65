"""A worker faster than the relay's commit: the claim waits for it instead of losing the job.

The relay publishes a batch inside the transaction that marks its rows with the new attempt; a
task can start before that commit. Its claim must wait for the relay's row lock and then
claim, not judge the row's previous version and leave the job to the lease.
"""

from __future__ import annotations

import threading

from django.db import connection, transaction

from common.outbox import outbox_claim
from schedules.models import RUN, ScheduleRun
from schedules.services import schedule_create, schedule_run_now
from tests.support.factories import make_workspace
from tests.support.worker import wait_for


def _claim_waits_on_a_lock() -> bool:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
        )
        return cursor.fetchone()[0] == 1


def _run(published: int) -> ScheduleRun:
    schedule = schedule_create(
        workspace=make_workspace("race"), expression="0 0 1 1 *", prompt="hi", enabled=False
    )
    run = schedule_run_now(schedule=schedule)
    ScheduleRun.objects.filter(pk=run.pk).update(publish_attempt=published)
    return run


def _relay_marking(run: ScheduleRun, marked: threading.Event, commit: threading.Event) -> threading.Thread:
    """The relay's transaction: lock the row, mark the next attempt, commit when told."""

    def relay() -> None:
        try:
            with transaction.atomic():
                rows = ScheduleRun.objects.select_for_update().filter(pk=run.pk)
                attempt = rows.values_list("publish_attempt", flat=True).get()
                rows.update(publish_attempt=attempt + 1)
                marked.set()
                commit.wait(30)
        finally:
            connection.close()

    thread = threading.Thread(target=relay)
    thread.start()
    return thread


def _claim_in_thread(run: ScheduleRun, attempt: int, result: dict) -> threading.Thread:
    def task() -> None:
        try:
            result["until"] = outbox_claim(kind=RUN, pk=run.pk, attempt=attempt)
        finally:
            connection.close()

    thread = threading.Thread(target=task)
    thread.start()
    return thread


def test_a_claim_before_the_relays_commit_waits_and_claims(transactional_db):
    run = _run(published=0)
    marked, commit, result = threading.Event(), threading.Event(), {}
    relay = _relay_marking(run, marked, commit)
    assert marked.wait(30)
    task = _claim_in_thread(run, 1, result)
    wait_for(_claim_waits_on_a_lock, timeout=30, message="the claim waiting for the relay's lock")
    commit.set()
    relay.join(30)
    task.join(30)
    assert result["until"] is not None
    run.refresh_from_db()
    assert (run.publish_attempt, run.run_attempt) == (1, 1)


def test_a_stale_message_still_claims_nothing(transactional_db):
    """Attempt 1's message arriving while the relay marks attempt 2: nothing to claim."""
    run = _run(published=1)
    marked, commit, result = threading.Event(), threading.Event(), {}
    relay = _relay_marking(run, marked, commit)
    assert marked.wait(30)
    task = _claim_in_thread(run, 1, result)
    wait_for(_claim_waits_on_a_lock, timeout=30, message="the claim waiting for the relay's lock")
    commit.set()
    relay.join(30)
    task.join(30)
    assert result["until"] is None
    run.refresh_from_db()
    assert (run.publish_attempt, run.run_attempt) == (2, 0)
