"""Deleting a workspace in the console takes its read-only history with it.

Run history and message logs cannot be deleted on their own pages, but the workspace's delete
page checks the delete permission of every related row: they must not block it.
"""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model

from channels_app.models import ChannelMessage
from channels_app.services import channel_create
from schedules.models import ScheduleRun
from schedules.services import schedule_create, schedule_run_now
from tests.support.factories import make_workspace
from workspaces.models import Workspace

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff(client):
    client.force_login(get_user_model().objects.create_superuser("ops", "ops@example.test", "pw"))
    return client


def test_workspace_with_history_can_be_deleted_in_the_console(staff):
    workspace = make_workspace("with-history")
    schedule = schedule_create(workspace=workspace, expression="0 9 * * *", prompt="hi")
    schedule_run_now(schedule=schedule)
    channel = channel_create(
        workspace=workspace,
        platform="telegram",
        config={"bot_token": "123456:ABCdefGHIjklMNOpqrSTUvwxYZ0123456789"},
        enabled=False,
    )
    ChannelMessage.objects.create(channel=channel, direction="inbound", status="received", text="x")
    assert ScheduleRun.objects.exists() and ChannelMessage.objects.exists()

    confirm = staff.get(f"/admin/workspaces/workspace/{workspace.pk}/delete/")
    assert confirm.status_code == 200
    assert "permission to delete" not in confirm.content.decode()
    response = staff.post(f"/admin/workspaces/workspace/{workspace.pk}/delete/", {"post": "yes"})
    assert response.status_code == 302
    assert not Workspace.objects.filter(pk=workspace.pk).exists()
    assert not ScheduleRun.objects.exists() and not ChannelMessage.objects.exists()


def test_history_pages_stay_read_only(staff):
    workspace = make_workspace("w")
    schedule = schedule_create(workspace=workspace, expression="0 9 * * *", prompt="hi")
    run = schedule_run_now(schedule=schedule)
    assert staff.get("/admin/schedules/schedulerun/add/").status_code == 403
    assert staff.post(f"/admin/schedules/schedulerun/{run.pk}/delete/", {"post": "yes"}).status_code == 403
    assert ScheduleRun.objects.filter(pk=run.pk).exists()
