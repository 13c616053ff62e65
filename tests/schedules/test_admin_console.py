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


def _console(client, django_user_model):
    client.force_login(django_user_model.objects.create_superuser("op", "op@example.test", "pw"))
    return client


def _schedule(workspace_name: str, name: str = "hourly"):
    return services.schedule_create(
        workspace=make_workspace(workspace_name), expression="0 * * * *", prompt="hi", name=name
    )


def test_schedule_page_links_to_its_runs_and_shows_the_last_ten(client, django_user_model):
    console = _console(client, django_user_model)
    schedule = _schedule("pager")
    runs = [services.schedule_run_now(schedule=schedule) for _ in range(11)]
    ScheduleRun.objects.filter(pk=runs[-1].pk).update(status="error", error_detail="agent said no")
    html = console.get(f"/admin/schedules/schedule/{schedule.pk}/change/").content.decode()
    shown = set(re.findall(r"/admin/schedules/schedulerun/([0-9a-f-]{36})/change/", html))
    newest = ScheduleRun.objects.filter(schedule=schedule).order_by("-created_at")[:10]
    assert shown == {str(run.pk) for run in newest}  # the last 10, not the 11th
    assert "agent said no" in html
    runs_url = f"/admin/schedules/schedulerun/?schedule={schedule.pk}"
    assert html.count(f'href="{runs_url}"') == 2  # the "Runs" button and the link under the table
    # Django's "History" (the console's edit log) is not offered as a history of runs.
    assert ">History<" not in html and ">Change log<" in html and ">Runs<" in html

    empty = _schedule("quiet")
    html = console.get(f"/admin/schedules/schedule/{empty.pk}/change/").content.decode()
    assert "No runs yet." in html
    assert console.get("/admin/schedules/schedule/add/").status_code == 200


def test_runs_filter_by_schedule_and_status(client, django_user_model, django_assert_max_num_queries):
    console = _console(client, django_user_model)
    first = _schedule("alpha", "one")
    second = services.schedule_create(
        workspace=first.workspace, expression="0 * * * *", prompt="x", name="two"
    )
    mine = [services.schedule_run_now(schedule=first) for _ in range(3)]
    others = [services.schedule_run_now(schedule=second) for _ in range(2)]
    ScheduleRun.objects.filter(pk=mine[0].pk).update(status="error")

    by_schedule = console.get("/admin/schedules/schedulerun/", {"schedule": str(first.pk)}).content.decode()
    assert set(row_ids(by_schedule)) == {str(run.pk) for run in mine}
    both = console.get("/admin/schedules/schedulerun/", {"schedule": str(first.pk), "status__exact": "error"})
    assert set(row_ids(both.content.decode())) == {str(mine[0].pk)}
    assert set(
        row_ids(console.get("/admin/schedules/schedulerun/", {"schedule": str(second.pk)}).content.decode())
    ) == {str(run.pk) for run in others}
    # A malformed id lists nothing rather than failing.
    bad = console.get("/admin/schedules/schedulerun/", {"schedule": "nope"})
    assert bad.status_code == 200 and row_ids(bad.content.decode()) == []
    # With a workspace chosen, its schedules are the filter's choices.
    html = console.get(
        "/admin/schedules/schedulerun/", {"schedule__workspace__id__exact": str(first.workspace_id)}
    ).content.decode()
    assert "alpha / one" in html and "alpha / two" in html
    with django_assert_max_num_queries(14):
        assert console.get("/admin/schedules/schedulerun/", {"schedule": str(first.pk)}).status_code == 200


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
