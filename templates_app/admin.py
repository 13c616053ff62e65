"""Admin console: workspace templates (create, edit, import from a source), template import
jobs, org templates (listing with an import button), bundle imports by upload (Celery job), and
an "export as bundle" action on workspaces."""

from __future__ import annotations

import io
import json
import zipfile
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import Count, QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import path

from common.admin import ReadOnlyAdminMixin
from common.errors import ApplicationError
from templates_app import selectors, services
from templates_app.bundles import MAX_BUNDLE_BYTES, bundle_check_storable, bundle_filename, bundle_loads
from templates_app.models import (
    BundleImportJob,
    OrgTemplate,
    TemplateFile,
    TemplateImportJob,
    WorkspaceTemplate,
)
from workspaces.models import Workspace

# Org import and bundle upload create workspaces (and everything inside them).
CREATE_WORKSPACES = "workspaces.add_workspace"
# A bundle holds a workspace tree with its memory, schedules, channels, plugins and secret keys.
EXPORT_PERMISSIONS = (
    "workspaces.view_workspace",
    "workspaces.view_workspacesecret",
    "workspaces.view_workspacememory",
    "schedules.view_schedule",
    "channels_app.view_channel",
    "plugins_app.view_installedplugin",
)


class TemplateFileInline(admin.TabularInline):
    model = TemplateFile
    fields = ("path", "encoding", "size", "content")
    readonly_fields = ("size",)
    extra = 0


class TemplateImportForm(forms.Form):
    source = forms.CharField(
        max_length=500, help_text="github://owner/repo[#ref] or local://<folder of TEMPLATES_DIR>"
    )
    replace = forms.BooleanField(required=False, help_text="Replace a template that has the same slug.")

    def clean_source(self) -> str:
        try:
            return services.template_source_check(self.cleaned_data["source"])
        except ApplicationError as exc:
            raise forms.ValidationError(exc.message) from None


@admin.register(WorkspaceTemplate)
class WorkspaceTemplateAdmin(admin.ModelAdmin):
    list_display = ("slug", "name", "runtime", "tier", "file_count", "source", "updated_at")
    list_filter = ("runtime", "tier")
    search_fields = ("slug", "name", "description", "source")
    readonly_fields = ("id", "created_at", "updated_at")
    fields = (
        "id",
        "slug",
        "name",
        "description",
        "runtime",
        "tier",
        "config_schema",
        "config",
        "source",
        "created_at",
        "updated_at",
    )
    inlines = (TemplateFileInline,)
    change_list_template = "admin/templates_app/workspacetemplate/change_list.html"

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        return super().get_queryset(request).annotate(_file_count=Count("files"))

    @admin.display(description="files", ordering="_file_count")
    def file_count(self, obj: WorkspaceTemplate) -> int:
        return obj._file_count  # type: ignore[attr-defined]

    def get_urls(self) -> list:
        return [
            path(
                "import/",
                self.admin_site.admin_view(self.import_view),
                name="templates_app_workspacetemplate_import",
            ),
            *super().get_urls(),
        ]

    def import_view(self, request: HttpRequest) -> HttpResponse:
        """Queue an import job (the same service as POST /templates/import)."""
        if not self.has_add_permission(request):
            raise PermissionDenied
        form = TemplateImportForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            job = services.template_import_job_create(
                source=form.cleaned_data["source"],
                replace=form.cleaned_data["replace"],
                requested_by=request.user.get_username(),
            )
            self.message_user(
                request, f"Import of {job.source} queued; its status is below.", messages.SUCCESS
            )
            return redirect("admin:templates_app_templateimportjob_changelist")
        context = {
            **self.admin_site.each_context(request),
            "title": "Import a workspace template",
            "form": form,
            "opts": self.model._meta,
        }
        return TemplateResponse(request, "admin/templates_app/form_page.html", context)


@admin.register(TemplateImportJob)
class TemplateImportJobAdmin(admin.ModelAdmin):
    list_display = ("source", "status", "replace", "template", "code", "error", "requested_by", "created_at")
    list_filter = ("status",)
    search_fields = ("source", "=id")
    list_select_related = ("template",)
    readonly_fields = (
        "id",
        "source",
        "replace",
        "status",
        "template",
        "code",
        "error",
        "requested_by",
        "created_at",
        "started_at",
        "finished_at",
    )

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(OrgTemplate)
class OrgTemplateAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Org templates are folders on disk: a listing with an Import button, no database rows."""

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        """The page exists to import: it needs the permission to create workspaces."""
        return request.user.is_active and request.user.is_staff and request.user.has_perm(CREATE_WORKSPACES)

    def get_urls(self) -> list:
        return [
            path(
                "", self.admin_site.admin_view(self.listing_view), name="templates_app_orgtemplate_changelist"
            ),
            path(
                "<str:slug>/import/",
                self.admin_site.admin_view(self.import_view),
                name="templates_app_orgtemplate_import",
            ),
        ]

    def listing_view(self, request: HttpRequest) -> HttpResponse:
        if not self.has_view_permission(request):
            raise PermissionDenied
        context = {
            **self.admin_site.each_context(request),
            "title": "Org templates",
            "templates": selectors.org_template_list(),
            "opts": self.model._meta,
        }
        return TemplateResponse(request, "admin/templates_app/orgtemplate/listing.html", context)

    def import_view(self, request: HttpRequest, slug: str) -> HttpResponse:
        """Import the org template as a workspace tree (POST only, CSRF protected)."""
        if request.method != "POST":
            return redirect("admin:templates_app_orgtemplate_changelist")
        if not self.has_view_permission(request):
            raise PermissionDenied
        try:
            result = services.org_import(template=slug)
        except ApplicationError as exc:
            extra = ""
            if exc.details and "missing" in exc.details:
                extra = f" (missing: {', '.join(exc.details['missing'])})"
            elif exc.details and "names" in exc.details:
                extra = f" (not allowed: {', '.join(exc.details['names'])})"
            self.message_user(request, f"Import of {slug} failed: {exc.message}{extra}", messages.ERROR)
            return redirect("admin:templates_app_orgtemplate_changelist")
        self.message_user(
            request, f"Imported {result.org}: {len(result.workspaces)} workspaces created.", messages.SUCCESS
        )
        return redirect("admin:workspaces_workspace_changelist")


class BundleUploadForm(forms.Form):
    bundle = forms.FileField(
        help_text=f"A bundle JSON file (at most {MAX_BUNDLE_BYTES // (1024 * 1024)} MiB)."
    )
    parent = forms.ModelChoiceField(
        queryset=Workspace.objects.all(), required=False, help_text="Attach the tree under this workspace."
    )
    activate = forms.BooleanField(
        required=False,
        help_text="Keep the schedules enabled as exported (else they come back disabled).",
    )

    def clean_bundle(self) -> Any:
        upload = self.cleaned_data["bundle"]
        if upload.size > MAX_BUNDLE_BYTES:
            raise forms.ValidationError(f"The bundle is larger than {MAX_BUNDLE_BYTES} bytes.")
        try:
            bundle = bundle_loads(upload.read())
        except (ValueError, RecursionError):
            raise forms.ValidationError("The file is not a JSON bundle.") from None
        try:
            # The payload is stored in a JSON column before the worker parses it.
            bundle_check_storable(bundle)
        except ApplicationError as exc:
            raise forms.ValidationError(exc.message) from None
        return bundle


@admin.register(BundleImportJob)
class BundleImportJobAdmin(admin.ModelAdmin):
    list_display = (
        "filename",
        "status",
        "count",
        "root",
        "parent",
        "code",
        "error",
        "requested_by",
        "created_at",
    )
    list_filter = ("status",)
    search_fields = ("filename", "=id", "requested_by", "root__name", "parent__name")
    list_select_related = ("root", "parent")
    exclude = ("payload",)
    readonly_fields = (
        "id",
        "filename",
        "parent",
        "activate",
        "status",
        "root",
        "count",
        "missing_secrets",
        "code",
        "error",
        "requested_by",
        "created_at",
        "started_at",
        "finished_at",
    )

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        return super().get_queryset(request).defer("payload")

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_add_permission(self, request: HttpRequest) -> bool:
        """An upload creates a workspace tree: it also needs the permission to create workspaces."""
        return super().has_add_permission(request) and request.user.has_perm(CREATE_WORKSPACES)

    def add_view(self, request: HttpRequest, form_url: str = "", extra_context: Any = None) -> HttpResponse:
        """Upload a bundle; a Celery worker imports it (the same service as POST /bundles/import)."""
        if not self.has_add_permission(request):
            raise PermissionDenied
        form = BundleUploadForm(request.POST or None, request.FILES or None)
        if request.method == "POST" and form.is_valid():
            job = services.bundle_import_job_create(
                payload=form.cleaned_data["bundle"],
                filename=form.cleaned_data["bundle"] and request.FILES["bundle"].name,
                parent=form.cleaned_data["parent"],
                activate=form.cleaned_data["activate"],
                requested_by=request.user.get_username(),
            )
            self.message_user(request, f"Bundle {job.filename} queued for import.", messages.SUCCESS)
            return redirect("admin:templates_app_bundleimportjob_changelist")
        context = {
            **self.admin_site.each_context(request),
            "title": "Import a bundle",
            "form": form,
            "opts": self.model._meta,
            "multipart": True,
        }
        return TemplateResponse(request, "admin/templates_app/form_page.html", context)


@admin.action(
    description="Export as bundle (JSON; several selected → a zip of bundles)", permissions=["view"]
)
def export_bundles(
    modeladmin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet
) -> HttpResponse | None:
    if not request.user.has_perms(EXPORT_PERMISSIONS):
        modeladmin.message_user(
            request,
            "Exporting needs the permission to view workspaces and everything a bundle holds "
            "(secrets' keys, memory, schedules, channels, plugins).",
            messages.ERROR,
        )
        return None
    workspaces = list(queryset[:100])
    if len(workspaces) == 1:
        bundle = selectors.bundle_export(workspace=workspaces[0])
        response = HttpResponse(
            json.dumps(bundle, ensure_ascii=False, indent=1), content_type="application/json"
        )
        response["Content-Disposition"] = f'attachment; filename="{bundle_filename(workspaces[0])}"'
        return response
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for workspace in workspaces:
            bundle = selectors.bundle_export(workspace=workspace)
            archive.writestr(bundle_filename(workspace), json.dumps(bundle, ensure_ascii=False, indent=1))
    response = HttpResponse(buffer.getvalue(), content_type="application/zip")
    response["Content-Disposition"] = 'attachment; filename="bundles.zip"'
    return response


def _add_export_action() -> None:
    """Extend the foundation's Workspace admin with the export action, without editing it."""
    try:
        workspace_admin = admin.site.get_model_admin(Workspace)
    except admin.exceptions.NotRegistered:
        return
    if export_bundles not in (workspace_admin.actions or ()):
        workspace_admin.actions = (*(workspace_admin.actions or ()), export_bundles)


_add_export_action()
