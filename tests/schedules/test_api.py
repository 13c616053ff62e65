"""Schedule endpoints (SPEC §4): shapes, validation edges, errors, scoping, query counts."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from schedules.models import RunStatus, RunTrigger, Schedule, ScheduleRun, ScheduleSource
from tests.support.factories import bearer, make_workspace, make_workspace_token

pytestmark = pytest.mark.django_db

SCHEDULE_FIELDS = {
    "id",
    "workspace_id",
    "name",
    "expression",
    "timezone",
    "prompt",
    "enabled",
    "deliver_to",
    "source",
    "description",
    "next_run_at",
    "last_run_at",
    "last_status",
    "last_error",
    "run_count",
    "created_at",
    "updated_at",
}
RUN_FIELDS = {
    "id",
    "schedule_id",
    "trigger",
    "status",
    "scheduled_for",
    "started_at",
    "finished_at",
    "duration_ms",
    "error_detail",
    "response_excerpt",
    "a2a_protocol",
}


def url(workspace, *rest: str) -> str:
    return "/".join([f"/workspaces/{workspace.id}/schedules", *rest])


def create(client, workspace, **body):
    body.setdefault("expression", "0 9 * * MON-FRI")
    body.setdefault("prompt", "Write the daily report.")
    return client.post(url(workspace), body, format="json")


def test_create_with_defaults(as_agent, workspace):
    response = create(as_agent, workspace)
    assert response.status_code == 201, response.json()
    body = response.json()
    assert set(body) == SCHEDULE_FIELDS
    assert body["workspace_id"] == str(workspace.id)
    assert body["timezone"] == "UTC"
    assert body["enabled"] is True
    assert body["source"] == "runtime"
    assert body["name"] == ""
    assert body["description"] == "At 09:00 on Monday through Friday"
    assert body["last_status"] is None
    assert body["run_count"] == 0
    next_run = datetime.fromisoformat(body["next_run_at"].replace("Z", "+00:00"))
    assert body["next_run_at"].endswith("Z")
    assert next_run > timezone.now()
    assert next_run.hour == 9 and next_run.minute == 0 and next_run.weekday() < 5


def test_create_in_a_time_zone_stores_utc(as_agent, workspace):
    response = create(as_agent, workspace, expression="30 8 * * *", timezone="Asia/Tokyo", name="tokyo")
    assert response.status_code == 201, response.json()
    next_run = datetime.fromisoformat(response.json()["next_run_at"].replace("Z", "+00:00"))
    assert (next_run.hour, next_run.minute) == (23, 30)  # 08:30 JST is 23:30 UTC the day before


def test_create_disabled_has_no_next_run(as_agent, workspace):
    response = create(as_agent, workspace, enabled=False)
    assert response.status_code == 201
    assert response.json()["next_run_at"] is None


def test_trailing_slash_and_get(as_agent, workspace):
    created = as_agent.post(url(workspace) + "/", {"expression": "* * * * *", "prompt": "x"}, format="json")
    assert created.status_code == 201
    schedule_id = created.json()["id"]
    for path in (url(workspace, schedule_id), url(workspace, schedule_id) + "/"):
        response = as_agent.get(path)
        assert response.status_code == 200
        assert response.json()["id"] == schedule_id


@pytest.mark.parametrize(
    "expression",
    [
        "0 0 * * * *",  # 6 fields (seconds)
        "* * * *",  # 4 fields
        "@every 5m",
        "@daily",
        "@hourly",
        "0 0 30 2 *",  # never fires
        "0 0 31 4,6,9,11 *",  # never fires
        "60 * * * *",
        "* 24 * * *",
        "* * 0 * *",
        "* * * 13 *",
        "* * * * 8",
        "*/0 * * * *",
        "5-1 * * * *",
        "0 0 L * *",  # cronsim extension, not cron
        "0 0 * * 5#2",  # cronsim extension, not cron
        "0 0 * * MON-FRX",
        "0 0 * MON *",  # a weekday name in the month field
        "0 0 * * JAN",  # a month name in the weekday field
        "",
        "   ",
        "a b c d e",
        "0 0 * * *" + " " * 200,
    ],
)
def test_invalid_expressions(as_agent, workspace, expression):
    response = create(as_agent, workspace, expression=expression)
    assert response.status_code == 400, (expression, response.json())
    body = response.json()
    assert body["code"] == "invalid_expression"
    assert "expression" in body["details"]


def test_never_firing_expression_says_so(as_agent, workspace):
    response = create(as_agent, workspace, expression="0 0 30 2 *")
    assert response.status_code == 400
    assert "never fires" in response.json()["details"]["expression"][0]


@pytest.mark.parametrize(
    ("expression", "description"),
    [
        ("0 9 * * MON", "At 09:00 on Monday"),
        ("0 9 * * mon-fri", "At 09:00 on Monday through Friday"),
        ("0 0 1 JAN *", "At 00:00 on January 1"),
        ("15 10 * jan,jul *", None),
        ("*/15 9-17 * * 1-5", None),
        ("0 0 29 2 *", None),  # leap days only: fires, rarely
        ("5/15 * * * *", None),
        ("* * * * 7", None),  # 7 is Sunday too
    ],
)
def test_valid_expressions_with_names_ranges_steps_lists(as_agent, workspace, expression, description):
    response = create(as_agent, workspace, expression=expression)
    assert response.status_code == 201, (expression, response.json())
    if description:
        assert response.json()["description"] == description


def test_expression_whitespace_is_normalized(as_agent, workspace):
    response = create(as_agent, workspace, expression="  0   9 *  * *  ")
    assert response.status_code == 201
    assert response.json()["expression"] == "0 9 * * *"


@pytest.mark.parametrize("tz", ["Mars/Olympus", "utc+2", "/etc/localtime", "localtime", "", "../UTC"])
def test_invalid_timezone(as_agent, workspace, tz):
    response = create(as_agent, workspace, timezone=tz)
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_timezone"
    assert "timezone" in response.json()["details"]


def test_prompt_length_edges(as_agent, workspace):
    ok = create(as_agent, workspace, prompt="p" * 32_000)
    assert ok.status_code == 201
    assert len(ok.json()["prompt"]) == 32_000
    too_long = create(as_agent, workspace, prompt="p" * 32_001)
    assert too_long.status_code == 400
    assert too_long.json()["code"] == "invalid_request"
    assert "prompt" in too_long.json()["details"]


def test_prompt_carriage_returns_are_stripped_before_counting(as_agent, workspace):
    response = create(as_agent, workspace, prompt="a\r\n" * 16_000)  # 48,000 chars, 32,000 without \r
    assert response.status_code == 201, response.json()
    assert response.json()["prompt"] == "a\n" * 16_000


@pytest.mark.parametrize("prompt", ["", "\r", "  \n "])
def test_empty_prompt_is_refused(as_agent, workspace, prompt):
    response = create(as_agent, workspace, prompt=prompt)
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_request"


def test_missing_fields(as_agent, workspace):
    response = as_agent.post(url(workspace), {}, format="json")
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_request"
    assert set(response.json()["details"]) == {"expression", "prompt"}


@pytest.mark.parametrize("field", ["source", "id", "workspace_id", "next_run_at", "run_count", "description"])
def test_read_only_fields_are_refused(as_agent, workspace, field):
    response = create(as_agent, workspace, **{field: "template"})
    assert response.status_code == 400
    assert response.json()["code"] == "unknown_field"


def test_duplicate_name_conflicts(as_agent, workspace, other_workspace):
    assert create(as_agent, workspace, name="daily").status_code == 201
    again = create(as_agent, workspace, name="daily")
    assert again.status_code == 409
    assert again.json()["code"] == "conflict"
    # empty names never clash; the same name in another workspace is fine
    assert create(as_agent, workspace).status_code == 201
    assert create(as_agent, workspace).status_code == 201
    from schedules.services import schedule_create

    schedule_create(workspace=other_workspace, expression="* * * * *", prompt="x", name="daily")


def test_list_oldest_first_with_filters(as_agent, workspace, make_schedule):
    first = make_schedule(name="a")
    second = make_schedule(name="b", enabled=False)
    third = make_schedule(name="c", source=ScheduleSource.TEMPLATE)
    response = as_agent.get(url(workspace))
    assert response.status_code == 200
    assert [s["id"] for s in response.json()] == [str(first.id), str(second.id), str(third.id)]
    assert [s["name"] for s in as_agent.get(url(workspace) + "?enabled=false").json()] == ["b"]
    assert [s["name"] for s in as_agent.get(url(workspace) + "?enabled=true").json()] == ["a", "c"]
    assert [s["name"] for s in as_agent.get(url(workspace) + "?source=template").json()] == ["c"]
    assert [s["name"] for s in as_agent.get(url(workspace) + "?source=runtime").json()] == ["a", "b"]
    for bad in ("enabled=maybe", "source=cron", "limit=0", "limit=201"):
        response = as_agent.get(url(workspace) + "?" + bad)
        assert response.status_code == 400, bad
        assert response.json()["code"] == "invalid_parameter"


def test_list_pagination(as_agent, workspace, make_schedule):
    for _ in range(3):
        make_schedule()
    page = as_agent.get(url(workspace) + "?limit=2")
    assert len(page.json()) == 2
    assert 'rel="next"' in page["Link"]


def test_list_and_history_limit_edges(as_agent, workspace, make_schedule):
    schedule = make_schedule()
    make_schedule()
    now = timezone.now()
    for minutes in (1, 2):
        ScheduleRun.objects.create(schedule=schedule, scheduled_for=now - timedelta(minutes=minutes))
    for path in (url(workspace), url(workspace, str(schedule.id), "history")):
        one = as_agent.get(path + "?limit=1")
        assert (one.status_code, len(one.json())) == (200, 1), path
        assert 'rel="next"' in one["Link"]
        full = as_agent.get(path + "?limit=200")
        assert (full.status_code, len(full.json())) == (200, 2), path
        assert "Link" not in full
        for bad in ("limit=0", "limit=201", "limit=abc"):
            response = as_agent.get(f"{path}?{bad}")
            assert (response.status_code, response.json()["code"]) == (400, "invalid_parameter"), (path, bad)


def test_name_length_edges(as_agent, workspace):
    assert create(as_agent, workspace, name="n" * 200).status_code == 201
    response = create(as_agent, workspace, name="m" * 201)
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_request"
    assert "name" in response.json()["details"]


def test_body_size_edge_is_1_mib(as_agent, workspace):
    """Up to 1 MiB is parsed (here: refused for its prompt); above it, 413 before parsing."""
    path = url(workspace)

    def body_of(size: int) -> bytes:
        head = b'{"expression": "* * * * *", "prompt": "'
        tail = b'"}'
        return head + b"x" * (size - len(head) - len(tail)) + tail

    at_limit = as_agent.generic("POST", path, body_of(1024 * 1024), content_type="application/json")
    assert at_limit.status_code == 400
    assert at_limit.json()["code"] == "invalid_request"
    over = as_agent.generic("POST", path, body_of(1024 * 1024 + 1), content_type="application/json")
    assert over.status_code == 413
    assert over.json()["code"] == "payload_too_large"
    assert not Schedule.objects.exists()


def test_list_and_history_query_counts_are_constant(
    as_agent, workspace, make_schedule, django_assert_num_queries
):
    schedule = make_schedule()
    ScheduleRun.objects.create(schedule=schedule, scheduled_for=timezone.now())
    assert as_agent.get(url(workspace)).status_code == 200  # warm-up: token last_used_at bookkeeping

    def count(path: str) -> int:
        with CaptureQueriesContext(connection) as ctx:
            assert as_agent.get(path).status_code == 200
        return len(ctx.captured_queries)

    list_small = count(url(workspace))
    history_small = count(url(workspace, str(schedule.id), "history"))
    for _ in range(10):
        make_schedule()
    ScheduleRun.objects.bulk_create(
        [
            ScheduleRun(schedule=schedule, scheduled_for=timezone.now() - timedelta(minutes=i + 1))
            for i in range(10)
        ]
    )
    with django_assert_num_queries(list_small):
        assert len(as_agent.get(url(workspace)).json()) == 11
    with django_assert_num_queries(history_small):
        assert len(as_agent.get(url(workspace, str(schedule.id), "history")).json()) == 11


def test_patch_recomputes_next_run_on_timing_changes(as_agent, workspace, make_schedule):
    schedule = make_schedule(expression="0 9 * * *")
    path = url(workspace, str(schedule.id))
    response = as_agent.patch(path, {"expression": "30 14 * * *"}, format="json")
    assert response.status_code == 200, response.json()
    body = response.json()
    next_run = datetime.fromisoformat(body["next_run_at"].replace("Z", "+00:00"))
    assert (next_run.hour, next_run.minute) == (14, 30)
    assert body["description"] == "At 14:30 every day"

    response = as_agent.patch(path, {"timezone": "Europe/Paris"}, format="json")
    next_run = datetime.fromisoformat(response.json()["next_run_at"].replace("Z", "+00:00"))
    assert next_run.astimezone(__import__("zoneinfo").ZoneInfo("Europe/Paris")).hour == 14

    response = as_agent.patch(path, {"enabled": False}, format="json")
    assert response.json()["enabled"] is False
    assert response.json()["next_run_at"] is None

    response = as_agent.patch(path, {"enabled": True}, format="json")
    assert response.json()["next_run_at"] is not None


def test_patch_prompt_and_name_keep_next_run(as_agent, workspace, make_schedule):
    schedule = make_schedule(expression="0 9 * * *")
    Schedule.objects.filter(pk=schedule.pk).update(next_run_at=datetime(2030, 1, 1, 9, tzinfo=UTC))
    response = as_agent.patch(url(workspace, str(schedule.id)), {"prompt": "new", "name": "n"}, format="json")
    assert response.status_code == 200
    assert response.json()["prompt"] == "new"
    assert response.json()["name"] == "n"
    assert response.json()["next_run_at"] == "2030-01-01T09:00:00.000000Z"


def test_patch_template_schedule_becomes_runtime(as_agent, workspace, make_schedule):
    schedule = make_schedule(source=ScheduleSource.TEMPLATE)
    response = as_agent.patch(url(workspace, str(schedule.id)), {"prompt": "edited"}, format="json")
    assert response.json()["source"] == "runtime"


def test_patch_validation(as_agent, workspace, make_schedule):
    schedule = make_schedule(name="one")
    make_schedule(name="two")
    path = url(workspace, str(schedule.id))
    cases = [
        ({"expression": "* * * * * *"}, 400, "invalid_expression"),
        ({"timezone": "Nowhere/City"}, 400, "invalid_timezone"),
        ({"prompt": "x" * 32_001}, 400, "invalid_request"),
        ({"name": "two"}, 409, "conflict"),
        ({"source": "runtime"}, 400, "unknown_field"),
        ({"next_run_at": None}, 400, "unknown_field"),
    ]
    for body, status, code in cases:
        response = as_agent.patch(path, body, format="json")
        assert response.status_code == status, body
        assert response.json()["code"] == code, body
    assert as_agent.patch(path, {"name": "one"}, format="json").status_code == 200  # its own name
    assert as_agent.patch(path, {"prompt": "y" * 32_000}, format="json").status_code == 200


def test_delete_removes_history(as_agent, workspace, make_schedule):
    schedule = make_schedule()
    ScheduleRun.objects.create(schedule=schedule, scheduled_for=timezone.now())
    response = as_agent.delete(url(workspace, str(schedule.id)))
    assert response.status_code == 204
    assert not Schedule.objects.filter(pk=schedule.pk).exists()
    assert not ScheduleRun.objects.filter(schedule_id=schedule.pk).exists()
    assert as_agent.get(url(workspace, str(schedule.id))).status_code == 404


def test_run_now_queues_a_manual_run(as_agent, workspace, make_schedule):
    schedule = make_schedule(enabled=False)
    response = as_agent.post(url(workspace, str(schedule.id), "run"))
    assert response.status_code == 202
    body = response.json()
    assert set(body) == RUN_FIELDS
    assert body["trigger"] == "manual"
    assert body["status"] == "queued"
    assert body["schedule_id"] == str(schedule.id)
    run = ScheduleRun.objects.get(pk=body["id"])
    assert run.trigger == RunTrigger.MANUAL
    assert (run.relay_due_at is not None, run.publish_attempt) == (True, 0)  # the relay publishes it


def test_run_now_refuses_body_fields_instead_of_ignoring_them(as_agent, workspace, make_schedule):
    schedule = make_schedule()
    path = url(workspace, str(schedule.id), "run")
    for body in ({"prompt": "a one-off prompt"}, {"trigger": "cron"}):
        response = as_agent.post(path, body, format="json")
        assert response.status_code == 400, body
        assert response.json()["code"] == "unknown_field"
        assert set(response.json()["details"]) == set(body)
    not_an_object = as_agent.post(path, "[1]", content_type="application/json")
    assert not_an_object.status_code == 400
    assert not_an_object.json()["code"] == "invalid_request"
    assert not ScheduleRun.objects.filter(schedule=schedule).exists()
    # no body and an empty object are both fine
    assert as_agent.post(path).status_code == 202
    assert as_agent.post(path + "/", {}, format="json").status_code == 202
    assert ScheduleRun.objects.filter(schedule=schedule, trigger=RunTrigger.MANUAL).count() == 2


@pytest.mark.parametrize(
    ("field", "value"), [("prompt", 12345), ("prompt", True), ("name", 7), ("name", False), ("prompt", ["x"])]
)
def test_non_string_prompt_and_name_are_refused(as_agent, workspace, make_schedule, field, value):
    response = create(as_agent, workspace, **{field: value})
    assert response.status_code == 400, response.json()
    assert response.json()["code"] == "invalid_request"
    assert field in response.json()["details"]
    schedule = make_schedule(name="kept")
    patched = as_agent.patch(url(workspace, str(schedule.id)), {field: value}, format="json")
    assert patched.status_code == 400
    assert patched.json()["code"] == "invalid_request"
    assert Schedule.objects.filter(workspace=workspace).count() == 1


def test_history_newest_first_and_status_filter(as_agent, workspace, make_schedule):
    schedule = make_schedule()
    now = timezone.now()
    old = ScheduleRun.objects.create(
        schedule=schedule,
        scheduled_for=now - timedelta(minutes=5),
        status=RunStatus.SUCCESS,
        created_at=now - timedelta(minutes=5),
    )
    new = ScheduleRun.objects.create(
        schedule=schedule, scheduled_for=now, status=RunStatus.ERROR, created_at=now
    )
    path = url(workspace, str(schedule.id), "history")
    body = as_agent.get(path).json()
    assert [r["id"] for r in body] == [str(new.id), str(old.id)]
    assert set(body[0]) == RUN_FIELDS
    assert [r["id"] for r in as_agent.get(path + "?status=success").json()] == [str(old.id)]
    bad = as_agent.get(path + "?status=done")
    assert bad.status_code == 400
    assert bad.json()["code"] == "invalid_parameter"


def test_other_workspace_schedule_is_404(as_agent, workspace, other_workspace, as_admin):
    from schedules.services import schedule_create

    foreign = schedule_create(workspace=other_workspace, expression="* * * * *", prompt="x")
    for method, suffix in [("get", ""), ("patch", ""), ("delete", ""), ("post", "/run"), ("get", "/history")]:
        response = getattr(as_agent, method)(url(workspace, str(foreign.id)) + suffix, {}, format="json")
        assert response.status_code == 404, (method, suffix)
        assert response.json()["code"] == "not_found"
    assert as_agent.get(url(workspace, "not-a-uuid")).status_code == 404
    assert as_agent.get(url(workspace, str(uuid.uuid4()))).status_code == 404
    assert Schedule.objects.filter(pk=foreign.pk).exists()


def test_auth(api, workspace, other_workspace):
    assert api.get(url(workspace)).status_code == 401
    other_token = make_workspace_token(other_workspace)
    api.credentials(**bearer(other_token))
    response = api.get(url(workspace))
    assert response.status_code == 403
    assert api.post(url(workspace, "preview"), {"expression": "* * * * *"}, format="json").status_code == 403


def test_admin_on_missing_workspace_is_404(as_admin):
    assert as_admin.get(f"/workspaces/{uuid.uuid4()}/schedules").status_code == 404


def test_preview(as_agent, workspace):
    response = as_agent.post(
        url(workspace, "preview"),
        {"expression": "0 9 * * MON", "timezone": "UTC", "after": "2026-01-01T00:00:00Z", "count": 3},
        format="json",
    )
    assert response.status_code == 200, response.json()
    assert response.json() == {
        "description": "At 09:00 on Monday",
        "next_runs": [
            "2026-01-05T09:00:00.000000Z",
            "2026-01-12T09:00:00.000000Z",
            "2026-01-19T09:00:00.000000Z",
        ],
    }
    assert Schedule.objects.count() == 0


def test_preview_defaults(as_agent, workspace):
    response = as_agent.post(url(workspace, "preview"), {"expression": "* * * * *"}, format="json")
    body = response.json()
    assert len(body["next_runs"]) == 5
    first = datetime.fromisoformat(body["next_runs"][0].replace("Z", "+00:00"))
    assert timezone.now() < first <= timezone.now() + timedelta(minutes=1)


def test_preview_count_edges_and_errors(as_agent, workspace):
    path = url(workspace, "preview")
    ok = as_agent.post(path, {"expression": "* * * * *", "count": 50}, format="json")
    assert len(ok.json()["next_runs"]) == 50
    for body, code in [
        ({"expression": "* * * * *", "count": 51}, "invalid_request"),
        ({"expression": "* * * * *", "count": 0}, "invalid_request"),
        ({"expression": "* * * * *", "after": "yesterday"}, "invalid_request"),
        ({"expression": "0 0 30 2 *"}, "invalid_expression"),
        ({"expression": "* * * * *", "timezone": "Moon/Base"}, "invalid_timezone"),
        ({"expression": "* * * * *", "prompt": "x"}, "unknown_field"),
    ]:
        response = as_agent.post(path, body, format="json")
        assert response.status_code == 400, body
        assert response.json()["code"] == code, body


def test_preview_at_the_end_of_the_calendar_stops_instead_of_failing(as_agent, workspace):
    """Python dates end in 9999: the series stops there (fewer or no runs), never a 500."""
    path = url(workspace, "preview")
    for body, most in [
        ({"expression": "* * * * *", "after": "9999-12-31T23:50:00Z", "count": 50}, 9),
        ({"expression": "* * * * *", "after": "9999-12-31T23:59:00Z"}, 0),
        ({"expression": "0 0 29 2 *", "after": "9999-01-01T00:00:00Z"}, 0),
        ({"expression": "* * * * *", "timezone": "Asia/Tokyo", "after": "9999-12-31T20:00:00Z"}, 0),
    ]:
        response = as_agent.post(path, body, format="json")
        assert response.status_code == 200, (body, response.content[:300])
        runs = response.json()["next_runs"]
        assert len(runs) <= most, body
        assert all(run.startswith("9999-12-31T") for run in runs), body


def test_preview_after_edges(as_agent, workspace):
    path = url(workspace, "preview")
    ok = as_agent.post(
        path, {"expression": "0 0 * * *", "after": "1970-01-01T00:00:00Z", "count": 1}, format="json"
    )
    assert ok.status_code == 200
    assert ok.json()["next_runs"] == ["1970-01-02T00:00:00.000000Z"]
    too_early = as_agent.post(
        path, {"expression": "0 0 * * *", "after": "1969-12-31T23:59:59Z"}, format="json"
    )
    assert too_early.status_code == 400
    assert too_early.json()["code"] == "invalid_request"
    assert "after" in too_early.json()["details"]
    year_one = as_agent.post(
        path, {"expression": "* * * * *", "after": "0001-01-01T00:00:00Z"}, format="json"
    )
    assert year_one.status_code == 400
    assert year_one.json()["code"] == "invalid_request"


def test_malformed_json_and_non_object(as_agent, workspace):
    response = as_agent.post(url(workspace), "[1]", content_type="application/json")
    assert response.status_code == 400
    response = as_agent.post(url(workspace), "{bad", content_type="application/json")
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_request"


def test_admin_token_can_manage_any_workspace(as_admin):
    ws = make_workspace("gamma")
    assert create(as_admin, ws).status_code == 201
