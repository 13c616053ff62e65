"""Admin console: workspaces with their secrets (values never shown) and memory."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django import forms
from django.conf import settings
from django.contrib import admin
from django.db import models
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils import timezone

from workspaces.models import AgentDelivery, Workspace, WorkspaceMemory, WorkspaceSecret, WorkspaceStatus


class StatusFilter(admin.SimpleListFilter):
    """The derived status (heartbeat age), as a filter: online, offline, never seen."""

    title = "status"
    parameter_name = "status"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [(value, label) for value, label in WorkspaceStatus.choices]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        online_since = timezone.now() - timedelta(seconds=settings.WORKSPACE_ONLINE_SECONDS)
        if self.value() == WorkspaceStatus.ONLINE:
            return queryset.filter(last_heartbeat_at__gte=online_since)
        if self.value() == WorkspaceStatus.OFFLINE:
            return queryset.filter(last_heartbeat_at__lt=online_since)
        if self.value() == WorkspaceStatus.UNKNOWN:
            return queryset.filter(last_heartbeat_at__isnull=True)
        return queryset


class SecretForm(forms.ModelForm):
    """Write-only value: typing a new value replaces the secret; the stored one is never shown."""

    new_value = forms.CharField(
        required=False,
        widget=forms.PasswordInput(render_value=False),
        help_text="Leave empty to keep the current value.",
        label="New value",
    )

    class Meta:
        model = WorkspaceSecret
        fields = ("workspace", "key")

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        if not self.instance.pk and not cleaned.get("new_value"):
            self.add_error("new_value", "A new secret needs a value.")
        return cleaned

    def save(self, commit: bool = True) -> WorkspaceSecret:
        if self.cleaned_data.get("new_value"):
            self.instance.value = self.cleaned_data["new_value"]
        return super().save(commit=commit)


class SecretInline(admin.TabularInline):
    model = WorkspaceSecret
    form = SecretForm
    fields = ("key", "new_value", "updated_at")
    readonly_fields = ("updated_at",)
    extra = 0

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        return super().get_queryset(request).defer("value")


class MemoryInline(admin.TabularInline):
    model = WorkspaceMemory
    fields = ("key", "value", "updated_at")
    readonly_fields = ("updated_at",)
    extra = 0


class ChildInline(admin.TabularInline):
    model = Workspace
    fk_name = "parent"
    fields = ("name", "runtime", "tier")
    readonly_fields = fields
    show_change_link = True
    extra = 0
    can_delete = False
    verbose_name_plural = "children"

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Workspace)
class WorkspaceAdmin(admin.ModelAdmin):
    list_display = (
        "name",
        "role",
        "runtime",
        "tier",
        "parent",
        "status_display",
        "active_tasks",
        "max_concurrent_tasks",
        "last_heartbeat_at",
        "created_at",
    )
    list_filter = (
        StatusFilter,
        "runtime",
        "tier",
        "a2a_protocol",
        ("parent", admin.RelatedOnlyFieldListFilter),
    )
    search_fields = ("name", "role", "=id", "url")
    list_select_related = ("parent",)
    autocomplete_fields = ("parent",)
    readonly_fields = (
        "id",
        "status_display",
        "active_tasks",
        "current_task",
        "last_heartbeat_at",
        "created_at",
        "updated_at",
    )
    fieldsets = (
        (None, {"fields": ("id", "name", "role", "runtime", "tier", "parent", "url", "a2a_protocol")}),
        (
            "Capacity",
            {
                "fields": (
                    "max_concurrent_tasks",
                    "active_tasks",
                    "current_task",
                    "last_heartbeat_at",
                    "status_display",
                )
            },
        ),
        ("Configuration", {"fields": ("config",)}),
        ("Timestamps", {"fields": ("created_at", "updated_at")}),
    )
    inlines = (SecretInline, MemoryInline, ChildInline)
    # An agent url typed without a scheme is taken as https (and Django 6's default, no warning).
    formfield_overrides = {models.URLField: {"assume_scheme": "https"}}
    date_hierarchy = "created_at"
    formfield_overrides = {models.URLField: {"assume_scheme": "https"}}

    @admin.display(description="status")
    def status_display(self, obj: Workspace) -> str:
        return obj.status


@admin.register(WorkspaceSecret)
class WorkspaceSecretAdmin(admin.ModelAdmin):
    form = SecretForm
    list_display = ("key", "workspace", "created_at", "updated_at")
    list_filter = (("workspace", admin.RelatedOnlyFieldListFilter),)
    search_fields = ("key", "workspace__name")
    list_select_related = ("workspace",)
    autocomplete_fields = ("workspace",)
    fields = ("workspace", "key", "new_value", "created_at", "updated_at")
    readonly_fields = ("created_at", "updated_at")

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        return super().get_queryset(request).defer("value")


@admin.register(WorkspaceMemory)
class WorkspaceMemoryAdmin(admin.ModelAdmin):
    list_display = ("key", "workspace", "updated_at")
    list_filter = (("workspace", admin.RelatedOnlyFieldListFilter),)
    search_fields = ("key", "workspace__name")
    list_select_related = ("workspace",)
    autocomplete_fields = ("workspace",)
    readonly_fields = ("created_at", "updated_at")


@admin.register(AgentDelivery)
class AgentDeliveryAdmin(admin.ModelAdmin):
    """Prompts being delivered to agents right now (what makes a workspace busy); read-only."""

    list_display = ("workspace", "source", "reference", "started_at")
    list_filter = ("source", ("workspace", admin.RelatedOnlyFieldListFilter))
    search_fields = ("workspace__name", "reference")
    list_select_related = ("workspace",)
    readonly_fields = ("workspace", "source", "reference", "started_at")
    fields = readonly_fields

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
