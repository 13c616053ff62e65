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
