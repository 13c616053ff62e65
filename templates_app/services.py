"""Template, org and bundle writes. Views, admin, commands and tasks all call these."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from common.errors import ApplicationError, Conflict
from templates_app.bundles import BundleImportResult, bundle_import
from templates_app.folders import TemplateData, local_template_folder, template_read_folder
from templates_app.models import (
    BundleImportJob,
    JobStatus,
    TemplateFile,
    TemplateImportJob,
    WorkspaceTemplate,
)
from templates_app.org import OrgImportResult, org_import
from workspaces.models import Workspace

logger = logging.getLogger(__name__)

__all__ = [
    "BundleImportResult",
    "OrgImportResult",
    "bundle_import",
    "bundle_import_job_create",
    "bundle_import_job_run",
    "org_import",
    "template_import_job_create",
    "template_import_job_run",
    "template_store",
    "template_sync_dir",
]

LOCAL_SOURCE = re.compile(r"^local://([a-z0-9][a-z0-9._-]{0,127})$")
GITHUB_SOURCE = re.compile(r"^github://([A-Za-z0-9_.-]{1,100})/([A-Za-z0-9_.-]{1,100})(?:#([^\s#]{1,255}))?$")


@transaction.atomic
def template_store(*, data: TemplateData, source: str, replace: bool) -> tuple[WorkspaceTemplate, bool]:
    """Create the template, or replace an existing slug's fields and files when `replace`.

    Returns (template, created). An existing slug without `replace` is a 409 `conflict`.
    """
    existing = WorkspaceTemplate.objects.select_for_update().filter(slug=data.slug).first()
    if existing is not None and not replace:
        raise Conflict(f"A template with slug {data.slug!r} already exists; pass replace to update it.")
    template = existing or WorkspaceTemplate(slug=data.slug)
    template.name = data.name
    template.description = data.description
    template.runtime = data.runtime
    template.tier = data.tier
    template.config = data.config
    template.config_schema = data.config_schema
    template.source = source
    template.save()
    if existing is not None:
        TemplateFile.objects.filter(template=template).delete()
    TemplateFile.objects.bulk_create(
        [
            TemplateFile(template=template, path=f.path, content=f.content, encoding=f.encoding, size=f.size)
            for f in data.files
        ],
        batch_size=500,
    )
    return template, existing is None


@dataclass
class SyncReport:
    created: list[str]
    updated: list[str]
    failed: dict[str, str]


def template_sync_dir(*, root: Path | None = None) -> SyncReport:
    """Seed/refresh templates from every folder of TEMPLATES_DIR holding a template.yaml."""
    root = Path(root or settings.TEMPLATES_DIR)
    report = SyncReport(created=[], updated=[], failed={})
    if not root.is_dir():
        return report
    for entry in sorted(root.iterdir(), key=lambda p: p.name):
        if not entry.is_dir() or not (entry / "template.yaml").exists():
            continue
        try:
            folder = local_template_folder(root=root, name=entry.name)
            data = template_read_folder(folder=folder, slug=entry.name)
            _, created = template_store(data=data, source=f"local://{entry.name}", replace=True)
        except ApplicationError as exc:
            report.failed[entry.name] = exc.message
            continue
        (report.created if created else report.updated).append(entry.name)
    return report


def template_source_check(source: Any) -> str:
    """`local://<dir>` or `github://owner/repo[#ref]`, else 400."""
    if isinstance(source, str) and (LOCAL_SOURCE.match(source) or GITHUB_SOURCE.match(source)):
        return source
    raise ApplicationError(
        "source must be local://<dir> or github://owner/repo[#ref].",
        details={"source": ["Must be local://<dir> or github://owner/repo[#ref]."]},
    )


def template_import_job_create(
    *, source: str, replace: bool = False, requested_by: str = ""
) -> TemplateImportJob:
    """Record the job and queue it for a worker once the row is committed."""
    from templates_app.tasks import run_template_import

    job = TemplateImportJob.objects.create(
        source=template_source_check(source), replace=replace, requested_by=requested_by
    )
    job_id = str(job.pk)
    transaction.on_commit(lambda: run_template_import.delay(job_id))
    return job


def _fetch_and_read(source: str) -> tuple[TemplateData, str]:
    """The template data of a source, and the source as recorded (github: pinned to the sha)."""
    local = LOCAL_SOURCE.match(source)
    if local:
        root = Path(settings.TEMPLATES_DIR)
        folder = local_template_folder(root=root, name=local.group(1))
        return template_read_folder(folder=folder, slug=local.group(1)), source
    raise ApplicationError("github:// template sources are not available yet.", code="not_supported")


def template_import_job_run(*, job_id: Any) -> TemplateImportJob:
    """Run one import job (idempotent: a finished job is left alone)."""
    with transaction.atomic():
        job = TemplateImportJob.objects.select_for_update().filter(pk=job_id).first()
        if job is None or job.status in (JobStatus.SUCCEEDED, JobStatus.FAILED):
            return job
        job.status = JobStatus.RUNNING
        job.started_at = timezone.now()
        job.save(update_fields=["status", "started_at"])
    try:
        data, recorded_source = _fetch_and_read(job.source)
        template, _ = template_store(data=data, source=recorded_source, replace=job.replace)
    except ApplicationError as exc:
        job.status, job.code, job.error = JobStatus.FAILED, exc.code, exc.message[:1000]
    except Exception:
        logger.exception("template import job %s failed", job.pk)
        job.status, job.code, job.error = (
            JobStatus.FAILED,
            "internal_error",
            "The import failed unexpectedly.",
        )
    else:
        job.status, job.template, job.code, job.error = JobStatus.SUCCEEDED, template, "", ""
    job.finished_at = timezone.now()
    job.save(update_fields=["status", "template", "code", "error", "finished_at"])
    return job


def bundle_import_job_create(
    *, payload: Any, filename: str = "", parent: Workspace | None = None, requested_by: str = ""
) -> BundleImportJob:
    from templates_app.tasks import run_bundle_import

    job = BundleImportJob.objects.create(
        payload=payload, filename=filename[:255], parent=parent, requested_by=requested_by
    )
    job_id = str(job.pk)
    transaction.on_commit(lambda: run_bundle_import.delay(job_id))
    return job


def bundle_import_job_run(*, job_id: Any) -> BundleImportJob | None:
    with transaction.atomic():
        job = BundleImportJob.objects.select_for_update().filter(pk=job_id).first()
        if job is None or job.status in (JobStatus.SUCCEEDED, JobStatus.FAILED):
            return job
        job.status = JobStatus.RUNNING
        job.started_at = timezone.now()
        job.save(update_fields=["status", "started_at"])
    try:
        parent = None
        if job.parent_id is not None:
            parent = Workspace.objects.filter(pk=job.parent_id).first()
            if parent is None:
                raise ApplicationError("The parent workspace no longer exists.", code="invalid_parent")
        result = bundle_import(bundle=job.payload, parent=parent)
    except ApplicationError as exc:
        job.status, job.code, job.error = JobStatus.FAILED, exc.code, exc.message[:1000]
    except Exception:
        logger.exception("bundle import job %s failed", job.pk)
        job.status, job.code, job.error = (
            JobStatus.FAILED,
            "internal_error",
            "The import failed unexpectedly.",
        )
    else:
        job.status = JobStatus.SUCCEEDED
        job.root_id = result.root_id
        job.count = len(result.workspaces)
        job.missing_secrets = result.missing_secrets
    job.payload = None
    job.finished_at = timezone.now()
    job.save()
    return job
