"""Admin console: schedules (with a "run now" action) and their runs (read-only history)."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from common.admin import ReadOnlyAdminMixin
from common.errors import ApplicationError
from schedules import cron, services
from schedules.models import Schedule, ScheduleRun


class ScheduleAdminForm(forms.ModelForm):
    """Same rules as the API (the service's validators), reported on the form fields."""

    class Meta:
        model = Schedule
        fields = ("workspace", "name", "expression", "timezone", "prompt", "enabled")

    def _check(self, field: str, check: Any) -> Any:
        value = self.cleaned_data.get(field)
        try:
            return check(value)
        except ApplicationError as exc:
            messages_ = (exc.details or {}).get(field) or [exc.message]
            raise forms.ValidationError(messages_) from None

    def clean_expression(self) -> str:
        return self._check("expression", cron.validate_expression)

    def clean_timezone(self) -> str:
        self._check("timezone", cron.zone)
        return self.cleaned_data["timezone"]

    def clean_prompt(self) -> str:
        return self._check("prompt", services.prompt_normalize)

    def clean_name(self) -> str:
        return self._check("name", services.name_normalize)

    def clean(self) -> dict[str, Any]:
        """The name rule, on the form: when editing, `workspace` is read-only and so not part of the
        form, which leaves the model's (workspace, name) constraint unchecked until the database
        refuses the save (a 500)."""
        cleaned = super().clean()
        name = cleaned.get("name")
        workspace = cleaned.get("workspace") or (self.instance.workspace if self.instance.pk else None)
        if name and workspace is not None:
            clash = Schedule.objects.filter(workspace=workspace, name=name).exclude(pk=self.instance.pk)
            if clash.exists():
                self.add_error("name", "A schedule with this name already exists in this workspace.")
        return cleaned


@admin.register(Schedule)
class ScheduleAdmin(admin.ModelAdmin):
    form = ScheduleAdminForm
    list_display = (
        "__str__",
        "workspace",
        "expression",
        "timezone",
        "enabled",
        "source",
        "next_run_at",
        "last_status",
        "last_run_at",
        "run_count",
    )
    list_filter = (("workspace", admin.RelatedOnlyFieldListFilter), "enabled", "source", "last_status")
    search_fields = ("name", "expression", "prompt", "=id", "workspace__name")
    list_select_related = ("workspace",)
    autocomplete_fields = ("workspace",)
    readonly_fields = (
        "id",
        "description",
        "source",
        "next_run_at",
        "last_run_at",
        "last_status",
        "last_error",
        "run_count",
        "created_at",
        "updated_at",
    )
    fieldsets = (
        (None, {"fields": ("id", "workspace", "name", "enabled", "source")}),
        ("When", {"fields": ("expression", "timezone", "description", "next_run_at")}),
        ("What", {"fields": ("prompt",)}),
        ("Last run", {"fields": ("last_run_at", "last_status", "last_error", "run_count")}),
        ("Timestamps", {"fields": ("created_at", "updated_at")}),
    )
    actions = ("run_now",)

    def get_readonly_fields(self, request: HttpRequest, obj: Schedule | None = None) -> Any:
        if obj is not None:  # a schedule does not move between workspaces
            return ("workspace", *self.readonly_fields)
        return self.readonly_fields

    @admin.display(description="description")
    def description(self, obj: Schedule) -> str:
        return cron.describe(obj.expression) if obj.expression else ""

    def save_model(self, request: HttpRequest, obj: Schedule, form: forms.ModelForm, change: bool) -> None:
        """Through the services, so next_run_at and the name rule behave exactly as in the API."""
        data = {field: form.cleaned_data[field] for field in form.changed_data if field != "workspace"}
        if change:
            saved = services.schedule_update(schedule=Schedule.objects.get(pk=obj.pk), data=data)
        else:
            saved = services.schedule_create(
                workspace=form.cleaned_data["workspace"],
                expression=form.cleaned_data["expression"],
                prompt=form.cleaned_data["prompt"],
                timezone=form.cleaned_data["timezone"],
                enabled=form.cleaned_data["enabled"],
                name=form.cleaned_data.get("name") or "",
            )
        obj.pk = saved.pk
        obj.refresh_from_db()

    @admin.action(description="Run now (manual run)")
    def run_now(self, request: HttpRequest, queryset: QuerySet[Schedule]) -> None:
        count = 0
        for schedule in queryset:
            services.schedule_run_now(schedule=schedule)
            count += 1
        self.message_user(request, f"Queued {count} manual run(s).", level=messages.SUCCESS)


@admin.register(ScheduleRun)
class ScheduleRunAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = (
        "schedule",
        "workspace",
        "trigger",
        "status",
        "scheduled_for",
        "started_at",
        "finished_at",
        "duration_ms",
        "a2a_protocol",
        "error_detail",
    )
    list_filter = (
        "status",
        "trigger",
        "a2a_protocol",
        ("schedule__workspace", admin.RelatedOnlyFieldListFilter),
    )
    search_fields = ("=id", "=schedule__id", "schedule__name", "schedule__workspace__name", "error_detail")
    list_select_related = ("schedule", "schedule__workspace")
    date_hierarchy = "scheduled_for"
    ordering = ("-created_at",)
    readonly_fields = (
        "id",
        "schedule",
        "trigger",
        "status",
        "scheduled_for",
        "started_at",
        "finished_at",
        "duration_ms",
        "error_detail",
        "response_excerpt",
        "a2a_protocol",
        "busy_since",
        "created_at",
    )
    fields = readonly_fields

    @admin.display(description="workspace", ordering="schedule__workspace__name")
    def workspace(self, obj: ScheduleRun) -> str:
        return obj.schedule.workspace.name
