"""Daylight-saving changes (Debian cron rules) through the preview API and through the dispatcher
driven by a controlled clock, in America/New_York and Australia/Sydney (2026 changes)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from schedules import cron, services
from schedules.models import Schedule, ScheduleRun

pytestmark = pytest.mark.django_db

NY = "America/New_York"
SYD = "Australia/Sydney"


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


# (zone, expression, day in local time, expected local fire times that day as (hour, minute, utc offset h))
CASES = [
    # New York springs forward on 2026-03-08 at 02:00 → 03:00: 02:30 does not exist, fires at 03:00 EDT once.
    (NY, "30 2 * * *", (2026, 3, 8), [(3, 0, -4)]),
    # New York falls back on 2026-11-01 at 02:00 → 01:00: 01:30 happens twice, the job fires once.
    (NY, "30 1 * * *", (2026, 11, 1), [(1, 30, -4)]),
    # A wall-clock job (minute field starts with *) fires in both copies of the repeated hour.
    (NY, "*/30 1 * * *", (2026, 11, 1), [(1, 0, -4), (1, 30, -4), (1, 0, -5), (1, 30, -5)]),
    # Sydney springs forward on 2026-10-04 at 02:00 → 03:00.
    (SYD, "30 2 * * *", (2026, 10, 4), [(3, 0, 11)]),
    # Sydney falls back on 2026-04-05 at 03:00 → 02:00: 02:30 happens twice.
    (SYD, "30 2 * * *", (2026, 4, 5), [(2, 30, 11)]),
    (SYD, "*/30 2 * * *", (2026, 4, 5), [(2, 0, 11), (2, 30, 11), (2, 0, 10), (2, 30, 10)]),
]


def day_window(zone: str, day: tuple[int, int, int]) -> tuple[datetime, datetime]:
    start = datetime(*day, tzinfo=ZoneInfo(zone)).astimezone(UTC)
    return start, start + timedelta(hours=25)


def expected_utc(zone: str, day: tuple[int, int, int], slots: list[tuple[int, int, int]]) -> list[datetime]:
    return [
        (datetime(*day, hour, minute, tzinfo=UTC) - timedelta(hours=offset)).replace(tzinfo=UTC)
        for hour, minute, offset in slots
    ]


@pytest.mark.parametrize(("zone", "expression", "day", "slots"), CASES)
def test_preview_across_dst(as_agent, workspace, zone, expression, day, slots):
    start, end = day_window(zone, day)
    response = as_agent.post(
        f"/workspaces/{workspace.id}/schedules/preview",
        {"expression": expression, "timezone": zone, "after": start.isoformat(), "count": 10},
        format="json",
    )
    assert response.status_code == 200, response.json()
    fired = [datetime.fromisoformat(v.replace("Z", "+00:00")) for v in response.json()["next_runs"]]
    that_day = [
        t for t in fired if start <= t < end and t.astimezone(ZoneInfo(zone)).date() == datetime(*day).date()
    ]
    assert that_day == expected_utc(zone, day, slots)
    # and local wall-clock readings are the ones cron users expect
    assert [(t.astimezone(ZoneInfo(zone)).hour, t.astimezone(ZoneInfo(zone)).minute) for t in that_day] == [
        (h, m) for h, m, _ in slots
    ]


@pytest.mark.parametrize(("zone", "expression", "day", "slots"), CASES)
def test_dispatcher_with_controlled_clock_across_dst(workspace, zone, expression, day, slots):
    start, end = day_window(zone, day)
    schedule = services.schedule_create(workspace=workspace, expression=expression, prompt="p", timezone=zone)
    Schedule.objects.filter(pk=schedule.pk).update(next_run_at=cron.next_fire(expression, zone, start))
    clock = start
    while clock < end:
        services.schedule_dispatch_due(now=clock)
        clock += timedelta(minutes=5)
    fired = sorted(ScheduleRun.objects.filter(schedule=schedule).values_list("scheduled_for", flat=True))
    local_day = datetime(*day).date()
    that_day = [t for t in fired if t.astimezone(ZoneInfo(zone)).date() == local_day]
    assert that_day == expected_utc(zone, day, slots)
    assert len(fired) == len(set(fired))
    schedule.refresh_from_db()
    assert schedule.next_run_at >= end - timedelta(minutes=5)
