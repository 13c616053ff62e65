"""The service interface other apps rely on (org/bundle imports), and the admin console."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
from django.contrib.auth.models import User
from django.db import connection, transaction
from django.utils import timezone

from common.errors import ApplicationError, Conflict
from schedules import selectors, services
from schedules.models import RunTrigger, Schedule, ScheduleRun, ScheduleSource
from tests.support.factories import make_workspace

pytestmark = pytest.mark.django_db


def test_prepare_returns_an_unsaved_validated_schedule(workspace):
    schedule = services.schedule_prepare(
        workspace=workspace,
        expression=" 0  9 * * MON ",
        prompt="a\r\nb",
        timezone="Europe/Berlin",
        name=" weekly ",
        source=ScheduleSource.TEMPLATE,
    )
    assert schedule._state.adding
    assert not Schedule.objects.exists()
    assert schedule.expression == "0 9 * * MON"
    assert schedule.prompt == "a\nb"
    assert schedule.name == "weekly"
    assert schedule.source == "template"
    assert schedule.next_run_at > timezone.now()
    assert schedule.next_run_at.tzinfo is not None
    disabled = services.schedule_prepare(
        workspace=workspace, expression="* * * * *", prompt="p", enabled=False
    )
    assert disabled.next_run_at is None


@pytest.mark.parametrize(
    ("kwargs", "code"),
    [
        ({"expression": "* * * * * *"}, "invalid_expression"),
        ({"expression": "0 0 30 2 *"}, "invalid_expression"),
        ({"timezone": "Nope/Nope"}, "invalid_timezone"),
        ({"prompt": ""}, "invalid_request"),
        ({"prompt": "x" * 32_001}, "invalid_request"),
        ({"source": "api"}, "invalid_request"),
        ({"name": "n" * 201}, "invalid_request"),
    ],
)
def test_prepare_raises_application_errors(workspace, kwargs, code):
    arguments = {"workspace": workspace, "expression": "* * * * *", "prompt": "p", **kwargs}
    with pytest.raises(ApplicationError) as error:
        services.schedule_prepare(**arguments)
    assert error.value.code == code
    assert error.value.status_code == 400


def test_create_conflict_on_duplicate_name(workspace):
    services.schedule_create(workspace=workspace, expression="* * * * *", prompt="p", name="same")
    with pytest.raises(Conflict) as error:
        services.schedule_create(workspace=workspace, expression="* * * * *", prompt="p", name="same")
    assert error.value.status_code == 409


def test_bulk_create_is_one_insert(workspace, django_assert_num_queries):
    prepared = [
        services.schedule_prepare(workspace=workspace, expression="*/5 * * * *", prompt=f"p{i}", name=f"s{i}")
        for i in range(40)
    ]
    with django_assert_num_queries(3):  # savepoint, INSERT, release
        saved = services.schedule_bulk_create(schedules=prepared)
    assert len(saved) == 40
    assert selectors.schedule_list(workspace=workspace).count() == 40
    assert services.schedule_bulk_create(schedules=[]) == []


def test_bulk_create_duplicate_name_is_a_conflict(workspace):
    services.schedule_create(workspace=workspace, expression="* * * * *", prompt="p", name="taken")
    clash = services.schedule_prepare(workspace=workspace, expression="* * * * *", prompt="p", name="taken")
    with pytest.raises(Conflict):
        services.schedule_bulk_create(schedules=[clash])
    assert Schedule.objects.count() == 1  # and the surrounding transaction is still usable


def test_schedule_list_is_scoped(workspace, other_workspace):
    mine = services.schedule_create(workspace=workspace, expression="* * * * *", prompt="p")
    services.schedule_create(workspace=other_workspace, expression="* * * * *", prompt="p")
    assert list(selectors.schedule_list(workspace=workspace)) == [mine]


def test_deleting_the_workspace_removes_schedules_and_runs(workspace):
    schedule = services.schedule_create(workspace=workspace, expression="* * * * *", prompt="p")
    ScheduleRun.objects.create(schedule=schedule, scheduled_for=timezone.now())
    workspace.delete()
    assert not Schedule.objects.exists()
    assert not ScheduleRun.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_dispatcher_skips_rows_locked_by_another_transaction():
    """SKIP LOCKED: a row held by someone else (an edit in progress) is left for the next tick,
    and the dispatcher does not wait for it."""
    workspace = make_workspace("locks")
    now = datetime(2026, 6, 1, 12, 0, 30, tzinfo=UTC)
    held = services.schedule_create(workspace=workspace, expression="* * * * *", prompt="held")
    free = services.schedule_create(workspace=workspace, expression="* * * * *", prompt="free")
    Schedule.objects.update(next_run_at=now.replace(second=0))
    locked, release = threading.Event(), threading.Event()

    def holder() -> None:
        try:
            with transaction.atomic():
                Schedule.objects.select_for_update().get(pk=held.pk)
                locked.set()
                release.wait(timeout=30)
        finally:
            connection.close()

    thread = threading.Thread(target=holder)
    thread.start()
    try:
        assert locked.wait(timeout=10)
        with connection.cursor() as cursor:
            cursor.execute("SET lock_timeout = '2s'")
        created = services.schedule_dispatch_due(now=now)
        assert created == 1
        assert list(ScheduleRun.objects.values_list("schedule_id", flat=True)) == [free.pk]
    finally:
        release.set()
        thread.join(timeout=30)
        with connection.cursor() as cursor:
            cursor.execute("SET lock_timeout = 0")
        from tests.support.worker import purge_broker

        purge_broker()
    assert services.schedule_dispatch_due(now=now + timedelta(seconds=5)) == 1


@pytest.fixture
def staff_client(client, db):
    user = User.objects.create_superuser("ops", "ops@example.test", "pw")
    client.force_login(user)
    return client


def test_admin_lists_and_filters_schedules(staff_client, workspace):
    services.schedule_create(workspace=workspace, expression="0 9 * * *", prompt="p", name="morning")
    response = staff_client.get("/admin/schedules/schedule/?enabled__exact=1&source__exact=runtime")
    assert response.status_code == 200
    assert b"morning" in response.content
    assert staff_client.get("/admin/schedules/schedule/?last_status__exact=success").status_code == 200
    assert (
        staff_client.get(f"/admin/schedules/schedule/?workspace__id__exact={workspace.pk}").status_code == 200
    )


def test_admin_run_now_action(staff_client, workspace):
    schedule = services.schedule_create(workspace=workspace, expression="0 9 * * *", prompt="p")
    response = staff_client.post(
        "/admin/schedules/schedule/",
        {"action": "run_now", "_selected_action": [str(schedule.pk)]},
    )
    assert response.status_code == 302
    run = ScheduleRun.objects.get(schedule=schedule)
    assert run.trigger == RunTrigger.MANUAL
    assert (run.relay_due_at is not None, run.publish_attempt) == (True, 0)  # for the relay


def test_admin_add_and_change_go_through_the_services(staff_client, workspace):
    form = {
        "workspace": str(workspace.pk),
        "name": "from admin",
        "expression": "0 9 * * *",
        "timezone": "UTC",
        "prompt": "hello",
        "enabled": "on",
    }
    bad = staff_client.post("/admin/schedules/schedule/add/", {**form, "expression": "0 0 30 2 *"})
    assert bad.status_code == 200
    assert b"never fires" in bad.content
    bad_tz = staff_client.post("/admin/schedules/schedule/add/", {**form, "timezone": "Nowhere/X"})
    assert b"IANA" in bad_tz.content
    response = staff_client.post("/admin/schedules/schedule/add/", form)
    assert response.status_code == 302, response.content[:2000]
    schedule = Schedule.objects.get(name="from admin")
    assert schedule.next_run_at is not None
    assert schedule.source == "runtime"

    changed = staff_client.post(f"/admin/schedules/schedule/{schedule.pk}/change/", {**form, "enabled": ""})
    assert changed.status_code == 302
    schedule.refresh_from_db()
    assert (schedule.enabled, schedule.next_run_at) == (False, None)


def test_admin_duplicate_name_is_a_form_error_on_add_and_change(staff_client, workspace, other_workspace):
    services.schedule_create(workspace=workspace, expression="0 9 * * *", prompt="p", name="daily")
    form = {
        "workspace": str(workspace.pk),
        "name": " daily ",
        "expression": "0 9 * * *",
        "timezone": "UTC",
        "prompt": "hello",
        "enabled": "on",
    }
    added = staff_client.post("/admin/schedules/schedule/add/", form)
    assert added.status_code == 200
    assert b"already exists in this workspace" in added.content
    assert Schedule.objects.filter(name="daily").count() == 1

    other = services.schedule_create(workspace=workspace, expression="0 9 * * *", prompt="p", name="other")
    changed = staff_client.post(f"/admin/schedules/schedule/{other.pk}/change/", {**form, "name": "daily"})
    assert changed.status_code == 200
    assert b"already exists in this workspace" in changed.content
    other.refresh_from_db()
    assert other.name == "other"
    # keeping its own name, or taking a name used only in another workspace, is fine
    services.schedule_create(workspace=other_workspace, expression="0 9 * * *", prompt="p", name="elsewhere")
    for name in ("other", "elsewhere"):
        response = staff_client.post(f"/admin/schedules/schedule/{other.pk}/change/", {**form, "name": name})
        assert response.status_code == 302, name
    other.refresh_from_db()
    assert other.name == "elsewhere"


def test_admin_runs_are_read_only(staff_client, workspace):
    schedule = services.schedule_create(workspace=workspace, expression="0 9 * * *", prompt="p")
    run = ScheduleRun.objects.create(schedule=schedule, scheduled_for=timezone.now())
    listing = staff_client.get("/admin/schedules/schedulerun/?status__exact=queued&trigger__exact=cron")
    assert listing.status_code == 200
    assert staff_client.get(f"/admin/schedules/schedulerun/{run.pk}/change/").status_code == 200
    assert staff_client.get("/admin/schedules/schedulerun/add/").status_code == 403
    assert (
        staff_client.post(f"/admin/schedules/schedulerun/{run.pk}/delete/", {"post": "yes"}).status_code
        == 403
    )


def test_beat_entries_are_declared(settings):
    entries = {entry["task"]: entry for entry in settings.CELERY_BEAT_SCHEDULE.values()}
    assert entries["schedules.dispatch_due"]["schedule"] == settings.SCHEDULER_TICK_SECONDS
    assert "schedules.reap_stuck_runs" not in entries  # lost runs come back through the relay
    assert entries["housekeeping.prune_history"]["schedule"] == settings.RETENTION_PRUNE_SECONDS
    from integrations_project.celery import app

    app.loader.import_default_modules()
    assert {"schedules.dispatch_due", "schedules.execute_run"} <= set(app.tasks)
    assert "schedules.reap_stuck_runs" not in app.tasks


@pytest.mark.django_db(transaction=True)
def test_beat_stores_the_entries_and_health_ignores_beats_send_time(client, settings):
    """django-celery-beat's DatabaseScheduler stores our entries (operators see them in the admin);
    /health does not take Beat's send time for a tick (Beat sends even when no worker runs it)."""
    from django_celery_beat.models import PeriodicTask
    from django_celery_beat.schedulers import DatabaseScheduler

    from integrations_project.celery import app

    scheduler = DatabaseScheduler(app=app)
    dispatcher = PeriodicTask.objects.get(task="schedules.dispatch_due")
    assert dispatcher.interval.every == settings.SCHEDULER_TICK_SECONDS
    assert "schedules.dispatch_due" in scheduler.schedule
    tick = timezone.now().replace(microsecond=0)
    PeriodicTask.objects.filter(pk=dispatcher.pk).update(last_run_at=tick)
    body = client.get("/health").json()
    assert body["scheduler_last_tick_at"] is None


def test_scheduler_ticks_have_their_own_queue_and_agent_calls_theirs():
    from integrations_project.celery import app

    router = app.amqp.router
    assert router.route({}, "schedules.dispatch_due")["queue"].name == "scheduler"
    for task in (
        "schedules.execute_run",
        "channels.process_inbound",
        "approvals.notify_agent",
        "channels.send_message",
    ):
        assert router.route({}, task)["queue"].name == "agents"
    for task in ("plugins.install", "templates.run_template_import", "housekeeping.prune_history"):
        assert router.route({}, task)["queue"].name == "celery"
    assert {queue.name for queue in app.amqp.queues.values()} >= {"celery", "scheduler", "agents"}
