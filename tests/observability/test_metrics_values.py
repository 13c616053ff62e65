"""`GET /metrics` reports what the database, the broker and the processes really hold."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
import redis
from django.conf import settings
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from approvals.models import Approval, ApprovalStatus
from channels_app import services as channel_services
from channels_app.models import ChannelCleanup, ChannelMessage
from integrations_project.celery import app
from plugins_app.models import InstalledPlugin
from schedules import services as schedule_services
from schedules.models import Schedule, ScheduleRun
from templates_app.models import BundleImportJob, TemplateImportJob
from tests.channels_app.helpers import TELEGRAM_TOKEN, post_telegram, telegram_channel, telegram_update
from tests.observability.helpers import scrape, value
from tests.support.fake_http import FakeResponse, free_port, json_response
from workspaces.delivery import deliver_prompt
from workspaces.models import AgentDelivery

pytestmark = pytest.mark.django_db
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def loopback_scrape(settings):
    settings.METRICS_TOKEN = ""


@pytest.fixture
def empty_queues():
    client = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    client.delete("celery", "scheduler")
    yield client
    client.delete("celery", "scheduler")


def _schedule(workspace, *, due_in: float | None, enabled: bool = True, name: str = "") -> Schedule:
    next_run_at = timezone.now() + timedelta(seconds=due_in) if due_in is not None else None
    return Schedule.objects.create(
        workspace=workspace,
        name=name,
        expression="* * * * *",
        prompt="p",
        enabled=enabled,
        next_run_at=next_run_at,
    )


def _run(schedule: Schedule, status: str, n: int = 1) -> None:
    now = timezone.now()
    ScheduleRun.objects.bulk_create(
        ScheduleRun(schedule=schedule, trigger="manual", status=status, scheduled_for=now) for _ in range(n)
    )


def test_levels_read_from_the_database_and_the_broker(client, workspace, empty_queues):
    now = timezone.now()
    due = _schedule(workspace, due_in=-30, name="a")
    _schedule(workspace, due_in=-5, name="b")
    _schedule(workspace, due_in=-600, enabled=False, name="off")  # disabled: not due
    _schedule(workspace, due_in=60, name="later")
    _run(due, "queued", 2)
    _run(due, "running")
    _run(due, "success", 3)
    _run(due, "error")
    stale = now - timedelta(seconds=settings.A2A_TIMEOUT_SECONDS + 600)
    AgentDelivery.objects.create(workspace=workspace, source="schedule")
    AgentDelivery.objects.create(workspace=workspace, source="schedule", started_at=stale)
    channel = telegram_channel(workspace)
    for direction, status, n in [
        ("inbound", "received", 2),
        ("inbound", "delivered", 1),
        ("outbound", "queued", 1),
        ("outbound", "sent", 3),
    ]:
        for _ in range(n):
            ChannelMessage.objects.create(channel=channel, direction=direction, status=status)
    for name, status in [("a", "installing"), ("b", "installed"), ("c", "installed")]:
        InstalledPlugin.objects.create(
            workspace=workspace, name=name, source=f"local://{name}", status=status
        )
    TemplateImportJob.objects.create(source="local://x", status="queued")
    TemplateImportJob.objects.create(source="local://y", status="failed")
    BundleImportJob.objects.create(status="running")
    Approval.objects.create(workspace=workspace, action="a", expires_at=now + timedelta(hours=1))
    Approval.objects.create(workspace=workspace, action="b", expires_at=now - timedelta(seconds=1))
    Approval.objects.create(
        workspace=workspace, action="c", status=ApprovalStatus.APPROVED, expires_at=now + timedelta(hours=1)
    )
    for _ in range(3):
        app.send_task("schedules.reap_stuck_runs", queue="scheduler")

    samples = scrape(client)

    assert value(samples, "integrations_schedules_due") == 2
    assert 30 <= value(samples, "integrations_schedules_due_oldest_seconds") < 600
    assert value(samples, "integrations_scheduler_last_tick_timestamp_seconds") == 0
    assert value(samples, "integrations_schedule_runs", status="queued") == 2
    assert value(samples, "integrations_schedule_runs", status="running") == 1
    assert ("integrations_schedule_runs", frozenset({("status", "success")})) not in samples
    assert value(samples, "integrations_agent_deliveries_in_flight") == 1
    pending = "integrations_channel_messages_pending"
    assert value(samples, pending, direction="inbound", status="received") == 2
    assert value(samples, pending, direction="outbound", status="queued") == 1
    assert value(samples, "integrations_plugin_installs", status="installing") == 1
    assert value(samples, "integrations_plugin_installs", status="installed") == 2
    assert ("integrations_plugin_installs", frozenset({("status", "failed")})) in samples
    assert value(samples, "integrations_import_jobs", kind="template", status="queued") == 1
    assert value(samples, "integrations_import_jobs", kind="template", status="failed") == 1
    assert value(samples, "integrations_import_jobs", kind="bundle", status="running") == 1
    assert value(samples, "integrations_import_jobs", kind="bundle", status="queued") == 0
    assert value(samples, "integrations_approvals_pending") == 1  # the other one has expired
    assert value(samples, "integrations_broker_up") == 1
    assert value(samples, "integrations_broker_latency_seconds") > 0
    assert value(samples, "integrations_celery_queue_depth", queue="scheduler") == 3
    assert value(samples, "integrations_celery_queue_depth", queue="celery") == 0
    for part in ("scheduler", "deliveries", "channels", "jobs", "approvals", "broker"):
        assert value(samples, "integrations_scrape_ok", part=part) == 1

    schedule_services.scheduler_tick_record(at=now)
    assert scrape(client)[
        ("integrations_scheduler_last_tick_timestamp_seconds", frozenset())
    ] == pytest.approx(now.timestamp())


def test_scrape_costs_the_same_queries_for_1_or_50_rows(client, workspace, empty_queues):
    def count() -> int:
        with CaptureQueriesContext(connection) as queries:
            scrape(client)
        return len(queries)

    schedule = _schedule(workspace, due_in=-1)
    _run(schedule, "queued")
    few = count()
    for i in range(49):
        _run(_schedule(workspace, due_in=-i - 2, name=f"s{i}"), "running")
    assert count() == few


def test_broker_down_is_reported_and_the_rest_still_served(client, workspace, monkeypatch):
    monkeypatch.setattr(app.conf, "broker_write_url", f"redis://127.0.0.1:{free_port()}/0")
    _schedule(workspace, due_in=-1)
    samples = scrape(client)
    assert value(samples, "integrations_broker_up") == 0
    assert ("integrations_celery_queue_depth", frozenset({("queue", "celery")})) not in samples
    assert value(samples, "integrations_schedules_due") == 1


def test_a_failing_part_is_reported_not_fatal(client, monkeypatch):
    def broken(**kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr("approvals.selectors.approval_pending_count", broken)
    samples = scrape(client)
    assert value(samples, "integrations_scrape_ok", part="approvals") == 0
    assert value(samples, "integrations_scrape_ok", part="scheduler") == 1
    assert ("integrations_approvals_pending", frozenset()) not in samples


def _rpc_ok(request):
    body = {
        "jsonrpc": "2.0",
        "id": request.json()["id"],
        "result": {"parts": [{"kind": "text", "text": "ok"}]},
    }
    return FakeResponse(200, json.dumps(body).encode(), {"Content-Type": "application/json"})


def test_agent_calls_are_timed_by_outcome(client, workspace, fake_http):
    calls = "integrations_agent_call_duration_seconds_count"
    before = scrape(client)
    fake_http.route("POST", "/ok", _rpc_ok)
    fake_http.route("POST", "/down", json_response({"error": "x"}, status=503))
    fake_http.route("POST", "/bad", json_response({"error": "x"}, status=400))
    for path in ("/ok", "/ok", "/down", "/bad"):
        workspace.url = fake_http.url + path
        try:
            deliver_prompt(workspace=workspace, text="x", message_id="m", source="channel")
        except Exception as exc:
            assert type(exc).__name__ == "A2AError"
    after = scrape(client)
    for outcome, expected in (("ok", 2), ("transient", 1), ("error", 1)):
        delta = value(after, calls, source="channel", outcome=outcome) - value(
            before, calls, source="channel", outcome=outcome
        )
        assert delta == expected, outcome
    assert value(after, "integrations_agent_call_duration_seconds_sum", source="channel", outcome="ok") > 0


def test_a_cron_run_counts_its_lag_and_its_status(client, workspace, fake_http):
    fake_http.route("POST", "/", _rpc_ok)
    workspace.url = fake_http.url + "/"
    workspace.save()
    schedule = _schedule(workspace, due_in=None)
    slot = timezone.now() - timedelta(seconds=42)
    run = ScheduleRun.objects.create(schedule=schedule, trigger="cron", status="queued", scheduled_for=slot)
    before = scrape(client)
    assert schedule_services.run_execute(run_id=run.pk) is None
    after = scrape(client)
    lag = "integrations_schedule_dispatch_lag_seconds"
    assert value(after, f"{lag}_count") - value(before, f"{lag}_count") == 1
    assert 42 <= value(after, f"{lag}_sum") - value(before, f"{lag}_sum") < 600
    # 42 s falls in the 60 s bucket, not in the 30 s one.
    assert value(after, f"{lag}_bucket", le="30.0") == value(before, f"{lag}_bucket", le="30.0")
    assert value(after, f"{lag}_bucket", le="60.0") - value(before, f"{lag}_bucket", le="60.0") == 1
    finished = "integrations_schedule_runs_finished_total"
    assert value(after, finished, status="success") - value(before, finished, status="success") == 1


def test_webhooks_and_sends_are_counted(client, workspace, settings, fake_http):
    settings.TELEGRAM_API_BASE_URL = fake_http.url
    fake_http.route("POST", f"/bot{TELEGRAM_TOKEN}/sendMessage", json_response({"ok": True, "result": {}}))
    telegram_channel(workspace)
    hooks = "integrations_webhook_requests_total"
    before = scrape(client)
    assert post_telegram(client, telegram_update(1)).status_code == 200
    assert post_telegram(client, telegram_update(1)).status_code == 200  # a platform retry: nothing new
    assert post_telegram(client, telegram_update(2), secret="wrong-secret-0000000000").status_code == 401
    assert client.post("/webhooks/icq", data=b"{}", content_type="application/json").status_code == 404
    reply = channel_services.channel_send(channel=workspace.channels.get(), text="hi", chat_id="42")
    channel_services.message_send_attempt(message_id=reply.pk)
    after = scrape(client)

    def delta(name, **labels):
        return value(after, name, **labels) - value(before, name, **labels)

    assert delta(hooks, platform="telegram", outcome="stored") == 1
    assert delta(hooks, platform="telegram", outcome="ignored") == 1
    assert delta(hooks, platform="telegram", outcome="rejected") == 1
    assert delta(hooks, platform="unknown", outcome="rejected") == 1
    assert delta("integrations_channel_sends_total", platform="telegram", status="sent") == 1
    redis.Redis.from_url(settings.CELERY_BROKER_URL).delete("celery", "agents")


def test_counters_of_every_process_are_summed(client):
    """Several processes (gunicorn workers, Celery children) write to one directory; a scrape
    served by any of them reports the total."""
    hooks = "integrations_webhook_requests_total"
    before = value(scrape(client), hooks, platform="slack", outcome="ignored")
    code = (
        "import django; django.setup()\n"
        "from observability.metrics import webhook_counted\n"
        "for _ in range(5): webhook_counted(platform='slack', outcome='ignored')\n"
    )
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "integrations_project.settings_test"}
    assert env["PROMETHEUS_MULTIPROC_DIR"] == str(settings.PROMETHEUS_MULTIPROC_DIR)
    children = [subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, env=env) for _ in range(3)]
    assert [child.wait(timeout=120) for child in children] == [0, 0, 0]
    assert value(scrape(client), hooks, platform="slack", outcome="ignored") - before == 15


def test_processes_write_in_multiprocess_mode():
    from prometheus_client import values as prometheus_values

    assert prometheus_values.ValueClass.__name__ == "MmapedValue"


def test_reset_metrics_empties_the_directory_before_a_start(settings, tmp_path):
    from io import StringIO

    from django.core.management import call_command

    settings.PROMETHEUS_MULTIPROC_DIR = tmp_path
    (tmp_path / "counter_12345.db").write_bytes(b"")
    (tmp_path / "histogram_12345.db").write_bytes(b"")
    (tmp_path / "notes.txt").write_text("kept")
    out = StringIO()
    call_command("reset_metrics", stdout=out)
    assert "removed 2" in out.getvalue()
    assert [path.name for path in tmp_path.iterdir()] == ["notes.txt"]


def test_the_example_dashboard_and_alerts_use_only_metrics_that_exist(client, empty_queues):
    import re

    import yaml

    from observability import metrics

    families = {sample_name for sample_name, _labels in scrape(client)}
    for instrument in (
        metrics.agent_call_seconds,
        metrics.schedule_dispatch_lag_seconds,
        metrics.schedule_runs_finished,
        metrics.webhook_requests,
        metrics.channel_sends,
    ):
        for family in instrument.describe():
            suffixes = ("_bucket", "_count", "_sum") if family.type == "histogram" else ("_total",)
            families |= {family.name + suffix for suffix in suffixes}
    dashboard = json.loads((ROOT / "docs" / "grafana-dashboard.json").read_text())
    expressions = [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]
    rules = yaml.safe_load((ROOT / "docs" / "prometheus-alerts.yml").read_text())
    expressions += [rule["expr"] for group in rules["groups"] for rule in group["rules"]]
    used = {name for expr in expressions for name in re.findall(r"\bintegrations_[a-z_]+", expr)}
    assert used and used <= families, used - families


def test_the_relays_backlog_per_kind(client, workspace, empty_queues):
    """Rows due for the relay are counted per job kind until it publishes them (then they are
    leased, not due), with how long the oldest has waited."""
    from common.outbox import relay_pass

    schedule = _schedule(workspace, due_in=None, enabled=False)
    _run(schedule, "queued", n=3)
    ScheduleRun.objects.update(relay_due_at=timezone.now() - timedelta(seconds=40))
    samples = scrape(client)
    assert value(samples, "integrations_outbox_due", kind="schedules.run") == 3
    assert 40 <= value(samples, "integrations_outbox_oldest_due_seconds", kind="schedules.run") < 600
    assert value(samples, "integrations_outbox_due", kind="channels.inbound") == 0
    assert value(samples, "integrations_outbox_oldest_due_seconds", kind="channels.inbound") == 0
    ChannelCleanup.objects.create(
        channel_id=uuid.uuid4(), platform="telegram", relay_due_at=timezone.now() - timedelta(seconds=5)
    )
    samples = scrape(client)
    # Every registered kind has its gauges, the chat posts and channel clean-ups included.
    assert value(samples, "integrations_outbox_due", kind="approvals.chat") == 0
    assert value(samples, "integrations_outbox_due", kind="channels.cleanup") == 1
    assert 5 <= value(samples, "integrations_outbox_oldest_due_seconds", kind="channels.cleanup") < 600
    ChannelCleanup.objects.all().delete()
    assert relay_pass() == 3
    samples = scrape(client)
    assert value(samples, "integrations_outbox_due", kind="schedules.run") == 0
    assert value(samples, "integrations_scrape_ok", part="outbox") == 1
