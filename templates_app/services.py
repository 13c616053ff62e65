"""Template, org and bundle writes. Views, admin, commands and tasks all call these."""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import transaction

from common.errors import ApplicationError, Conflict
from common.fetch import FetchError, parse_source, remove_stale_staging, stage_tree
from common.jobs import JobRunner
from common.safe_yaml import MAX_YAML_BYTES
from templates_app.bundles import BundleImportResult, bundle_import
from templates_app.folders import (
    MAX_TEMPLATE_FILES,
    MAX_TEMPLATE_FILES_BYTES,
    TemplateData,
    local_template_folder,
    template_read_folder,
)
from templates_app.models import (
    BUNDLE_IMPORT,
    TEMPLATE_IMPORT,
    BundleImportJob,
    TemplateFile,
    TemplateImportJob,
    WorkspaceTemplate,
)
from templates_app.org import OrgImportResult, org_import
from workspaces.models import Workspace

logger = logging.getLogger(__name__)

__all__ = [
    "BundleImportResult",
    "BundleImportRunner",
    "OrgImportResult",
    "TemplateImportRunner",
    "bundle_import",
    "bundle_import_job_create",
    "org_import",
    "template_import_job_create",
    "template_store",
    "template_sync_dir",
]


@transaction.atomic
def template_store(*, data: TemplateData, source: str, replace: bool) -> tuple[WorkspaceTemplate, bool]:
    """Create the template, or replace an existing slug's fields and files when `replace`.

    Returns (template, created). An existing slug without `replace` is a 409 `conflict`, unless
    it already holds exactly this template from the same source (importing what
    `sync_templates` stored, or the same import twice, is a no-op rather than an error).
    """
    existing = WorkspaceTemplate.objects.select_for_update().filter(slug=data.slug).first()
    if existing is not None and not replace:
        if _template_matches(existing, data=data, source=source):
            return existing, False
        raise Conflict(
            f"A template with slug {data.slug!r} already exists with other content; "
            "pass replace: true to update it."
        )
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


def _template_matches(template: WorkspaceTemplate, *, data: TemplateData, source: str) -> bool:
    """Does the stored template hold exactly `data` from `source` (fields and every file)?"""
    fields = ("name", "description", "runtime", "tier", "config", "config_schema")
    if template.source != source or any(getattr(template, key) != getattr(data, key) for key in fields):
        return False
    stored = sorted(template.files.values_list("path", "content", "encoding"))
    return stored == sorted((f.path, f.content, f.encoding) for f in data.files)


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
    """`local://<dir>` or `github://owner/repo[/path][#ref]` (the fetch pipeline's grammar), else 400."""
    return str(parse_source(source))


def template_import_job_create(
    *, source: str, replace: bool = False, requested_by: str = ""
) -> TemplateImportJob:
    """Record the job; the relay publishes it once the row is committed."""
    return TemplateImportJob.objects.create(
        source=template_source_check(source), replace=replace, requested_by=requested_by
    )


def _fetch_and_read(source: str) -> tuple[TemplateData, str]:
    """Fetch through the shared pipeline into a staging folder, read it, and drop the folder.

    Returns the template data and the source as recorded (github: pinned to the commit sha).
    """
    spec = parse_source(source)
    staging_parent = Path(settings.VAR_DIR) / "template-staging"
    # Staging folders left by a worker killed mid-fetch are swept before each fetch.
    remove_stale_staging(staging_parent, older_than_seconds=2 * settings.PLUGIN_FETCH_TIMEOUT_SECONDS)
    try:
        with stage_tree(
            source=spec,
            local_base=Path(settings.TEMPLATES_DIR),
            staging_parent=staging_parent,
            max_bytes=MAX_TEMPLATE_FILES_BYTES + MAX_YAML_BYTES,
            max_files=MAX_TEMPLATE_FILES + 1,
            timeout=settings.PLUGIN_FETCH_TIMEOUT_SECONDS,
        ) as staged:
            data = template_read_folder(folder=staged.path, slug=spec.name)
            resolved = staged.result.resolved_ref
    except FetchError as exc:
        raise ApplicationError(
            f"The template could not be fetched: {exc.reason}", code="fetch_failed"
        ) from None
    if spec.scheme == "github":
        return data, str(dataclasses.replace(spec, ref=resolved))
    return data, str(spec)


class TemplateImportRunner(JobRunner):
    """Fetch, read and store one template (an import job)."""

    kind = TEMPLATE_IMPORT
    crash_message = "The import failed unexpectedly."

    def run(self, job: TemplateImportJob) -> None:
        data, recorded_source = _fetch_and_read(job.source)
        job.template, _ = template_store(data=data, source=recorded_source, replace=job.replace)


def bundle_import_job_create(
    *,
    payload: Any,
    filename: str = "",
    parent: Workspace | None = None,
    activate: bool = False,
    requested_by: str = "",
) -> BundleImportJob:
    """Record the job; the relay publishes it once the row is committed."""
    return BundleImportJob.objects.create(
        payload=payload, filename=filename[:255], parent=parent, activate=activate, requested_by=requested_by
    )


class BundleImportRunner(JobRunner):
    """Import one uploaded bundle; the payload is dropped once the job has finished."""

    kind = BUNDLE_IMPORT
    crash_message = "The import failed unexpectedly."

    def run(self, job: BundleImportJob) -> None:
        parent = None
        if job.parent_id is not None:
            parent = Workspace.objects.filter(pk=job.parent_id).first()
            if parent is None:
                raise ApplicationError("The parent workspace no longer exists.", code="invalid_parent")
        result = bundle_import(bundle=job.payload, parent=parent, activate=job.activate)
        job.root_id = result.root_id
        job.count = len(result.workspaces)
        job.missing_secrets = result.missing_secrets

    def succeed(self, job: BundleImportJob) -> None:
        job.payload = None
        super().succeed(job)

    def fail(self, job: BundleImportJob, *, code: str, message: str) -> None:
        job.payload = None
        super().fail(job, code=code, message=message)
