"""The run task: delivery, outcome bookkeeping, idempotence, busy deferral, disabled/deleted."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from schedules import services
from schedules.models import RunStatus, RunTrigger, Schedule, ScheduleRun
from tests.support.factories import make_workspace
from tests.support.fake_http import FakeResponse, free_port, json_response
from tests.support.worker import run_due_jobs
from workspaces.delivery import deliveries_register
from workspaces.models import AgentDelivery, Workspace
from workspaces.services import workspace_heartbeat, workspace_update


@pytest.fixture
def agent_workspace(db, echo_agent):
    return make_workspace("agent", url=echo_agent.url)


def queued_run(schedule: Schedule, **kwargs) -> ScheduleRun:
    kwargs.setdefault("scheduled_for", timezone.now().replace(microsecond=0))
    return ScheduleRun.objects.create(schedule=schedule, **kwargs)


@pytest.mark.django_db
def test_success_records_outcome_and_bookkeeping(agent_workspace, echo_agent):
    schedule = services.schedule_create(
        workspace=agent_workspace, expression="* * * * *", prompt="Hello agent"
    )
    run = queued_run(schedule)
    run_due_jobs()
    run.refresh_from_db()
    assert run.status == RunStatus.SUCCESS
    assert run.response_excerpt == "Hello agent"
    assert run.error_detail is None
    assert run.started_at and run.finished_at and run.duration_ms is not None
    assert len(echo_agent.received) == 1
    message = echo_agent.received[0]
    assert message["messageId"] == str(run.pk)  # stable per run
    assert message["parts"][0]["text"] == "Hello agent"
    assert message["metadata"]["schedule_id"] == str(schedule.pk)
    assert message["metadata"]["trigger"] == "cron"
    schedule.refresh_from_db()
    assert (schedule.last_status, schedule.last_error, schedule.run_count) == ("success", None, 1)
    assert schedule.last_run_at == run.started_at
    assert not AgentDelivery.objects.exists()  # the in-flight marker is gone


@pytest.mark.django_db
def test_response_excerpt_is_capped(db, fake_http):
    long_reply = "r" * 5000
    fake_http.route(
        "POST",
        "/",
        json_response(
            {
                "jsonrpc": "2.0",
                "id": "1",
                "result": {"kind": "message", "parts": [{"kind": "text", "text": long_reply}]},
            }
        ),
    )
    workspace = make_workspace("long", url=fake_http.url + "/")
    schedule = services.schedule_create(workspace=workspace, expression="* * * * *", prompt="p")
    run = queued_run(schedule)
    services.run_execute(run_id=run.pk)
    run.refresh_from_db()
    assert run.response_excerpt == "r" * 2000


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("reply", "excerpt"),
    [("ok\x00done", "okdone"), ("half \ud83d pair", "half ? pair"), ("emoji \U0001f600", "emoji \U0001f600")],
)
def test_a_reply_postgresql_cannot_store_still_records_success(db, fake_http, reply, excerpt):
    """A NUL or a lone surrogate in the agent's reply used to fail the save: the run stayed `running`."""
    fake_http.route(
        "POST",
        "/",
        json_response(
            {
                "jsonrpc": "2.0",
                "id": "1",
                "result": {"kind": "message", "parts": [{"kind": "text", "text": reply}]},
            }
        ),
    )
    workspace = make_workspace("odd", url=fake_http.url + "/")
    schedule = services.schedule_create(workspace=workspace, expression="* * * * *", prompt="p")
    run = queued_run(schedule)
    services.run_execute(run_id=run.pk)
    run.refresh_from_db()
    assert (run.status, run.response_excerpt) == (RunStatus.SUCCESS, excerpt)
    schedule.refresh_from_db()
    assert (schedule.last_status, schedule.run_count) == ("success", 1)


@pytest.mark.django_db
def test_agent_down_is_an_error_with_the_reason(db):
    workspace = make_workspace("down", url=f"http://127.0.0.1:{free_port()}/")
    schedule = services.schedule_create(workspace=workspace, expression="* * * * *", prompt="p")
    run = queued_run(schedule)
    services.run_execute(run_id=run.pk)
    run.refresh_from_db()
    assert run.status == RunStatus.ERROR
    assert run.error_detail.startswith("agent unreachable")
    schedule.refresh_from_db()
    assert schedule.last_status == "error"
    assert schedule.last_error == run.error_detail
    assert schedule.run_count == 1


@pytest.mark.django_db
def test_agent_errors_never_leak_upstream_text(db, fake_http):
    fake_http.route("POST", "/", lambda request: FakeResponse(500, b"secret stack trace token=abc"))
    workspace = make_workspace("err", url=fake_http.url + "/")
    schedule = services.schedule_create(workspace=workspace, expression="* * * * *", prompt="p")
    run = queued_run(schedule)
    services.run_execute(run_id=run.pk)
    run.refresh_from_db()
    assert run.status == RunStatus.ERROR
    assert run.error_detail == "agent returned HTTP 500"


@pytest.mark.django_db
def test_workspace_without_url_is_an_error(db):
    workspace = make_workspace("nourl")
    schedule = services.schedule_create(workspace=workspace, expression="* * * * *", prompt="p")
    run = queued_run(schedule)
    services.run_execute(run_id=run.pk)
    run.refresh_from_db()
    assert (run.status, run.error_detail) == (RunStatus.ERROR, "workspace has no agent url")


@pytest.mark.django_db
def test_run_executed_twice_makes_one_agent_request(agent_workspace, echo_agent):
    """The relay passing again after the run finished: nothing is due, nothing is sent."""
    schedule = services.schedule_create(workspace=agent_workspace, expression="* * * * *", prompt="once")
    queued_run(schedule)
    run_due_jobs()
    run_due_jobs()
    assert len(echo_agent.received) == 1
    schedule.refresh_from_db()
    assert schedule.run_count == 1


@pytest.mark.django_db(transaction=True)
def test_run_executed_twice_concurrently_makes_one_agent_request():
    """Two workers got the same message at once (real PostgreSQL, two connections)."""
    from workspaces.echo_agent import start_echo_agent

    agent = start_echo_agent(delay=0.3)
    try:
        workspace = make_workspace("dup", url=agent.url, max_concurrent_tasks=5)
        schedule = services.schedule_create(workspace=workspace, expression="* * * * *", prompt="once")
        run = queued_run(schedule)
        barrier = threading.Barrier(2)

        def worker() -> None:
            try:
                barrier.wait()
                services.run_execute(run_id=run.pk)
            finally:
                connection.close()

        threads = [threading.Thread(target=worker) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
        assert len(agent.received) == 1
        run.refresh_from_db()
        assert run.status == RunStatus.SUCCESS
        assert Schedule.objects.get(pk=schedule.pk).run_count == 1
    finally:
        agent.shutdown()
        agent.server_close()


@pytest.mark.django_db
def test_a_running_run_is_not_executed_again(agent_workspace, echo_agent):
    """Called without the job's claim (common.outbox), a running run is left to its attempt."""
    schedule = services.schedule_create(workspace=agent_workspace, expression="* * * * *", prompt="p")
    run = queued_run(schedule, status=RunStatus.RUNNING, started_at=timezone.now())
    assert services.run_execute(run_id=run.pk) is None
    assert echo_agent.received == []


@pytest.mark.django_db
def test_deleted_schedule_never_reaches_the_agent(agent_workspace, echo_agent):
    schedule = services.schedule_create(workspace=agent_workspace, expression="* * * * *", prompt="p")
    run = queued_run(schedule)
    services.schedule_delete(schedule=schedule)
    run_due_jobs()
    assert echo_agent.received == []
    assert not ScheduleRun.objects.filter(pk=run.pk).exists()


@pytest.mark.django_db
def test_disabled_schedule_never_reaches_the_agent(agent_workspace, echo_agent):
    schedule = services.schedule_create(workspace=agent_workspace, expression="* * * * *", prompt="p")
    run = queued_run(schedule)
    services.schedule_update(schedule=schedule, data={"enabled": False})
    run_due_jobs()
    assert echo_agent.received == []
    run.refresh_from_db()
    assert (run.status, run.error_detail) == (RunStatus.SKIPPED, "schedule disabled")


@pytest.mark.django_db
def test_manual_run_of_a_disabled_schedule_is_delivered(agent_workspace, echo_agent):
    schedule = services.schedule_create(
        workspace=agent_workspace, expression="* * * * *", prompt="p", enabled=False
    )
    run = services.schedule_run_now(schedule=schedule)
    run_due_jobs()
    run.refresh_from_db()
    assert run.status == RunStatus.SUCCESS
    assert run.trigger == RunTrigger.MANUAL
    assert echo_agent.received[0]["metadata"]["trigger"] == "manual"


@pytest.mark.django_db
def test_busy_by_heartbeat_defers_then_skips(agent_workspace, echo_agent, settings):
    settings.SCHEDULE_BUSY_GRACE_SECONDS = 30
    workspace_heartbeat(workspace=agent_workspace, active_tasks=1)
    schedule = services.schedule_create(workspace=agent_workspace, expression="* * * * *", prompt="p")
    Schedule.objects.filter(pk=schedule.pk).update(next_run_at=timezone.now() - timedelta(seconds=1))
    services.schedule_dispatch_due()
    run = ScheduleRun.objects.get(schedule=schedule)
    start = timezone.now()

    wait = services.run_execute(run_id=run.pk, now=start)
    assert wait == 5  # re-checks at least every 5 seconds
    run.refresh_from_db()
    assert (run.status, run.busy_since) == (RunStatus.QUEUED, start)

    assert services.run_execute(run_id=run.pk, now=start + timedelta(seconds=27)) == pytest.approx(3)
    assert services.run_execute(run_id=run.pk, now=start + timedelta(seconds=30)) is None
    run.refresh_from_db()
    assert run.status == RunStatus.SKIPPED
    assert run.error_detail == "workspace busy: 1/1 tasks active"
    assert echo_agent.received == []
    schedule.refresh_from_db()
    assert schedule.last_status == "skipped"
    assert schedule.last_error == "workspace busy: 1/1 tasks active"
    assert schedule.run_count == 1
    assert schedule.next_run_at > start  # the schedule advanced like for any run


@pytest.mark.django_db
def test_busy_with_another_delivery_in_flight(agent_workspace, echo_agent, settings):
    settings.SCHEDULE_BUSY_GRACE_SECONDS = 0
    AgentDelivery.objects.create(workspace=agent_workspace, source="channel", reference="x")
    schedule = services.schedule_create(workspace=agent_workspace, expression="* * * * *", prompt="p")
    run = queued_run(schedule)
    services.run_execute(run_id=run.pk)
    run.refresh_from_db()
    assert (run.status, run.error_detail) == (RunStatus.SKIPPED, "workspace busy: 1/1 tasks active")
    assert echo_agent.received == []


@pytest.mark.django_db
def test_busy_with_another_schedule_run_running(agent_workspace, echo_agent, settings):
    """A running run is in flight: its claim registered it (the marker), in the same transaction."""
    settings.SCHEDULE_BUSY_GRACE_SECONDS = 0
    schedule = services.schedule_create(workspace=agent_workspace, expression="* * * * *", prompt="p")
    first = queued_run(
        schedule,
        status=RunStatus.RUNNING,
        started_at=timezone.now(),
        scheduled_for=timezone.now() - timedelta(minutes=1),
    )
    deliveries_register([(agent_workspace, "schedule", str(first.pk))])
    run = queued_run(schedule)
    services.run_execute(run_id=run.pk)
    run.refresh_from_db()
    assert run.status == RunStatus.SKIPPED
    assert echo_agent.received == []


@pytest.mark.django_db
def test_busy_then_capacity_frees_within_grace(agent_workspace, echo_agent, settings):
    settings.SCHEDULE_BUSY_GRACE_SECONDS = 60
    workspace_heartbeat(workspace=agent_workspace, active_tasks=2)
    workspace_update(workspace=agent_workspace, data={"max_concurrent_tasks": 2})
    schedule = services.schedule_create(workspace=agent_workspace, expression="* * * * *", prompt="go")
    run = queued_run(schedule)
    start = timezone.now()
    assert services.run_execute(run_id=run.pk, now=start) == 5
    workspace_heartbeat(workspace=agent_workspace, active_tasks=1)
    assert services.run_execute(run_id=run.pk, now=start + timedelta(seconds=5)) is None
    run.refresh_from_db()
    assert run.status == RunStatus.SUCCESS
    assert len(echo_agent.received) == 1


@pytest.mark.django_db
def test_stale_heartbeat_does_not_make_busy(agent_workspace, echo_agent, settings):
    settings.SCHEDULE_BUSY_GRACE_SECONDS = 0
    workspace_heartbeat(workspace=agent_workspace, active_tasks=9)
    agent_workspace.last_heartbeat_at = timezone.now() - timedelta(minutes=6)
    agent_workspace.save(update_fields=["last_heartbeat_at"])
    schedule = services.schedule_create(workspace=agent_workspace, expression="* * * * *", prompt="p")
    run = queued_run(schedule)
    services.run_execute(run_id=run.pk)
    run.refresh_from_db()
    assert run.status == RunStatus.SUCCESS


@pytest.mark.django_db
def test_heartbeat_counts_while_under_5_minutes_old(agent_workspace, echo_agent, settings):
    """SPEC §3: the reported active_tasks count only while the heartbeat is under 5 minutes old."""
    settings.SCHEDULE_BUSY_GRACE_SECONDS = 60
    workspace_heartbeat(workspace=agent_workspace, active_tasks=1)
    beat = Workspace.objects.get(pk=agent_workspace.pk).last_heartbeat_at
    schedule = services.schedule_create(workspace=agent_workspace, expression="* * * * *", prompt="p")
    run = queued_run(schedule)
    assert services.run_execute(run_id=run.pk, now=beat + timedelta(seconds=299)) == 5  # busy: waits
    assert echo_agent.received == []
    assert services.run_execute(run_id=run.pk, now=beat + timedelta(seconds=300)) is None  # 5 min old: free
    run.refresh_from_db()
    assert run.status == RunStatus.SUCCESS
    assert len(echo_agent.received) == 1


@pytest.mark.django_db
def test_busy_takes_the_larger_of_in_flight_and_reported_not_their_sum(agent_workspace, echo_agent, settings):
    settings.SCHEDULE_BUSY_GRACE_SECONDS = 0
    workspace_update(workspace=agent_workspace, data={"max_concurrent_tasks": 2})
    workspace_heartbeat(workspace=agent_workspace, active_tasks=1)  # the agent counts our delivery too
    AgentDelivery.objects.create(workspace=agent_workspace, source="channel", reference="x")
    schedule = services.schedule_create(workspace=agent_workspace, expression="* * * * *", prompt="p")
    first = queued_run(schedule)
    services.run_execute(run_id=first.pk)
    first.refresh_from_db()
    assert first.status == RunStatus.SUCCESS  # max(1, 1) = 1 < 2
    workspace_heartbeat(workspace=agent_workspace, active_tasks=2)
    second = queued_run(schedule, scheduled_for=timezone.now().replace(microsecond=0) + timedelta(minutes=1))
    services.run_execute(run_id=second.pk)
    second.refresh_from_db()
    assert (second.status, second.error_detail) == (RunStatus.SKIPPED, "workspace busy: 2/2 tasks active")


@pytest.mark.django_db
def test_busy_task_makes_the_run_due_again_after_the_recheck_delay(agent_workspace, settings):
    """No countdown message: the row itself is due again in 5 s, and the relay publishes it then."""
    settings.SCHEDULE_BUSY_GRACE_SECONDS = 60
    workspace_heartbeat(workspace=agent_workspace, active_tasks=1)
    schedule = services.schedule_create(workspace=agent_workspace, expression="* * * * *", prompt="p")
    run = queued_run(schedule)
    before = timezone.now()
    assert run_due_jobs() == 1
    run.refresh_from_db()
    assert (run.status, run.publish_attempt, run.run_attempt) == (RunStatus.QUEUED, 1, 1)
    assert before + timedelta(seconds=5) <= run.relay_due_at <= timezone.now() + timedelta(seconds=5)
    assert run_due_jobs() == 0  # not due before then


@pytest.mark.django_db
def test_bookkeeping_follows_the_latest_run(workspace):
    schedule = services.schedule_create(workspace=workspace, expression="* * * * *", prompt="p")
    now = timezone.now()
    newer = queued_run(schedule, status=RunStatus.RUNNING, started_at=now, scheduled_for=now)
    older = queued_run(
        schedule,
        status=RunStatus.RUNNING,
        started_at=now - timedelta(minutes=1),
        scheduled_for=now - timedelta(minutes=1),
    )
    services._finish(run=newer, status=RunStatus.SUCCESS, now=now, from_status=RunStatus.RUNNING)
    services._finish(run=older, status=RunStatus.ERROR, now=now, from_status=RunStatus.RUNNING, error="late")
    schedule.refresh_from_db()
    assert (schedule.last_status, schedule.last_error, schedule.run_count) == ("success", None, 2)
    assert schedule.last_run_at == now


@pytest.mark.django_db
def test_disabled_between_check_and_claim_never_reaches_the_agent(agent_workspace, echo_agent, monkeypatch):
    schedule = services.schedule_create(workspace=agent_workspace, expression="* * * * *", prompt="p")
    run = queued_run(schedule)
    real_busy_states = services.workspace_busy_states

    def disable_meanwhile(**kwargs):
        Schedule.objects.filter(pk=schedule.pk).update(enabled=False, next_run_at=None)
        return real_busy_states(**kwargs)

    monkeypatch.setattr(services, "workspace_busy_states", disable_meanwhile)
    assert services.run_execute(run_id=run.pk) is None
    assert echo_agent.received == []
    run.refresh_from_db()
    assert (run.status, run.error_detail) == (RunStatus.SKIPPED, "schedule disabled")


@pytest.mark.django_db(transaction=True)
def test_transient_database_error_before_delivery_is_retried_and_the_agent_hears_once(
    echo_agent, settings, monkeypatch
):
    """The connection drops inside the run (before the agent is called): the attempt is
    published again after OUTBOX_RETRY_SECONDS on a fresh connection and the run succeeds."""
    from django.db import OperationalError

    settings.OUTBOX_RETRY_SECONDS = 0
    workspace = make_workspace("db-error", url=echo_agent.url)
    schedule = services.schedule_create(workspace=workspace, expression="* * * * *", prompt="once")
    run = queued_run(schedule)
    real_busy_states = services.workspace_busy_states
    failures = []

    def drop_once(**kwargs):
        if not failures:
            failures.append(1)
            raise OperationalError("terminating connection due to administrator command")
        return real_busy_states(**kwargs)

    monkeypatch.setattr(services, "workspace_busy_states", drop_once)
    assert run_due_jobs() == 2  # the failed attempt and its retry
    run.refresh_from_db()
    assert (run.status, run.publish_attempt, run.relay_due_at) == (RunStatus.SUCCESS, 2, None)
    assert [m["messageId"] for m in echo_agent.received] == [str(run.pk)]


@pytest.mark.django_db(transaction=True)
def test_database_lost_after_the_agent_answered_retries_with_the_same_message_id(
    echo_agent, settings, monkeypatch
):
    """The answer cannot be recorded (the connection is lost twice in a row): the run stays
    `running` rather than `error`, and the retry delivers it again with the same messageId."""
    from django.db import OperationalError

    settings.OUTBOX_RETRY_SECONDS = 0
    workspace = make_workspace("db-lost", url=echo_agent.url)
    schedule = services.schedule_create(workspace=workspace, expression="* * * * *", prompt="again")
    run = queued_run(schedule)
    real_bookkeep = services._bookkeep
    failures = []

    def drop_twice(**kwargs):
        if len(failures) < 2:
            failures.append(1)
            raise OperationalError("server closed the connection unexpectedly")
        return real_bookkeep(**kwargs)

    monkeypatch.setattr(services, "_bookkeep", drop_twice)
    assert run_due_jobs() == 2
    run.refresh_from_db()
    assert (run.status, run.error_detail, run.response_excerpt) == (RunStatus.SUCCESS, None, "again")
    assert [m["messageId"] for m in echo_agent.received] == [str(run.pk)] * 2
    assert Schedule.objects.get(pk=schedule.pk).run_count == 1
