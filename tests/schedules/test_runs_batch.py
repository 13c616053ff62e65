"""Runs of one message claimed together (`runs_claim`, task `schedules.execute_runs`)."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from common.outbox import Attempt
from schedules import services, tasks
from schedules.models import RUN, RunStatus, ScheduleRun
from tests.support.factories import make_workspace
from workspaces.models import AgentDelivery


def _published(run: ScheduleRun, attempt: int = 1) -> list[str | int]:
    ScheduleRun.objects.filter(pk=run.pk).update(publish_attempt=attempt)
    return [str(run.pk), attempt]


def _runs(workspace, count: int) -> list[ScheduleRun]:
    schedule = services.schedule_create(workspace=workspace, expression="0 9 * * *", prompt="batch")
    return [services.schedule_run_now(schedule=schedule) for _ in range(count)]


@pytest.mark.django_db(transaction=True)
def test_a_message_claims_its_runs_in_a_few_statements_whatever_their_number(echo_agent):
    """20 runs of 20 workspaces: the claiming transaction's statements do not grow with the
    number of runs (BEGIN/COMMIT aside: lock, read, count, one UPDATE, one INSERT)."""

    def claim(count: int) -> int:
        rows = [
            _published(run)
            for i in range(count)
            for run in _runs(make_workspace(f"w{count}-{i}", url=echo_agent.url), 1)
        ]
        jobs = [(pk, Attempt.start(kind=RUN, pk=pk, number=attempt)) for pk, attempt in rows]
        with CaptureQueriesContext(connection) as queries:
            claims = services.runs_claim(jobs=jobs)
        assert len(claims.deliver) == count
        return len(queries)

    assert claim(2) == claim(20) <= 7


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    ("own_limit", "server_limit", "count", "delivered"),
    [
        (2, 50, 2, 2),  # at the workspace's max_concurrent_tasks
        (2, 50, 3, 2),  # one past it
        (10, 2, 2, 2),  # at WORKSPACE_MAX_CONCURRENT_DELIVERIES
        (10, 2, 3, 2),  # one past it
    ],
)
def test_a_workspace_gets_no_more_than_its_capacity_from_one_message(
    echo_agent, settings, own_limit, server_limit, count, delivered
):
    settings.WORKSPACE_MAX_CONCURRENT_DELIVERIES = server_limit
    workspace = make_workspace("cap", url=echo_agent.url, max_concurrent_tasks=own_limit)
    rows = [_published(run) for run in _runs(workspace, count)]
    jobs = [(pk, Attempt.start(kind=RUN, pk=pk, number=attempt)) for pk, attempt in rows]
    claims = services.runs_claim(jobs=jobs)
    assert len(claims.deliver) == delivered
    assert AgentDelivery.objects.filter(workspace=workspace).count() == delivered
    assert len(claims.waits) == count - delivered  # busy: due again at the next check, not skipped
    waiting = ScheduleRun.objects.filter(status=RunStatus.QUEUED)
    assert waiting.count() == count - delivered
    assert all(
        run.busy_since and run.run_attempt == 1 and run.relay_due_at > timezone.now() for run in waiting
    )


@pytest.mark.django_db(transaction=True)
def test_a_duplicate_message_claims_nothing_and_the_agent_hears_each_run_once(echo_agent):
    workspaces = [make_workspace(f"dup-{i}", url=echo_agent.url) for i in range(3)]
    rows = [_published(run) for workspace in workspaces for run in _runs(workspace, 1)]
    tasks.execute_runs.run("schedules.run", rows)
    tasks.execute_runs.run("schedules.run", rows)  # the broker delivered it twice
    assert sorted(m["messageId"] for m in echo_agent.received) == sorted(pk for pk, _ in rows)
    assert set(ScheduleRun.objects.values_list("status", flat=True)) == {RunStatus.SUCCESS}
    assert not AgentDelivery.objects.exists()
    assert not ScheduleRun.objects.filter(relay_due_at__isnull=False).exists()


@pytest.mark.django_db(transaction=True)
def test_a_message_of_an_older_attempt_runs_nothing(echo_agent):
    workspace = make_workspace("old", url=echo_agent.url)
    (run,) = _runs(workspace, 1)
    _published(run, attempt=2)  # the relay published the row again meanwhile
    tasks.execute_runs.run("schedules.run", [[str(run.pk), 1]])
    assert echo_agent.received == []
    run.refresh_from_db()
    assert (run.status, run.run_attempt) == (RunStatus.QUEUED, 0)


@pytest.mark.django_db(transaction=True)
def test_a_database_error_while_claiming_makes_every_row_of_the_message_due_soon(
    echo_agent, monkeypatch, settings
):
    from django.db import OperationalError

    settings.OUTBOX_RETRY_SECONDS = 0
    workspace = make_workspace("dberr", url=echo_agent.url)
    rows = [_published(run) for run in _runs(workspace, 3)]

    def lost(**kwargs):
        raise OperationalError("terminating connection due to administrator command")

    monkeypatch.setattr(services, "workspace_busy_states", lost)
    tasks.execute_runs.run("schedules.run", rows)
    assert echo_agent.received == []
    assert ScheduleRun.objects.filter(status=RunStatus.QUEUED, relay_due_at__lte=timezone.now()).count() == 3
