"""`/health` tells the truth: the tick is the dispatcher's own, the lag and the broker are measured."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from django_celery_beat.models import PeriodicTask
from django_celery_beat.schedulers import DatabaseScheduler

from integrations_project.celery import app
from schedules import services
from schedules.models import Schedule
from schedules.tasks import dispatch_due
from tests.support.fake_http import free_port


def _parse(stamp: str):
    from datetime import datetime

    return datetime.fromisoformat(stamp.replace("Z", "+00:00"))


@pytest.mark.django_db(transaction=True)
def test_beat_sending_into_a_dead_broker_is_not_a_tick(client, monkeypatch):
    """Beat stamps its entry before sending, and a failed send is only logged: that stamp moved
    while nothing ran. /health must not report it."""
    scheduler = DatabaseScheduler(app=app)
    entry = scheduler.schedule["schedules.dispatch_due"]
    monkeypatch.setattr(app.conf, "broker_write_url", f"redis://127.0.0.1:{free_port()}/0")
    monkeypatch.setattr(app.conf, "broker_connection_max_retries", 1)
    scheduler.reserve(entry)  # what Beat's tick does for a due entry...
    scheduler.apply_entry(entry)  # ...then the send, which fails (logged, not raised)
    scheduler.sync()
    assert PeriodicTask.objects.get(task="schedules.dispatch_due").last_run_at is not None
    body = client.get("/health").json()
    assert body["broker"] == "error"
    assert body["scheduler_last_tick_at"] is None


@pytest.mark.django_db
def test_the_tick_is_recorded_by_the_dispatcher_task_when_it_ran(client):
    assert client.get("/health").json()["scheduler_last_tick_at"] is None
    before = timezone.now()
    dispatch_due.apply()
    stamp = _parse(client.get("/health").json()["scheduler_last_tick_at"])
    assert before <= stamp <= timezone.now()
    dispatch_due.apply()
    assert _parse(client.get("/health").json()["scheduler_last_tick_at"]) >= stamp


@pytest.mark.django_db
def test_a_dispatcher_that_failed_records_no_tick(client, monkeypatch):
    def broken(**kwargs):
        raise RuntimeError("database went away")

    monkeypatch.setattr(services, "schedule_dispatch_due", broken)
    result = dispatch_due.apply()
    assert result.failed()
    assert client.get("/health").json()["scheduler_last_tick_at"] is None


@pytest.mark.django_db
def test_dispatch_lag_is_how_late_the_oldest_due_schedule_is(
    client, workspace, django_capture_on_commit_callbacks
):
    assert client.get("/health").json()["dispatch_lag_seconds"] == 0
    now = timezone.now()
    for seconds, enabled in ((45, True), (10, True), (3600, False)):
        Schedule.objects.create(
            workspace=workspace,
            expression="0 9 * * *",
            prompt="p",
            enabled=enabled,
            next_run_at=now - timedelta(seconds=seconds),
        )
    lag = client.get("/health").json()["dispatch_lag_seconds"]
    assert 45 <= lag < 3600  # the disabled one does not count
    with django_capture_on_commit_callbacks():  # runs are created; their messages are not sent
        services.schedule_dispatch_due()
    assert client.get("/health").json()["dispatch_lag_seconds"] == 0


@pytest.mark.django_db
def test_broker_latency_is_measured(client):
    body = client.get("/health").json()
    assert body["broker"] == "ok"
    assert isinstance(body["broker_latency_ms"], float) and body["broker_latency_ms"] > 0
