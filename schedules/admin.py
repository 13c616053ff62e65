"""Admin console: schedules (with a "run now" action) and their runs (read-only history)."""

from __future__ import annotations

import uuid
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.urls import reverse
from django.utils.html import format_html, format_html_join

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
        "recent_runs",
        "created_at",
        "updated_at",
    )
    fieldsets = (
        (None, {"fields": ("id", "workspace", "name", "enabled", "source")}),
        ("When", {"fields": ("expression", "timezone", "description", "next_run_at")}),
        ("What", {"fields": ("prompt",)}),
        ("Last run", {"fields": ("last_run_at", "last_status", "last_error", "run_count")}),
        ("Recent runs", {"fields": ("recent_runs",)}),
        ("Timestamps", {"fields": ("created_at", "updated_at")}),
    )
    actions = ("run_now",)
    RECENT_RUNS = 10

    def get_fieldsets(self, request: HttpRequest, obj: Schedule | None = None) -> Any:
        if obj is None:  # nothing has run yet on the add page
            return [fieldset for fieldset in self.fieldsets if fieldset[0] != "Recent runs"]
        return self.fieldsets

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: Any = None
    ) -> HttpResponse:
        """The page's own "Runs" button, next to Django's change log."""
        extra_context = {**(extra_context or {}), "runs_url": runs_changelist_url(schedule_id=object_id)}
        return super().change_view(request, object_id, form_url, extra_context)

    @admin.display(description="Last runs")
    def recent_runs(self, obj: Schedule) -> str:
        """The latest runs inline (one query), and a link to all of them."""
        if obj.pk is None:
            return ""
        runs = list(obj.runs.order_by("-created_at")[: self.RECENT_RUNS])
        link = format_html(
            '<a href="{}">All runs of this schedule</a>', runs_changelist_url(schedule_id=obj.pk)
        )
        if not runs:
            return format_html("<p>No runs yet.</p>{}", link)
        rows = format_html_join(
            "",
            '<tr><td><a href="{}">{}</a></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>',
            (
                (
                    reverse("admin:schedules_schedulerun_change", args=[run.pk]),
                    run.scheduled_for.strftime("%Y-%m-%d %H:%M:%S UTC"),
                    run.trigger,
                    run.status,
                    "" if run.duration_ms is None else f"{run.duration_ms} ms",
                    (run.error_detail or "")[:120],
                )
                for run in runs
            ),
        )
        return format_html(
            "<table><thead><tr><th>Scheduled for</th><th>Trigger</th><th>Status</th><th>Duration</th>"
            "<th>Error</th></tr></thead><tbody>{}</tbody></table><p>{}</p>",
            rows,
            link,
        )

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

    @admin.action(description="Run now (manual run)", permissions=["change"])
    def run_now(self, request: HttpRequest, queryset: QuerySet[Schedule]) -> None:
        count = 0
        for schedule in queryset:
            services.schedule_run_now(schedule=schedule)
            count += 1
        self.message_user(request, f"Queued {count} manual run(s).", level=messages.SUCCESS)


def runs_changelist_url(*, schedule_id: Any) -> str:
    return (
        f"{reverse('admin:schedules_schedulerun_changelist')}?{ScheduleFilter.parameter_name}={schedule_id}"
    )


class ScheduleFilter(admin.SimpleListFilter):
    """Runs of one schedule. The choices are the schedules of the workspace chosen in the
    workspace filter (or the chosen schedule alone): never every schedule of the service."""

    title = "schedule"
    parameter_name = "schedule"
    WORKSPACE_PARAMETER = "schedule__workspace__id__exact"

    def _chosen(self) -> uuid.UUID | None:
        try:
            return uuid.UUID(str(self.value())) if self.value() else None
        except ValueError:
            return None

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        schedules = Schedule.objects.select_related("workspace").order_by(
            "workspace__name", "name", "created_at"
        )
        workspace = request.GET.get(self.WORKSPACE_PARAMETER)
        chosen = self._chosen()
        try:
            if workspace:
                schedules = schedules.filter(workspace_id=uuid.UUID(workspace))
            elif chosen:
                schedules = schedules.filter(pk=chosen)
            else:
                return []
        except ValueError:
            return []
        return [(str(s.pk), f"{s.workspace.name} / {s}") for s in schedules[:200]]

    def has_output(self) -> bool:
        return True

    def queryset(self, request: HttpRequest, queryset: QuerySet[ScheduleRun]) -> QuerySet[ScheduleRun]:
        if not self.value():
            return queryset
        chosen = self._chosen()
        return queryset.filter(schedule_id=chosen) if chosen else queryset.none()


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
        ScheduleFilter,
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
