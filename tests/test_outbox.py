"""The outbox's rules, the same for every kind of job (common.outbox): due rows are published
once per attempt, a claimed attempt is published again only when its lease ends, a duplicate or
stale message claims nothing, a dead broker leaves rows due."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from celery import current_app
from django.utils import timezone

from access.principal import Principal
from approvals.models import Approval, ApprovalChatPost
from approvals.services import approval_decide
from channels_app.models import ChannelCleanup, ChannelMessage
from channels_app.services import channel_cleanup_create, channel_send
from common import outbox
from plugins_app.models import InstalledPlugin
from plugins_app.services import plugin_install_request
from schedules import services as schedule_services
from schedules.models import ScheduleRun
from templates_app.models import BundleImportJob, TemplateImportJob
from templates_app.services import bundle_import_job_create, template_import_job_create
from tests.approvals.conftest import make_approval
from tests.channels_app.helpers import telegram_channel
from tests.support.worker import CLOSED_BROKER_URL, CaptureTasks

pytestmark = pytest.mark.django_db

OPERATOR = Principal(kind="workspace_token", name="ops", role="operator")
MODELS = (
    ChannelMessage,
    ScheduleRun,
    InstalledPlugin,
    TemplateImportJob,
    BundleImportJob,
    Approval,
    ApprovalChatPost,
    ChannelCleanup,
)


@pytest.fixture
def one_of_each(workspace, settings):
    """A due row of every kind, as the services write them."""
    settings.PUBLIC_BASE_URL = ""
    channel = telegram_channel(workspace, chat_ids=["42"])
    ChannelMessage.objects.create(channel=channel, direction="inbound", status="received", text="in")
    channel_send(channel=channel, text="out")
    schedule = schedule_services.schedule_create(workspace=workspace, expression="0 9 * * *", prompt="p")
    schedule_services.schedule_run_now(schedule=schedule)
    plugin_install_request(workspace=workspace, source="local://web-search")
    template_import_job_create(source="local://researcher")
    bundle_import_job_create(payload={"format": "integrations-bundle"}, filename="b.json")
    approval = make_approval(workspace)
    make_approval(workspace, action="still pending: nothing to tell")
    approval_decide(approval=approval, decision="approve", actor=OPERATOR)
    telegram_channel(workspace, chat_ids=["7"], approvals=True)
    make_approval(workspace, action="posted to the channel that takes approvals")
    channel_cleanup_create(
        channel_id=uuid.uuid4(), platform="telegram", credential_key="k", sealed_config="x"
    )


def _published(sent) -> list[tuple[str, int]]:
    return sorted((name, args[1]) for name, args in sent)


EVERY_TASK = [
    "approvals.notify_agent",
    "approvals.sync_chat_post",
    "channels.process_inbound",
    "channels.run_cleanup",
    "channels.send_message",
    "plugins.install",
    "schedules.execute_run",
    "templates.run_bundle_import",
    "templates.run_template_import",
]


def test_every_kind_is_published_once_with_its_attempt(one_of_each):
    with CaptureTasks() as sent:
        assert outbox.relay_pass() == 9
        assert outbox.relay_pass() == 0  # published: leased
    assert _published(sent) == [(name, 1) for name in EVERY_TASK]
    for model in MODELS:
        rows = model.objects.exclude(relay_due_at=None)
        assert all(row.publish_attempt == 1 and row.published_at for row in rows), model


def test_a_lost_attempt_is_published_again_when_its_lease_ends(one_of_each, settings):
    with CaptureTasks():
        outbox.relay_pass()
    lease_end = timezone.now() + timedelta(seconds=settings.OUTBOX_LEASE_SECONDS)
    with CaptureTasks() as sent:
        assert outbox.relay_pass(now=lease_end - timedelta(seconds=1)) == 0
        assert outbox.relay_pass(now=lease_end + timedelta(seconds=1)) == 9
    assert _published(sent) == [(name, 2) for name in EVERY_TASK]


def test_only_the_first_message_of_the_latest_attempt_claims(one_of_each):
    with CaptureTasks():
        outbox.relay_pass()
    for kind in outbox.kinds():
        pk = kind.model.objects.filter(kind.active).values_list("pk", flat=True).get()
        assert outbox.outbox_claim(kind=kind, pk=pk, attempt=2) is None, "not published yet"
        assert outbox.outbox_claim(kind=kind, pk=pk, attempt=1) is not None
        assert outbox.outbox_claim(kind=kind, pk=pk, attempt=1) is None, "a duplicate message"
        assert outbox.outbox_claim(kind=kind, pk=pk, attempt=0) is None, "an older attempt"


def test_a_dead_broker_leaves_every_row_due(one_of_each):
    with current_app.connection_for_write(url=CLOSED_BROKER_URL) as dead, pytest.raises(outbox.BROKER_ERRORS):
        outbox.relay_pass(producer=current_app.amqp.Producer(dead))
    assert sum(outbox.pending_count().values()) == 9
    for model in MODELS:
        assert not model.objects.filter(publish_attempt__gt=0).exists(), model


def test_finished_rows_are_no_longer_due(one_of_each):
    ChannelMessage.objects.update(status="delivered")
    ScheduleRun.objects.update(status="success")
    assert outbox.pending_count()["channels.inbound"] == 0
    with CaptureTasks() as sent:
        assert outbox.relay_pass() == 6  # not the two messages nor the run
    assert not ChannelMessage.objects.exclude(relay_due_at=None).exists()
    assert not ScheduleRun.objects.exclude(relay_due_at=None).exists()
    assert "schedules.execute_run" not in {name for name, _ in sent}


def test_batches_stop_at_the_batch_size(workspace, settings):
    settings.PUBLIC_BASE_URL = ""
    channel = telegram_channel(workspace, chat_ids=["42"])
    for index in range(5):
        channel_send(channel=channel, text=f"m{index}")
    settings.OUTBOX_MESSAGE_ROWS = 1  # a message per row, to count them
    with CaptureTasks() as sent:
        assert outbox.relay_kind(outbox.kind_get("channels.outbound"), batch_size=4) == 4
        assert outbox.relay_kind(outbox.kind_get("channels.outbound"), batch_size=4) == 1
    assert len(sent) == 5


def test_jobs_that_wait_on_peers_travel_several_to_a_message(workspace, settings, broker):
    """45 due runs, 20 rows to a message: three messages of the kind's rows task
    (`schedules.execute_runs`, same arguments as `outbox.run_rows`) on the agents queue, carrying
    every run once with its attempt; a single due row keeps a message of its own."""
    settings.OUTBOX_MESSAGE_ROWS = 20
    schedule = schedule_services.schedule_create(workspace=workspace, expression="0 9 * * *", prompt="p")
    runs = {str(schedule_services.schedule_run_now(schedule=schedule).pk) for _ in range(45)}
    assert outbox.relay_pass() == 45
    messages = broker.messages("agents")
    assert [m["headers"]["task"] for m in messages] == ["schedules.execute_runs"] * 3
    assert [len(m["args"][1]) for m in messages] == [20, 20, 5]
    assert {m["args"][0] for m in messages} == {"schedules.run"}
    carried = [tuple(row) for m in messages for row in m["args"][1]]
    assert sorted(carried) == sorted((pk, 1) for pk in runs)

    broker.redis.delete("agents")
    alone = schedule_services.schedule_run_now(schedule=schedule)
    assert outbox.relay_pass() == 1
    assert [(m["headers"]["task"], m["args"]) for m in broker.messages("agents")] == [
        ("schedules.execute_run", [str(alone.pk), 1])
    ]


@pytest.mark.django_db(transaction=True)
def test_rows_of_one_message_run_side_by_side_once_each(fake_http, settings):
    """`outbox.run_rows` runs every row as its own task would, all at once (the agent holds each
    call until all of them have arrived); a duplicate of the message runs nothing again."""
    import threading

    from tests.support.a2a_fakes import message_result, rpc
    from tests.support.factories import make_workspace

    arrived = threading.Barrier(5, timeout=20)

    def agent(request):
        arrived.wait()  # five calls in flight at once, or the barrier breaks
        return rpc(request, result=message_result("1.0", "ok"))

    fake_http.route("POST", "/", agent)
    rows = []
    for i in range(5):
        workspace = make_workspace(f"side-{i}", url=fake_http.url + "/", a2a_protocol="1.0")
        schedule = schedule_services.schedule_create(workspace=workspace, expression="0 9 * * *", prompt="p")
        rows.append(schedule_services.schedule_run_now(schedule=schedule).pk)
    ScheduleRun.objects.update(publish_attempt=1)  # as the relay marks them
    message = [[str(pk), 1] for pk in rows]
    outbox.outbox_run_rows("schedules.run", message)
    outbox.outbox_run_rows("schedules.run", message)  # the broker delivered it twice
    assert set(ScheduleRun.objects.values_list("status", flat=True)) == {"success"}
    assert len(fake_http.requests) == 5


@pytest.mark.django_db(transaction=True)
def test_the_relay_publishes_only_rows_already_marked_and_committed(workspace, monkeypatch, broker):
    """A worker may take a message the instant it is published: by then its row carries the
    attempt, seen from any connection (no wait for the relay's transaction)."""
    import threading

    from django.db import connection

    schedule = schedule_services.schedule_create(workspace=workspace, expression="0 9 * * *", prompt="p")
    run = schedule_services.schedule_run_now(schedule=schedule)
    seen: list[int] = []
    real_publish = outbox._publish

    def publish_and_look(kind, rows, producer):
        def look() -> None:
            try:
                seen.append(ScheduleRun.objects.values_list("publish_attempt", flat=True).get(pk=run.pk))
            finally:
                connection.close()

        thread = threading.Thread(target=look)
        thread.start()
        thread.join(timeout=10)
        real_publish(kind, rows, producer)

    monkeypatch.setattr(outbox, "_publish", publish_and_look)
    assert outbox.relay_pass() == 1
    assert seen == [1]
    assert [m["args"] for m in broker.messages("agents")] == [[str(run.pk), 1]]
