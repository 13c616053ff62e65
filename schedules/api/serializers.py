"""Schedule and run representations, and the inputs of create, update and preview."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from rest_framework import serializers

from common.serializers import StrictCharField, StrictSerializer
from schedules import cron
from schedules.models import (
    NAME_MAX_CHARS,
    PROMPT_MAX_CHARS,
    RunStatus,
    RunTrigger,
    Schedule,
    ScheduleRun,
    ScheduleSource,
)
from schedules.selectors import PREVIEW_MAX_COUNT, PREVIEW_MIN_YEAR


class ScheduleSerializer(serializers.ModelSerializer):
    workspace_id = serializers.UUIDField(read_only=True)
    source = serializers.ChoiceField(choices=ScheduleSource.choices, read_only=True)
    last_status = serializers.ChoiceField(
        choices=[RunStatus.SUCCESS, RunStatus.ERROR, RunStatus.SKIPPED], allow_null=True, read_only=True
    )
    description = serializers.SerializerMethodField(help_text="The expression in words.")
    deliver_to = serializers.ListField(
        child=serializers.UUIDField(), read_only=True, help_text="Channels that receive each run's result."
    )

    class Meta:
        model = Schedule
        fields = (
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
        )
        read_only_fields = fields

    def get_description(self, obj: Schedule) -> str:
        return cron.describe(obj.expression)


class ScheduleRunSerializer(serializers.ModelSerializer):
    schedule_id = serializers.UUIDField(read_only=True)
    trigger = serializers.ChoiceField(choices=RunTrigger.choices, read_only=True)
    status = serializers.ChoiceField(choices=RunStatus.choices, read_only=True)

    class Meta:
        model = ScheduleRun
        fields = (
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
        )
        read_only_fields = fields


class _LooseString(StrictCharField):
    """A string passed on untouched (no trimming); the service applies the domain rules.

    Numbers and booleans are refused rather than turned into text (`"prompt": 12345` is a
    mistake, not a prompt).
    """

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("trim_whitespace", False)
        kwargs.setdefault("allow_blank", True)
        super().__init__(**kwargs)


class ScheduleInputSerializer(StrictSerializer):
    """Input of create (expression and prompt required) and update (any subset)."""

    # Only types are checked here; the expression, time zone and prompt rules live in the
    # service so the API, the admin console and imports share them (and their error codes).

    expression = _LooseString(help_text="5 cron fields: minute hour day-of-month month day-of-week.")
    timezone = _LooseString(required=False, default="UTC", help_text="IANA time zone.")
    prompt = _LooseString(help_text=f"1 to {PROMPT_MAX_CHARS} characters (after removing \\r).")
    enabled = serializers.BooleanField(required=False, default=True)
    name = StrictCharField(required=False, allow_blank=True, max_length=NAME_MAX_CHARS, default="")
    deliver_to = serializers.ListField(
        child=serializers.UUIDField(),
        required=False,
        default=list,
        help_text="Channel ids of this workspace; each run's reply (or failure) is sent there.",
    )

    def validate_enabled(self, value: Any) -> bool:
        return bool(value)


class RunNowInputSerializer(StrictSerializer):
    """Run now takes no fields: anything sent (say, a one-off `prompt`) is refused, not ignored."""


class PreviewInputSerializer(StrictSerializer):
    expression = _LooseString(help_text="5 cron fields: minute hour day-of-month month day-of-week.")
    timezone = _LooseString(required=False, default="UTC", help_text="IANA time zone.")
    after = serializers.DateTimeField(
        required=False, help_text=f"Defaults to now; from the year {PREVIEW_MIN_YEAR} on."
    )
    count = serializers.IntegerField(required=False, default=5, min_value=1, max_value=PREVIEW_MAX_COUNT)

    def validate_after(self, value: datetime) -> datetime:
        # Slots before the Unix epoch mean nothing to a scheduler, and years below 1000 would come
        # back as non-ISO text ("1-01-01T00:01:00Z"); refuse rather than answer nonsense.
        if value.year < PREVIEW_MIN_YEAR:
            raise serializers.ValidationError(f"Must be in the year {PREVIEW_MIN_YEAR} or later.")
        return value


class PreviewSerializer(serializers.Serializer):
    description = serializers.CharField()
    next_runs = serializers.ListField(child=serializers.DateTimeField())
