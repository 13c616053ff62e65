"""Admin console: the plugin registry (read from PLUGINS_DIR) and installed plugins per workspace."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse

from common.admin import ReadOnlyAdminMixin
from plugins_app import selectors, services
from plugins_app.models import InstalledPlugin, RegistryPlugin


@admin.register(InstalledPlugin)
class InstalledPluginAdmin(admin.ModelAdmin):
    list_display = ("name", "workspace", "status", "source", "resolved_ref", "installed_at", "short_error")
    list_filter = ("status", "workspace__runtime", ("workspace", admin.RelatedOnlyFieldListFilter))
    search_fields = ("name", "source", "workspace__name", "=workspace__id")
    list_select_related = ("workspace",)
    ordering = ("workspace__name", "name")
    actions = ["reinstall", "uninstall"]
    readonly_fields = [field.name for field in InstalledPlugin._meta.fields]

    @admin.display(description="error")
    def short_error(self, obj: InstalledPlugin) -> str:
        return obj.error[:80]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # installs go through the API (validation, worker)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_reinstall_permission(self, request: HttpRequest) -> bool:
        """Rows are never edited in the form, but a reinstall changes them: `change_…` it is."""
        opts = self.opts
        return request.user.has_perm(f"{opts.app_label}.change_{opts.model_name}")

    def delete_model(self, request: HttpRequest, obj: InstalledPlugin) -> None:
        services.plugin_uninstall(workspace=obj.workspace, name=obj.name)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[InstalledPlugin]) -> None:
        for plugin in queryset.select_related("workspace"):
            services.plugin_uninstall(workspace=plugin.workspace, name=plugin.name)

    @admin.action(description="Reinstall from the recorded source", permissions=["reinstall"])
    def reinstall(self, request: HttpRequest, queryset: QuerySet[InstalledPlugin]) -> None:
        plugins = list(queryset.select_related("workspace"))
        services.plugin_install_bulk_request(requests=[(p.workspace, p.source) for p in plugins])
        self.message_user(request, f"{len(plugins)} plugin(s) queued for reinstall.", messages.SUCCESS)

    @admin.action(description="Uninstall (remove files)", permissions=["delete"])
    def uninstall(self, request: HttpRequest, queryset: QuerySet[InstalledPlugin]) -> None:
        count = queryset.count()
        self.delete_queryset(request, queryset)
        self.message_user(request, f"{count} plugin(s) uninstalled.", messages.SUCCESS)


@admin.register(RegistryPlugin)
class RegistryPluginAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Read-only view of the on-disk registry: the changelist lists PLUGINS_DIR, not rows."""

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return bool(request.user.is_active and request.user.is_staff)

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        context = {
            **self.admin_site.each_context(request),
            "title": "Plugin registry",
            "opts": self.model._meta,
            "plugins_dir": settings.PLUGINS_DIR,
            "entries": [entry.as_dict() for entry in selectors.registry_list()],
        }
        return TemplateResponse(request, "admin/plugins_app/registry.html", context)
