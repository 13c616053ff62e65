"""Schedule runs in the admin console: operators see and filter them by workspace."""

from __future__ import annotations

import re

import pytest

from schedules import services
from schedules.models import ScheduleRun
from tests.support.factories import make_workspace

pytestmark = pytest.mark.django_db


def row_ids(html: str) -> list[str]:
    """Ids of the listed rows (action checkboxes, or change links on read-only lists)."""
    checked = re.findall(r'name="_selected_action" value="([0-9a-f-]{36})"', html)
    return checked or re.findall(r"/admin/\w+/\w+/([0-9a-f-]{36})/change/", html)


def test_runs_show_and_filter_by_workspace(client, django_user_model, django_assert_max_num_queries):
    client.force_login(django_user_model.objects.create_superuser("root", "root@example.test", "pw"))
    runs = {}
    for name in ("billing-bot", "release-bot"):
        workspace = make_workspace(name)
        schedule = services.schedule_create(
            workspace=workspace,
            expression="0 * * * *",
            prompt="hi",
            timezone="UTC",
            enabled=True,
            name="hourly",
        )
        runs[name] = [services.schedule_run_now(schedule=schedule) for _ in range(3)]

    response = client.get("/admin/schedules/schedulerun/", {"q": "release-bot"})
    assert response.status_code == 200
    html = response.content.decode()
    assert set(row_ids(html)) == {str(run.id) for run in runs["release-bot"]}
    assert "release-bot" in html

    workspace_id = runs["billing-bot"][0].schedule.workspace_id
    by_workspace = client.get(
        "/admin/schedules/schedulerun/", {"schedule__workspace__id__exact": str(workspace_id)}
    )
    assert set(row_ids(by_workspace.content.decode())) == {str(run.id) for run in runs["billing-bot"]}
    assert ScheduleRun.objects.count() == 6

    with django_assert_max_num_queries(12):  # the workspace column does not cost a query per row
        assert client.get("/admin/schedules/schedulerun/").status_code == 200


def test_runs_show_and_filter_by_a2a_version(client, django_user_model):
    client.force_login(django_user_model.objects.create_superuser("root", "root@example.test", "pw"))
    schedule = services.schedule_create(workspace=make_workspace("ws"), expression="0 * * * *", prompt="hi")
    old, new = (services.schedule_run_now(schedule=schedule) for _ in range(2))
    ScheduleRun.objects.filter(pk=old.pk).update(a2a_protocol="0.3")
    ScheduleRun.objects.filter(pk=new.pk).update(a2a_protocol="1.0")
    html = client.get("/admin/schedules/schedulerun/").content.decode()
    assert "column-a2a_protocol" in html
    only_old = client.get("/admin/schedules/schedulerun/", {"a2a_protocol": "0.3"}).content.decode()
    assert set(row_ids(only_old)) == {str(old.id)}
    page = client.get(f"/admin/schedules/schedulerun/{old.id}/change/").content.decode()
    assert "A2A protocol" in page
