"""The dispatcher: due rows become one queued run each, downtime, exactly once under concurrency."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from schedules import cron, services
from schedules.models import RunStatus, RunTrigger, Schedule, ScheduleRun
from schedules.tasks import dispatch_due
from tests.support.factories import make_workspace
from tests.support.worker import purge_broker


@pytest.fixture(autouse=True, params=["sql", "orm"])
def write_path(request, monkeypatch):
    """Every dispatcher test runs on both ways of recording a batch: PostgreSQL's one statement
    and the ORM's bulk_create + UPDATEs (SQLite, the embedded default)."""
    if request.param == "orm":
        monkeypatch.setattr("schedules.dispatch_sql.supported", lambda: False)
    return request.param


def _due(schedule: Schedule, at: datetime) -> None:
    Schedule.objects.filter(pk=schedule.pk).update(next_run_at=at)


@pytest.mark.django_db
def test_due_schedule_gets_one_queued_run_and_advances(workspace, make_schedule):
    schedule = make_schedule(expression="*/5 * * * *")
    slot = datetime(2026, 6, 1, 12, 5, tzinfo=UTC)
    _due(schedule, slot)
    created = services.schedule_dispatch_due(now=slot + timedelta(seconds=3))
    assert created == 1
    run = ScheduleRun.objects.get(schedule=schedule)
    assert (run.status, run.trigger, run.scheduled_for) == (RunStatus.QUEUED, RunTrigger.CRON, slot)
    schedule.refresh_from_db()
    assert schedule.next_run_at == datetime(2026, 6, 1, 12, 10, tzinfo=UTC)
    # the next tick inside the same slot finds nothing due
    assert services.schedule_dispatch_due(now=slot + timedelta(seconds=13)) == 0


@pytest.mark.django_db
def test_not_due_disabled_and_future_rows_are_left_alone(workspace, make_schedule):
    now = datetime(2026, 6, 1, 12, 0, 30, tzinfo=UTC)
    future = make_schedule()
    _due(future, now + timedelta(seconds=1))
    disabled = make_schedule(enabled=False)
    Schedule.objects.filter(pk=disabled.pk).update(next_run_at=now - timedelta(minutes=1))  # stale value
    assert services.schedule_dispatch_due(now=now) == 0
    assert not ScheduleRun.objects.exists()


@pytest.mark.django_db
def test_downtime_gives_exactly_one_catch_up_run(workspace, make_schedule):
    schedule = make_schedule(expression="*/10 * * * *")
    now = datetime(2026, 6, 1, 15, 4, 20, tzinfo=UTC)
    _due(schedule, now - timedelta(hours=3, minutes=4, seconds=20))  # 12:00, 18 slots missed
    assert services.schedule_dispatch_due(now=now) == 1
    run = ScheduleRun.objects.get(schedule=schedule)
    assert run.scheduled_for == datetime(2026, 6, 1, 15, 0, tzinfo=UTC)  # the latest missed slot
    schedule.refresh_from_db()
    assert schedule.next_run_at == datetime(2026, 6, 1, 15, 10, tzinfo=UTC)  # in the future
    assert schedule.next_run_at > now
    assert services.schedule_dispatch_due(now=now + timedelta(seconds=10)) == 0


@pytest.mark.django_db
def test_downtime_with_a_time_zone(workspace, make_schedule):
    schedule = make_schedule(expression="0 9 * * *", timezone="Europe/Paris")
    now = datetime(2026, 6, 10, 10, 0, tzinfo=UTC)  # 12:00 in Paris
    _due(schedule, datetime(2026, 6, 1, 7, 0, tzinfo=UTC))  # nine days ago
    assert services.schedule_dispatch_due(now=now) == 1
    assert ScheduleRun.objects.get().scheduled_for == datetime(2026, 6, 10, 7, 0, tzinfo=UTC)
    schedule.refresh_from_db()
    assert schedule.next_run_at == datetime(2026, 6, 11, 7, 0, tzinfo=UTC)


@pytest.mark.django_db
def test_downtime_ending_in_the_second_copy_of_a_repeated_hour(workspace, make_schedule):
    """New York falls back on 2026-11-01: 01:00-01:59 happens in EDT, then again in EST. A wall-clock
    job missed 01:00 EDT, 01:30 EDT and 01:00 EST; its one catch-up run is for the latest, 01:00 EST."""
    schedule = make_schedule(expression="*/30 1 * * *", timezone="America/New_York")
    _due(schedule, datetime(2026, 10, 31, 5, 30, tzinfo=UTC))  # 01:30 EDT the day before
    now = datetime(2026, 11, 1, 6, 10, tzinfo=UTC)  # 01:10 EST
    assert services.schedule_dispatch_due(now=now) == 1
    assert ScheduleRun.objects.get(schedule=schedule).scheduled_for == datetime(2026, 11, 1, 6, 0, tzinfo=UTC)
    schedule.refresh_from_db()
    assert schedule.next_run_at == datetime(2026, 11, 1, 6, 30, tzinfo=UTC)  # 01:30 EST


def test_latest_fire_in_a_repeated_hour():
    zone = "America/New_York"
    # 01:10 EST (second copy): the latest slot is 01:00 EST, not 01:00 EDT an hour earlier
    assert cron.latest_fire("*/30 1 * * *", zone, datetime(2026, 11, 1, 6, 10, tzinfo=UTC)) == datetime(
        2026, 11, 1, 6, 0, tzinfo=UTC
    )
    # exactly on a slot counts ("at or before")
    assert cron.latest_fire("*/30 1 * * *", zone, datetime(2026, 11, 1, 6, 30, tzinfo=UTC)) == datetime(
        2026, 11, 1, 6, 30, tzinfo=UTC
    )
    # a fixed job runs once in the repeated hour: its latest slot stays 01:30 EDT
    assert cron.latest_fire("30 1 * * *", zone, datetime(2026, 11, 1, 6, 40, tzinfo=UTC)) == datetime(
        2026, 11, 1, 5, 30, tzinfo=UTC
    )


@pytest.mark.django_db
def test_batches_cover_every_due_row(workspace):
    now = datetime(2026, 6, 1, 12, 0, 5, tzinfo=UTC)
    schedules = [
        services.schedule_prepare(workspace=workspace, expression="* * * * *", prompt=f"p{i}")
        for i in range(23)
    ]
    for schedule in schedules:
        schedule.next_run_at = now.replace(second=0)
    services.schedule_bulk_create(schedules=schedules)
    assert services.schedule_dispatch_due(now=now, batch_size=5) == 23
    assert ScheduleRun.objects.count() == 23
    assert not Schedule.objects.filter(next_run_at__lte=now).exists()


@pytest.mark.django_db
def test_a_slot_cannot_have_two_cron_runs(workspace, make_schedule):
    schedule = make_schedule()
    slot = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
    ScheduleRun.objects.create(schedule=schedule, scheduled_for=slot)
    with pytest.raises(IntegrityError), transaction.atomic():
        ScheduleRun.objects.create(schedule=schedule, scheduled_for=slot)
    # manual runs are extra by definition
    ScheduleRun.objects.create(schedule=schedule, scheduled_for=slot, trigger=RunTrigger.MANUAL)


@pytest.mark.django_db
def test_dispatcher_skips_a_slot_that_already_has_a_run(workspace, make_schedule):
    """If a slot already ran (clock skew between dispatchers), no second run is created or sent."""
    schedule = make_schedule(expression="*/5 * * * *")
    slot = datetime(2026, 6, 1, 12, 5, tzinfo=UTC)
    ScheduleRun.objects.create(schedule=schedule, scheduled_for=slot, status=RunStatus.SUCCESS)
    _due(schedule, slot)
    assert services.schedule_dispatch_due(now=slot + timedelta(seconds=1)) == 0
    assert ScheduleRun.objects.filter(schedule=schedule).count() == 1
    schedule.refresh_from_db()
    assert schedule.next_run_at == slot + timedelta(minutes=5)


@pytest.mark.django_db(transaction=True)
def test_runs_are_published_only_after_commit(make_schedule, broker):
    """The dispatcher publishes the runs it created itself, as attempt 1, once its transaction
    committed (here the caller's); the relay has nothing left to publish for them."""
    from common.outbox import relay_pass

    schedule = make_schedule()
    _due(schedule, timezone.now() - timedelta(seconds=1))
    with transaction.atomic():
        assert services.schedule_dispatch_due() == 1
        assert broker.messages() == []
    run = ScheduleRun.objects.get()
    assert [m["args"] for m in broker.messages()] == [[str(run.pk), 1]]
    assert (run.status, run.publish_attempt, run.run_attempt) == (RunStatus.QUEUED, 1, 0)
    assert run.relay_due_at > timezone.now() + timedelta(seconds=60)  # the relay's turn: the lease's end
    assert relay_pass() == 0


@pytest.mark.django_db(transaction=True)
def test_batches_are_published_as_batched_messages_in_order(workspace, broker, settings):
    """Several batches: each one's runs go out once it has committed, OUTBOX_MESSAGE_ROWS rows to
    a message."""
    settings.OUTBOX_MESSAGE_ROWS = 3
    now = timezone.now()
    prepared = []
    for i in range(7):
        schedule = services.schedule_prepare(workspace=workspace, expression="* * * * *", prompt=f"p{i}")
        schedule.next_run_at = now - timedelta(seconds=1)
        prepared.append(schedule)
    services.schedule_bulk_create(schedules=prepared)
    assert services.schedule_dispatch_due(now=now, batch_size=4) == 7
    messages = broker.messages()
    assert [m["headers"]["task"] for m in messages] == ["schedules.execute_runs"] * 3
    published = [row for m in messages for row in m["args"][1]]
    assert sorted(published) == sorted(
        [str(pk), 1] for pk in ScheduleRun.objects.values_list("pk", flat=True)
    )


@pytest.mark.django_db(transaction=True)
def test_a_broker_refusing_the_dispatchers_publish_leaves_the_runs_to_the_relay(make_schedule, monkeypatch):
    from kombu.exceptions import OperationalError as BrokerDown

    from common import outbox

    def refuse(*args, **kwargs):
        raise BrokerDown("broker down")

    schedule = make_schedule()
    _due(schedule, timezone.now() - timedelta(seconds=1))
    monkeypatch.setattr(outbox, "_publish", refuse)
    assert services.schedule_dispatch_due() == 1
    run = ScheduleRun.objects.get()
    assert run.relay_due_at <= timezone.now()  # due now: the relay publishes it when it can
    monkeypatch.undo()
    try:
        assert outbox.relay_pass() == 1
        run.refresh_from_db()
        assert run.publish_attempt == 2
    finally:
        purge_broker()


@pytest.mark.django_db(transaction=True)
def test_two_concurrent_dispatchers_create_one_run_per_slot():
    """Two dispatchers (threads, each with its own PostgreSQL connection) over the same due rows."""
    workspace = make_workspace("concurrent")
    now = datetime(2026, 6, 1, 12, 0, 30, tzinfo=UTC)
    prepared = []
    for i in range(300):
        schedule = services.schedule_prepare(workspace=workspace, expression="* * * * *", prompt=f"p{i}")
        schedule.next_run_at = now.replace(second=0)
        prepared.append(schedule)
    services.schedule_bulk_create(schedules=prepared)

    barrier = threading.Barrier(2)
    results: list[int] = []
    errors: list[BaseException] = []

    def dispatcher() -> None:
        try:
            barrier.wait()
            for _ in range(3):  # a few ticks each, as Beat would send
                results.append(services.schedule_dispatch_due(now=now, batch_size=7))
        except BaseException as exc:
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=dispatcher) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    try:
        assert not errors, errors
        assert sum(results) == 300
        runs = ScheduleRun.objects.filter(schedule__workspace=workspace)
        assert runs.count() == 300
        assert runs.values("schedule_id").distinct().count() == 300
        assert set(runs.values_list("scheduled_for", flat=True)) == {now.replace(second=0)}
        assert not Schedule.objects.filter(next_run_at__lte=now).exists()
    finally:
        purge_broker()


@pytest.mark.django_db
def test_dispatch_task_uses_the_service(workspace, make_schedule):
    schedule = make_schedule()
    _due(schedule, timezone.now() - timedelta(minutes=1))
    assert dispatch_due.apply().get() == 1


@pytest.mark.django_db
def test_next_fire_is_strictly_after():
    at = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
    assert cron.next_fire("* * * * *", "UTC", at) == at + timedelta(minutes=1)
    assert cron.latest_fire("* * * * *", "UTC", at) == at
    assert cron.latest_fire("* * * * *", "UTC", at + timedelta(seconds=59)) == at


@pytest.mark.django_db(transaction=True)
def test_runs_of_a_dispatcher_that_died_before_publishing_come_back_when_their_lease_ends(
    make_schedule, monkeypatch, settings
):
    from common.outbox import relay_pass

    schedule = make_schedule()
    _due(schedule, timezone.now() - timedelta(seconds=1))
    monkeypatch.setattr(services, "_publish_runs_in_thread", lambda ids: None)  # killed after commit
    assert services.schedule_dispatch_due() == 1
    run = ScheduleRun.objects.get()
    try:
        assert relay_pass() == 0  # not before the lease ends
        lease_end = run.relay_due_at
        assert relay_pass(now=lease_end - timedelta(seconds=1)) == 0
        assert relay_pass(now=lease_end) == 1
        run.refresh_from_db()
        assert (run.status, run.publish_attempt) == (RunStatus.QUEUED, 2)
    finally:
        purge_broker()
