"""Import jobs on a real Celery worker (separate process, committed data)."""

from __future__ import annotations

import pytest

from templates_app.models import JobStatus, TemplateImportJob, WorkspaceTemplate
from tests.support.factories import bearer, make_admin_token
from tests.support.worker import run_worker, wait_for
from tests.templates_app.conftest import write


@pytest.mark.e2e
def test_local_template_import_runs_on_a_worker(transactional_db, api, tmp_path, settings):
    root = tmp_path / "templates"
    write(root / "worker-made" / "template.yaml", "name: From the worker\nruntime: autogen\ntier: 1\n")
    write(root / "worker-made" / "notes.md", "kept with the template")
    settings.TEMPLATES_DIR = root
    api.credentials(**bearer(make_admin_token("root")))
    with run_worker(env={"TEMPLATES_DIR": str(root)}):
        job = api.post("/templates/import", {"source": "local://worker-made"}, format="json").json()
        assert job["status"] == "queued"

        def finished():
            body = api.get(f"/templates/imports/{job['id']}").json()
            return body if body["status"] in ("succeeded", "failed") else None

        body = wait_for(finished, timeout=30, message="template import job")
    assert body["status"] == "succeeded", body
    template = WorkspaceTemplate.objects.get(pk=body["template_id"])
    assert (template.slug, template.runtime, template.tier) == ("worker-made", "autogen", 1)
    assert template.files.get().content == "kept with the template"
    assert TemplateImportJob.objects.get().status == JobStatus.SUCCEEDED


@pytest.mark.e2e
def test_bundle_upload_job_runs_on_a_worker(transactional_db):
    from templates_app.models import BundleImportJob
    from templates_app.services import bundle_import_job_create
    from workspaces.models import Workspace

    bundle = {
        "format": "integrations-bundle",
        "version": 1,
        "workspace": {"name": "uploaded", "secrets": ["TOKEN"], "children": [{"name": "kid"}]},
    }
    with run_worker():
        job = bundle_import_job_create(payload=bundle, filename="b.json", requested_by="ops")

        def finished():
            job.refresh_from_db()
            return job.status in (JobStatus.SUCCEEDED, JobStatus.FAILED)

        wait_for(finished, timeout=30, message="bundle import job")
    job = BundleImportJob.objects.get(pk=job.pk)
    assert job.status == JobStatus.SUCCEEDED and job.count == 2 and job.payload is None
    assert Workspace.objects.get(pk=job.root_id).name == "uploaded"
    assert job.missing_secrets == [{"workspace_id": str(job.root_id), "key": "TOKEN"}]
