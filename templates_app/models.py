"""Workspace templates (with their files), template import jobs, bundle import jobs.

Org templates are folders on disk (ORG_TEMPLATES_DIR), not rows: see `org_templates.py`.
"""

from __future__ import annotations

import uuid
from typing import Any

from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator
from django.db import models
from django.utils import timezone

from common.jobs import Job, JobStatus
from common.outbox import OutboxKind, outbox_index, register
from workspaces.models import Workspace

__all__ = ["BUNDLE_IMPORT", "TEMPLATE_IMPORT", "BundleImportJob", "JobStatus", "TemplateImportJob"]

SLUG_PATTERN = r"^[a-z0-9][a-z0-9._-]{0,127}$"


def validate_template_config(*, config: Any, config_schema: Any) -> dict[str, list[str]]:
    """Errors by field: `config_schema` must be a JSON Schema object and `config` must satisfy it."""
    import jsonschema
    from jsonschema.validators import validator_for

    errors: dict[str, list[str]] = {}
    if not isinstance(config, dict):
        errors["config"] = ["Must be a JSON object."]
    if not isinstance(config_schema, dict):
        errors["config_schema"] = ["Must be a JSON Schema object."]
        return errors
    validator_class = validator_for(config_schema, default=jsonschema.Draft202012Validator)
    try:
        validator_class.check_schema(config_schema)
    except jsonschema.SchemaError as exc:
        errors["config_schema"] = [f"Not a valid JSON Schema: {exc.message}"]
        return errors
    if "config" not in errors:
        problems = sorted(validator_class(config_schema).iter_errors(config), key=lambda e: list(e.path))
        if problems:
            errors["config"] = [
                f"{'/'.join(str(p) for p in problem.path) or '(root)'}: {problem.message}"
                for problem in problems[:20]
            ]
    return errors


class WorkspaceTemplate(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    slug = models.CharField(max_length=128, unique=True, validators=[RegexValidator(SLUG_PATTERN)])
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True, default="")
    runtime = models.CharField(max_length=64, db_index=True)
    tier = models.PositiveSmallIntegerField(
        default=2, validators=[MinValueValidator(1), MaxValueValidator(4)]
    )
    config_schema = models.JSONField(default=dict, blank=True)
    config = models.JSONField(default=dict, blank=True)
    # Where it came from: "local://<dir>", "github://owner/repo#sha", or "admin" (made in the console).
    source = models.CharField(max_length=500, blank=True, default="admin")
    created_at = models.DateTimeField(default=timezone.now, editable=False, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ("-created_at", "-id")

    def __str__(self) -> str:
        return self.slug

    def save(self, *args: Any, **kwargs: Any) -> None:
        # Every write path (admin, API import, sync command) gets the same JSON Schema checks.
        errors = validate_template_config(config=self.config, config_schema=self.config_schema)
        if errors:
            raise ValidationError(errors)
        super().save(*args, **kwargs)

    def clean(self) -> None:
        super().clean()
        from workspaces.services import runtime_normalize

        errors: dict[str, list[str]] = dict(
            validate_template_config(config=self.config, config_schema=self.config_schema)
        )
        if self.runtime and runtime_normalize(self.runtime) is None:
            errors["runtime"] = ["Unknown runtime."]
        if errors:
            raise ValidationError(errors)


class TemplateFile(models.Model):
    """A file of a template folder (prompts, skills), kept with the template as text or base64."""

    class Encoding(models.TextChoices):
        UTF8 = "utf-8"
        BASE64 = "base64"

    id = models.BigAutoField(primary_key=True)
    template = models.ForeignKey(WorkspaceTemplate, on_delete=models.CASCADE, related_name="files")
    path = models.CharField(max_length=1000)
    content = models.TextField(blank=True, default="")
    encoding = models.CharField(max_length=8, choices=Encoding.choices, default=Encoding.UTF8)
    size = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ("path",)
        constraints = [models.UniqueConstraint(fields=["template", "path"], name="uniq_template_file_path")]

    def __str__(self) -> str:
        return self.path


class TemplateImportJob(Job):
    """One `POST /templates/import` (or console import): fetched and stored by a Celery worker."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    source = models.CharField(max_length=500)
    replace = models.BooleanField(default=False)
    template = models.ForeignKey(
        WorkspaceTemplate, null=True, blank=True, on_delete=models.SET_NULL, related_name="import_jobs"
    )

    class Meta:
        ordering = ("-created_at", "-id")
        indexes = [outbox_index("template_import_job_due")]

    def __str__(self) -> str:
        return f"{self.source} ({self.status})"


class BundleImportJob(Job):
    """A bundle uploaded in the admin console, imported by a Celery worker."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    filename = models.CharField(max_length=255, blank=True, default="")
    # The uploaded bundle; cleared once the job has finished so large payloads do not linger.
    payload = models.JSONField(null=True, blank=True)
    parent = models.ForeignKey(Workspace, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    # Schedules keep their `enabled` only when the uploader asked for it (see bundle_import).
    activate = models.BooleanField(default=False)
    root = models.ForeignKey(Workspace, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    count = models.PositiveIntegerField(default=0)
    missing_secrets = models.JSONField(default=list, blank=True)

    class Meta:
        ordering = ("-created_at", "-id")
        indexes = [outbox_index("bundle_import_job_due")]

    def __str__(self) -> str:
        return f"{self.filename or 'bundle'} ({self.status})"


_WAITING = models.Q(status__in=(JobStatus.QUEUED, JobStatus.RUNNING))
TEMPLATE_IMPORT = register(
    OutboxKind(
        label="templates.import",
        model=TemplateImportJob,
        task="templates.run_template_import",
        active=_WAITING,
    )
)
BUNDLE_IMPORT = register(
    OutboxKind(
        label="bundles.import", model=BundleImportJob, task="templates.run_bundle_import", active=_WAITING
    )
)


class WorkspaceOrigin(models.Model):
    """Which workspace template a workspace was made from (the bundle's `template` field).

    Kept here rather than on Workspace so the foundation model stays free of template concerns.
    """

    workspace = models.OneToOneField(
        Workspace, primary_key=True, on_delete=models.CASCADE, related_name="template_origin"
    )
    template_slug = models.CharField(max_length=128)

    def __str__(self) -> str:
        return f"{self.workspace_id} ← {self.template_slug}"


class OrgTemplate(models.Model):
    """Not a table: gives the org templates (folders on disk) a page in the admin console."""

    slug = models.CharField(max_length=128, primary_key=True)

    class Meta:
        managed = False
        verbose_name = "org template"

    def __str__(self) -> str:
        return self.slug
