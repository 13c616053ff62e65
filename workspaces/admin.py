"""Admin console: workspaces with their secrets (values never shown) and memory."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin
from django.db import models
from django.db.models import QuerySet
from django.http import HttpRequest

from workspaces.models import Workspace, WorkspaceMemory, WorkspaceSecret


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
    list_filter = ("runtime", "tier", ("parent", admin.RelatedOnlyFieldListFilter))
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
        (None, {"fields": ("id", "name", "role", "runtime", "tier", "parent", "url")}),
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
