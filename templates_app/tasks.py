"""Celery tasks: thin wrappers taking ids, so a redelivered task finds the job already done."""

from __future__ import annotations

from celery import shared_task

from templates_app import services


@shared_task(name="templates.run_template_import", acks_late=True)
def run_template_import(job_id: str) -> None:
    services.template_import_job_run(job_id=job_id)


@shared_task(name="templates.run_bundle_import", acks_late=True)
def run_bundle_import(job_id: str) -> None:
    services.bundle_import_job_run(job_id=job_id)
