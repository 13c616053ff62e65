"""Query-string filters of the schedule list and the run history."""

from __future__ import annotations

import django_filters

from common.filters import StrictBooleanFilter
from schedules.models import RunStatus, Schedule, ScheduleRun, ScheduleSource


class ScheduleFilter(django_filters.FilterSet):
    enabled = StrictBooleanFilter(field_name="enabled", help_text="true or false")
    source = django_filters.ChoiceFilter(choices=ScheduleSource.choices)

    class Meta:
        model = Schedule
        fields: list[str] = []


class ScheduleRunFilter(django_filters.FilterSet):
    status = django_filters.ChoiceFilter(choices=RunStatus.choices)

    class Meta:
        model = ScheduleRun
        fields: list[str] = []
