"""End to end: live server, a real Celery worker process, a real local A2A agent.

The schedule is made due by moving `next_run_at` into the past (instead of waiting a minute), and
the dispatcher is sent through the broker exactly as Celery Beat sends it.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
import requests
from django.utils import timezone

from integrations_project.celery import app
from schedules.models import Schedule
from tests.support.factories import make_workspace, make_workspace_token
from tests.support.fake_http import free_port
from tests.support.worker import run_worker, wait_for
from workspaces.services import workspace_heartbeat

pytestmark = pytest.mark.e2e


class Client:
    def __init__(self, base: str, workspace, token: str) -> None:
        self.base = f"{base}/workspaces/{workspace.id}/schedules"
        self.headers = {"Authorization": f"Bearer {token}"}

    def post(self, path: str = "", body: dict | None = None) -> requests.Response:
        return requests.post(self.base + path, json=body or {}, headers=self.headers, timeout=10)

    def get(self, path: str = "") -> requests.Response:
        return requests.get(self.base + path, headers=self.headers, timeout=10)


def _setup(live_server, url: str, **workspace_kwargs):
    workspace = make_workspace("e2e", url=url, **workspace_kwargs)
    return workspace, Client(live_server.url, workspace, make_workspace_token(workspace))


def _create_due(client: Client, prompt: str) -> str:
    created = client.post("", {"expression": "* * * * *", "prompt": prompt, "name": "every minute"})
    assert created.status_code == 201, created.text
    schedule_id = created.json()["id"]
    Schedule.objects.filter(pk=schedule_id).update(next_run_at=timezone.now() - timedelta(seconds=1))
    return schedule_id


def _finished_history(client: Client, schedule_id: str, timeout: float = 30.0) -> list[dict]:
    def finished():
        runs = client.get(f"/{schedule_id}/history").json()
        return runs if runs and runs[0]["status"] not in ("queued", "running") else None

    return wait_for(finished, timeout=timeout, message="a finished run in the history")


def test_cron_run_reaches_the_agent_and_history_shows_success(live_server, celery_worker, echo_agent):
    _, client = _setup(live_server, echo_agent.url)
    schedule_id = _create_due(client, "What is new today?")
    app.send_task("schedules.dispatch_due")  # what Beat sends every SCHEDULER_TICK_SECONDS

    wait_for(lambda: echo_agent.received, timeout=30, message="the agent to receive the prompt")
    runs = _finished_history(client, schedule_id)
    assert len(runs) == 1
    assert runs[0]["status"] == "success"
    assert runs[0]["trigger"] == "cron"
    assert runs[0]["response_excerpt"] == "What is new today?"
    assert runs[0]["a2a_protocol"] == "1.0"  # auto: the echo agent's card lists 1.0 first
    assert echo_agent.versions == ["1.0"]
    assert echo_agent.received[0]["parts"][0]["text"] == "What is new today?"
    assert echo_agent.received[0]["messageId"] == runs[0]["id"]
    schedule = client.get(f"/{schedule_id}").json()
    assert schedule["last_status"] == "success"
    assert schedule["run_count"] == 1
    assert schedule["next_run_at"] > runs[0]["scheduled_for"]
    assert len(echo_agent.received) == 1


def test_agent_down_records_error_with_reason(live_server, celery_worker):
    _, client = _setup(live_server, f"http://127.0.0.1:{free_port()}/")
    schedule_id = _create_due(client, "anyone there?")
    app.send_task("schedules.dispatch_due")
    runs = _finished_history(client, schedule_id)
    assert runs[0]["status"] == "error"
    assert runs[0]["error_detail"].startswith("agent unreachable")
    schedule = client.get(f"/{schedule_id}").json()
    assert schedule["last_status"] == "error"
    assert schedule["last_error"] == runs[0]["error_detail"]


def test_run_now_records_a_manual_run(live_server, celery_worker, echo_agent):
    _, client = _setup(live_server, echo_agent.url)
    created = client.post("", {"expression": "0 0 1 1 *", "prompt": "now please", "enabled": False})
    schedule_id = created.json()["id"]
    accepted = client.post(f"/{schedule_id}/run")
    assert accepted.status_code == 202
    assert accepted.json()["trigger"] == "manual"
    runs = _finished_history(client, schedule_id)
    assert (runs[0]["status"], runs[0]["trigger"], runs[0]["id"]) == (
        "success",
        "manual",
        accepted.json()["id"],
    )
    assert echo_agent.received[0]["parts"][0]["text"] == "now please"


def test_busy_workspace_is_skipped_after_the_grace(live_server, transactional_db, echo_agent):
    workspace, client = _setup(live_server, echo_agent.url)
    workspace_heartbeat(workspace=workspace, active_tasks=1)
    with run_worker(env={"SCHEDULE_BUSY_GRACE_SECONDS": "2"}):
        schedule_id = _create_due(client, "busy?")
        app.send_task("schedules.dispatch_due")
        runs = _finished_history(client, schedule_id)
    assert runs[0]["status"] == "skipped"
    assert runs[0]["error_detail"] == "workspace busy: 1/1 tasks active"
    assert echo_agent.received == []
    assert client.get(f"/{schedule_id}").json()["last_status"] == "skipped"


def test_busy_workspace_runs_when_capacity_frees_within_the_grace(live_server, transactional_db, echo_agent):
    workspace, client = _setup(live_server, echo_agent.url)
    workspace_heartbeat(workspace=workspace, active_tasks=1)
    with run_worker(env={"SCHEDULE_BUSY_GRACE_SECONDS": "60"}):
        schedule_id = _create_due(client, "when you can")
        app.send_task("schedules.dispatch_due")
        wait_for(
            lambda: Schedule.objects.get(pk=schedule_id).runs.filter(busy_since__isnull=False).exists(),
            timeout=20,
            message="the run to be deferred",
        )
        workspace_heartbeat(workspace=workspace, active_tasks=0)
        runs = _finished_history(client, schedule_id)
    assert runs[0]["status"] == "success"
    assert len(echo_agent.received) == 1
