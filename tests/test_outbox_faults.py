"""The outbox under faults, with real processes: a Celery worker, the relay (`manage.py
run_relay`), fake platforms and a slow local A2A agent on 127.0.0.1.

Every kind of job is a stored row the relay publishes; a job whose worker was killed, or whose
database connection was cut, is published again when its lease ends and completes once.
"""

from __future__ import annotations

import os
import signal
import time
from contextlib import ExitStack, suppress
from pathlib import Path

import pytest
from django.db import connection
from django.utils import timezone

from access.principal import Principal
from approvals.models import Approval, ApprovalStatus
from approvals.services import approval_decide
from channels_app.models import ChannelMessage
from plugins_app.models import InstalledPlugin, PluginStatus
from schedules import services as schedule_services
from schedules.models import RunStatus, ScheduleRun
from templates_app.models import BundleImportJob, JobStatus, TemplateImportJob, WorkspaceTemplate
from templates_app.services import bundle_import_job_create
from tests.approvals.conftest import make_approval
from tests.channels_app.helpers import TELEGRAM_TOKEN, post_telegram, telegram_channel, telegram_update
from tests.support.factories import bearer, make_admin_token, make_workspace
from tests.support.fake_http import FakeHttpServer, FakeResponse, json_response
from tests.support.worker import CLOSED_BROKER_URL, run_relay, run_worker, wait_for
from workspaces.echo_agent import start_echo_agent
from workspaces.models import AgentDelivery
from workspaces.selectors import workspace_busy_state

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

SEND_PATH = f"/bot{TELEGRAM_TOKEN}/sendMessage"
LEASE = 8  # seconds: longer than the A2A timeout below, far shorter than the default
OPERATOR = Principal(kind="workspace_token", name="ops", role="operator")


@pytest.fixture
def platform():
    with FakeHttpServer() as server:
        server.route("POST", SEND_PATH, json_response({"ok": True, "result": {"message_id": 1}}))
        yield server


@pytest.fixture
def slow_agent():
    agent = start_echo_agent(delay=3.0)
    yield agent
    agent.shutdown()
    agent.server_close()


@pytest.fixture
def env(platform, tmp_path, settings):
    settings.TELEGRAM_API_BASE_URL = platform.url
    settings.OUTBOX_LEASE_SECONDS = LEASE
    return {
        "TELEGRAM_API_BASE_URL": platform.url,
        "OUTBOX_LEASE_SECONDS": str(LEASE),
        "OUTBOX_RETRY_SECONDS": "0.5",
        "OUTBOX_POLL_SECONDS": "0.2",
        "A2A_TIMEOUT_SECONDS": "6",
        "SCHEDULE_BUSY_GRACE_SECONDS": "60",
        "PLUGIN_STORAGE_DIR": str(tmp_path / "plugin-storage"),
    }


def _texts_sent(platform: FakeHttpServer) -> list[str]:
    with platform.lock:
        return sorted(r.json()["text"] for r in platform.requests if r.path == SEND_PATH)


def _kill(process) -> None:
    os.kill(process.pid, signal.SIGKILL)
    process.wait(timeout=10)


def _all_answered(count: int):
    def check() -> bool:
        inbound = ChannelMessage.objects.filter(direction="inbound")
        outbound = ChannelMessage.objects.filter(direction="outbound")
        return (
            inbound.count() == count
            and not inbound.exclude(status="delivered").exists()
            and outbound.count() == count
            and not outbound.exclude(status="sent").exists()
        )

    return check


def test_channel_delivery_survives_a_killed_worker(client, env, platform, slow_agent):
    """SIGKILL of the worker while the agent thinks: the update is published again after its
    lease and answered exactly once; the log rows end delivered / sent."""
    workspace = make_workspace("kill-ws", url=slow_agent.url, max_concurrent_tasks=5)
    telegram_channel(workspace)
    with run_relay(env=env):
        with run_worker(env=env, pool="solo", relay=False) as worker:
            assert post_telegram(client, telegram_update(1, text="first")).status_code == 200
            wait_for(lambda: slow_agent.received, message="the agent got the first prompt")
            _kill(worker)  # mid-delivery: the agent is still thinking
        assert post_telegram(client, telegram_update(2, text="second")).status_code == 200
        with run_worker(env=env, relay=False):
            wait_for(_all_answered(2), timeout=LEASE + 30, message="both updates answered")
            time.sleep(1)  # room for a duplicate reply to show up
    assert _texts_sent(platform) == ["first", "second"]  # each answered exactly once
    inbound = {m.text: m for m in ChannelMessage.objects.filter(direction="inbound")}
    received = [m["messageId"] for m in slow_agent.received]
    # The killed attempt and its retry carried the same messageId.
    assert sorted(set(received)) == sorted(str(m.pk) for m in inbound.values())
    # Published again after the lease (more than once if no worker took it meanwhile), and run
    # by a later attempt than the killed one.
    assert inbound["first"].run_attempt >= 2


def test_channel_delivery_survives_terminated_database_connections(client, env, platform, slow_agent):
    """Every PostgreSQL connection of the worker and the relay is terminated while the agent
    thinks: every accepted update is still answered exactly once."""
    workspace = make_workspace("pg-ws", url=slow_agent.url, max_concurrent_tasks=5)
    telegram_channel(workspace)
    with run_worker(env=env, concurrency=2):
        for update_id in (1, 2):
            assert post_telegram(client, telegram_update(update_id, text=f"u{update_id}")).status_code == 200
        wait_for(lambda: len(slow_agent.received) >= 2, message="both prompts at the agent")
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
            assert cursor.fetchone()[0] >= 2  # at least the worker's and the relay's
        assert post_telegram(client, telegram_update(3, text="u3")).status_code == 200
        wait_for(_all_answered(3), timeout=LEASE + 30, message="all updates answered")
        time.sleep(1)
    assert _texts_sent(platform) == ["u1", "u2", "u3"]


def test_killed_run_is_delivered_again_and_its_marker_stops_counting_after_the_lease(env, slow_agent):
    """A worker killed mid-run: the run is not recorded as lost but delivered again with the same
    messageId once its lease ends; the dead worker's in-flight marker no longer makes the
    workspace busy then, so a run queued meanwhile is delivered, not skipped."""
    workspace = make_workspace("run-ws", url=slow_agent.url, max_concurrent_tasks=1)
    schedule = schedule_services.schedule_create(workspace=workspace, expression="0 9 * * *", prompt="hi")
    with run_relay(env=env):
        with run_worker(env=env, pool="solo", relay=False) as worker:
            first = schedule_services.schedule_run_now(schedule=schedule)
            wait_for(lambda: slow_agent.received, message="the agent got the prompt")
            _kill(worker)
        marker = AgentDelivery.objects.get()  # left behind by the killed worker
        assert workspace_busy_state(workspace=workspace).busy
        later = marker.started_at + timezone.timedelta(seconds=LEASE + 1)
        assert not workspace_busy_state(workspace=workspace, now=later).busy
        second = schedule_services.schedule_run_now(schedule=schedule)
        with run_worker(env=env, relay=False):
            wait_for(
                lambda: set(ScheduleRun.objects.values_list("status", flat=True)) == {RunStatus.SUCCESS},
                timeout=LEASE + 40,
                message="both runs succeeded",
            )
    received = [m["messageId"] for m in slow_agent.received]
    assert received.count(str(second.pk)) == 1
    assert 1 <= received.count(str(first.pk)) <= 2  # the retry repeats the same messageId
    first.refresh_from_db()
    assert first.error_detail is None and first.response_excerpt == "hi"


def _request_every_kind(client, workspace, agent_ws) -> None:
    """One request per kind of job, answered as documented, whatever the broker's state."""
    admin = bearer(make_admin_token("root"))
    channel = telegram_channel(agent_ws)
    assert post_telegram(client, telegram_update(10, text="in")).status_code == 200
    send = client.post(
        f"/workspaces/{agent_ws.pk}/channels/{channel.pk}/send",
        {"text": "out", "chat_id": "42"},
        content_type="application/json",
        **{"HTTP_AUTHORIZATION": admin["HTTP_AUTHORIZATION"]},
    )
    assert send.status_code == 202, send.content
    schedule = schedule_services.schedule_create(workspace=agent_ws, expression="0 9 * * *", prompt="run")
    run = client.post(
        f"/workspaces/{agent_ws.pk}/schedules/{schedule.pk}/run", {}, content_type="application/json", **admin
    )
    assert run.status_code == 202, run.content
    plugin = client.post(
        f"/workspaces/{workspace.pk}/plugins",
        {"source": "local://web-search"},
        content_type="application/json",
        **admin,
    )
    assert plugin.status_code == 202, plugin.content
    template = client.post(
        "/templates/import",
        {"source": "local://researcher", "replace": True},
        content_type="application/json",
        **admin,
    )
    assert template.status_code == 202, template.content
    bundle_import_job_create(
        payload={"format": "integrations-bundle", "version": 1, "workspace": {"name": "bundled"}},
        filename="b.json",
    )
    approval = make_approval(agent_ws)
    decided = client.post(
        f"/workspaces/{agent_ws.pk}/approvals/{approval.pk}/decide",
        {"decision": "approve"},
        content_type="application/json",
        **admin,
    )
    assert decided.status_code == 200, decided.content


def _every_kind_done() -> bool:
    return (
        not ChannelMessage.objects.exclude(status__in=("delivered", "sent")).exists()
        and ChannelMessage.objects.count() == 3  # the update, its reply, the API's send
        and ScheduleRun.objects.filter(status=RunStatus.SUCCESS).count() == 1
        and InstalledPlugin.objects.filter(status=PluginStatus.INSTALLED).count() == 1
        and TemplateImportJob.objects.filter(status=JobStatus.SUCCEEDED).count() == 1
        and BundleImportJob.objects.filter(status=JobStatus.SUCCEEDED).count() == 1
        and Approval.objects.filter(status=ApprovalStatus.APPROVED, notified_at__isnull=False).count() == 1
    )


def test_broker_down_at_request_time_every_kind_completes_once_it_is_back(client, env, platform, echo_agent):
    """The relay cannot reach the broker while the requests come in: each request answers as
    documented, nothing is published; once the relay reaches the broker every job is published
    and completes exactly once."""
    workspace = make_workspace("plugins-ws")
    agent_ws = make_workspace("agent-ws", url=echo_agent.url, max_concurrent_tasks=5)
    with run_worker(env=env, relay=False):
        with run_relay(env={**env, "TEST_BROKER_URL": CLOSED_BROKER_URL}):
            _request_every_kind(client, workspace, agent_ws)
            time.sleep(2)  # several relay passes against the dead broker
            assert not ChannelMessage.objects.filter(publish_attempt__gt=0).exists()
            assert not ScheduleRun.objects.filter(publish_attempt__gt=0).exists()
            assert not InstalledPlugin.objects.filter(publish_attempt__gt=0).exists()
            assert not TemplateImportJob.objects.filter(publish_attempt__gt=0).exists()
            assert not BundleImportJob.objects.filter(publish_attempt__gt=0).exists()
            assert not Approval.objects.filter(publish_attempt__gt=0).exists()
        with run_relay(env=env):
            wait_for(_every_kind_done, timeout=60, message="every job done")
            time.sleep(1)
    assert _texts_sent(platform) == ["in", "out"]
    assert len(echo_agent.received) == 3  # the update, the run, the approval's notice: once each
    for model in (ChannelMessage, ScheduleRun, InstalledPlugin, TemplateImportJob, BundleImportJob, Approval):
        assert set(model.objects.values_list("publish_attempt", flat=True)) == {1}, model


def test_two_relays_publish_each_job_once(client, env, platform, echo_agent):
    """Two relays side by side (SKIP LOCKED): every job is published once per attempt."""
    agent_ws = make_workspace("agent-ws", url=echo_agent.url, max_concurrent_tasks=50)
    telegram_channel(agent_ws)
    schedule = schedule_services.schedule_create(workspace=agent_ws, expression="0 9 * * *", prompt="run")
    with ExitStack() as stack:
        stack.enter_context(run_relay(env=env))
        stack.enter_context(run_relay(env=env))
        stack.enter_context(run_worker(env=env, concurrency=4, relay=False))
        for update_id in range(20):
            assert (
                post_telegram(client, telegram_update(100 + update_id, text=f"m{update_id:02}")).status_code
                == 200
            )
        runs = [schedule_services.schedule_run_now(schedule=schedule) for _ in range(10)]
        approvals = [make_approval(agent_ws, action=f"a{i}") for i in range(5)]
        for approval in approvals:
            approval_decide(approval=approval, decision="approve", actor=OPERATOR)
        wait_for(_all_answered(20), timeout=60, message="all updates answered")
        wait_for(
            lambda: (
                ScheduleRun.objects.filter(status=RunStatus.SUCCESS).count() == 10
                and Approval.objects.filter(notified_at__isnull=False).count() == 5
            ),
            timeout=60,
            message="runs and notices done",
        )
        time.sleep(1)
    assert _texts_sent(platform) == [f"m{i:02}" for i in range(20)]
    received = [m["messageId"] for m in echo_agent.received]
    assert len(received) == len(set(received)) == 20 + 10 + 5
    assert {str(run.pk) for run in runs} <= set(received)
    for model in (ChannelMessage, ScheduleRun, Approval):
        assert set(model.objects.values_list("publish_attempt", flat=True)) == {1}, model


def test_killed_install_and_import_are_published_again_and_complete_once(client, env, tmp_path, settings):
    """SIGKILL of the worker while a plugin install and a template import fetch from a slow
    GitHub: both jobs are published again when their lease ends and complete once."""
    from tests.plugins_app.conftest import SHA, FakeGithub, archive_of, plugin_files

    template_files = {"template.yaml": b"name: Slow\nruntime: autogen\ntier: 1\n"}
    fetched: list[str] = []
    with FakeHttpServer() as server:
        github = FakeGithub(server)
        github.repo("acme", "tools", archive_of(plugin_files()))
        github.repo("acme", "slow-template", archive_of(template_files, top="acme-slow-template-0123"))
        for repo, archive in (("tools", plugin_files()), ("slow-template", template_files)):
            payload = archive_of(archive, top=f"acme-{repo}-0123")

            def slow(request, payload=payload):
                fetched.append(request.path)
                time.sleep(3)
                return FakeResponse(200, payload)

            server.route("GET", f"/codeload/acme/{repo}/tar.gz/{SHA}", slow)
        settings.GITHUB_API_BASE_URL = github.api
        settings.GITHUB_ARCHIVE_BASE_URL = github.archive_base
        job_env = {**env, "GITHUB_API_BASE_URL": github.api, "GITHUB_ARCHIVE_BASE_URL": github.archive_base}
        workspace = make_workspace("install-ws")
        admin = bearer(make_admin_token("root"))
        with run_relay(env=job_env):
            with run_worker(env=job_env, concurrency=2, relay=False) as worker:
                install = client.post(
                    f"/workspaces/{workspace.pk}/plugins",
                    {"source": "github://acme/tools"},
                    content_type="application/json",
                    **admin,
                )
                assert install.status_code == 202, install.content
                job = client.post(
                    "/templates/import",
                    {"source": "github://acme/slow-template"},
                    content_type="application/json",
                    **admin,
                )
                assert job.status_code == 202, job.content
                wait_for(lambda: len(fetched) >= 2, timeout=60, message="both fetches under way")
                subprocess_kill_tree(worker)
            with run_worker(env=job_env, relay=False):
                wait_for(
                    lambda: (
                        InstalledPlugin.objects.filter(status=PluginStatus.INSTALLED).exists()
                        and TemplateImportJob.objects.filter(status=JobStatus.SUCCEEDED).exists()
                    ),
                    timeout=LEASE + 60,
                    message="install and import done",
                )
    plugin = InstalledPlugin.objects.get()
    template_job = TemplateImportJob.objects.get()
    assert plugin.run_attempt >= 2 and template_job.run_attempt >= 2  # run again after the kill
    assert (plugin.error, template_job.error) == ("", "")
    assert WorkspaceTemplate.objects.filter(slug="slow-template").count() == 1


def subprocess_kill_tree(process) -> None:
    """SIGKILL a prefork worker and its pool children (a child would otherwise finish its task)."""
    children = Path(f"/proc/{process.pid}/task/{process.pid}/children").read_text().split()
    for pid in [process.pid, *map(int, children)]:
        with suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    process.wait(timeout=10)
