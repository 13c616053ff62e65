"""Template, org template and bundle reads."""

from __future__ import annotations

from typing import Any

from django.db.models import Count, QuerySet

from common.errors import NotFound
from templates_app.bundles import bundle_export
from templates_app.models import TemplateImportJob, WorkspaceTemplate
from templates_app.org import OrgTemplateInfo, org_template_list

__all__ = [
    "OrgTemplateInfo",
    "bundle_export",
    "org_template_list",
    "template_import_job_get",
    "template_list",
]


def template_list() -> QuerySet[WorkspaceTemplate]:
    """Templates with their file count (one query per page)."""
    return WorkspaceTemplate.objects.annotate(file_count=Count("files"))


def template_import_job_get(*, job_id: Any) -> TemplateImportJob:
    job = TemplateImportJob.objects.filter(pk=job_id).first()
    if job is None:
        raise NotFound("Import job not found.")
    return job
