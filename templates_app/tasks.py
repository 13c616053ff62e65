"""Celery tasks: thin wrappers taking ids and the relay's attempt number (common.outbox), so a
redelivered message finds the job claimed or done and does nothing."""

from __future__ import annotations

from celery import shared_task

from templates_app.services import BundleImportRunner, TemplateImportRunner


@shared_task(name="templates.run_template_import", acks_late=True, ignore_result=True)
def run_template_import(job_id: str, attempt: int) -> None:
    TemplateImportRunner.execute(pk=job_id, attempt=int(attempt))


@shared_task(name="templates.run_bundle_import", acks_late=True, ignore_result=True)
def run_bundle_import(job_id: str, attempt: int) -> None:
    BundleImportRunner.execute(pk=job_id, attempt=int(attempt))
