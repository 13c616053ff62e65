"""Admin console: templates (create with JSON Schema checks, import from a source), org
templates (listing and import), bundle upload as a job, and the workspace export action."""

from __future__ import annotations

import io
import json
import zipfile

import pytest
from django.contrib.auth import get_user_model
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import transaction
from django.test import Client

from templates_app.models import BundleImportJob, JobStatus, TemplateImportJob, WorkspaceTemplate
from tests.support.factories import make_workspace
from tests.support.worker import run_due_jobs
from tests.templates_app.conftest import write
from workspaces.models import Workspace, WorkspaceSecret

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff() -> Client:
    user = get_user_model().objects.create_superuser("ops", "ops@example.com", "pw-123456789")
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def run_tasks_inline():
    """The console's jobs run as soon as their request has stored them (relay + worker inline)."""
    from django.db.models.signals import post_save

    from templates_app.models import BundleImportJob, TemplateImportJob

    def run_created(sender, instance, created, **kwargs):
        if created:
            transaction.on_commit(run_due_jobs)

    for model in (TemplateImportJob, BundleImportJob):
        post_save.connect(run_created, sender=model, dispatch_uid=f"inline-{model.__name__}")
    yield
    for model in (TemplateImportJob, BundleImportJob):
        post_save.disconnect(sender=model, dispatch_uid=f"inline-{model.__name__}")


def test_template_pages_and_create_with_schema_check(staff):
    assert staff.get("/admin/templates_app/workspacetemplate/").status_code == 200
    assert staff.get("/admin/templates_app/workspacetemplate/add/").status_code == 200
    form = {
        "slug": "made-here",
        "name": "Made here",
        "description": "",
        "runtime": "langgraph",
        "tier": "2",
        "config_schema": '{"type": "object", "properties": {"n": {"type": "integer"}}}',
        "config": '{"n": "not a number"}',
        "source": "admin",
        "files-TOTAL_FORMS": "1",
        "files-INITIAL_FORMS": "0",
        "files-0-path": "prompt.md",
        "files-0-encoding": "utf-8",
        "files-0-content": "hello",
    }
    response = staff.post("/admin/templates_app/workspacetemplate/add/", form)
    assert response.status_code == 200 and not WorkspaceTemplate.objects.exists()
    form["config"] = '{"n": 3}'
    response = staff.post("/admin/templates_app/workspacetemplate/add/", form)
    assert response.status_code == 302
    template = WorkspaceTemplate.objects.get(slug="made-here")
    assert template.config == {"n": 3} and template.files.get().content == "hello"
    page = staff.get(f"/admin/templates_app/workspacetemplate/{template.pk}/change/")
    assert page.status_code == 200


def test_template_import_from_source(
    staff, templates_root, run_tasks_inline, django_capture_on_commit_callbacks
):
    write(templates_root / "alpha" / "template.yaml", "name: Alpha\nruntime: crewai\n")
    assert staff.get("/admin/templates_app/workspacetemplate/import/").status_code == 200
    bad = staff.post("/admin/templates_app/workspacetemplate/import/", {"source": "ftp://x"})
    assert bad.status_code == 200 and not TemplateImportJob.objects.exists()
    with django_capture_on_commit_callbacks(execute=True):
        response = staff.post("/admin/templates_app/workspacetemplate/import/", {"source": "local://alpha"})
    assert response.status_code == 302
    assert TemplateImportJob.objects.get().status == JobStatus.SUCCEEDED
    assert WorkspaceTemplate.objects.get(slug="alpha").runtime == "crewai"
    assert staff.get("/admin/templates_app/templateimportjob/").status_code == 200


def test_org_templates_listing_and_import(staff, org_root, monkeypatch):
    write(org_root / "tiny" / "org.yaml", "name: Tiny\nworkspaces:\n  - name: A\n    children: [{name: B}]\n")
    write(org_root / "needs-env" / "org.yaml", "name: E\nworkspaces: [{name: '${NOT_SET_ANYWHERE}'}]\n")
    monkeypatch.delenv("NOT_SET_ANYWHERE", raising=False)
    page = staff.get("/admin/templates_app/orgtemplate/")
    assert page.status_code == 200
    assert b"tiny" in page.content and b"NOT_SET_ANYWHERE" in page.content
    assert staff.get("/admin/").status_code == 200
    response = staff.post("/admin/templates_app/orgtemplate/tiny/import/", follow=True)
    assert b"2 workspaces created" in response.content
    assert Workspace.objects.count() == 2
    response = staff.post("/admin/templates_app/orgtemplate/needs-env/import/", follow=True)
    assert b"NOT_SET_ANYWHERE" in response.content
    assert Workspace.objects.count() == 2


def test_bundle_upload_runs_as_a_job(staff, run_tasks_inline, django_capture_on_commit_callbacks):
    host = make_workspace("host")
    bundle = {
        "format": "integrations-bundle",
        "version": 1,
        "workspace": {"name": "up", "secrets": ["KEY"], "children": [{"name": "down"}]},
    }
    assert staff.get("/admin/templates_app/bundleimportjob/add/").status_code == 200
    upload = SimpleUploadedFile("b.json", json.dumps(bundle).encode(), content_type="application/json")
    with django_capture_on_commit_callbacks(execute=True):
        response = staff.post(
            "/admin/templates_app/bundleimportjob/add/", {"bundle": upload, "parent": host.pk}
        )
    assert response.status_code == 302
    job = BundleImportJob.objects.get()
    assert job.status == JobStatus.SUCCEEDED and job.count == 2 and job.payload is None
    assert job.root.parent_id == host.pk and job.filename == "b.json"
    assert job.missing_secrets == [{"workspace_id": str(job.root_id), "key": "KEY"}]
    assert staff.get("/admin/templates_app/bundleimportjob/").status_code == 200
    assert staff.get(f"/admin/templates_app/bundleimportjob/{job.pk}/change/").status_code == 200

    broken = SimpleUploadedFile("x.json", b"{not json", content_type="application/json")
    response = staff.post("/admin/templates_app/bundleimportjob/add/", {"bundle": broken})
    assert response.status_code == 200 and BundleImportJob.objects.count() == 1

    invalid = SimpleUploadedFile("y.json", b'{"format": "nope"}', content_type="application/json")
    with django_capture_on_commit_callbacks(execute=True):
        staff.post("/admin/templates_app/bundleimportjob/add/", {"bundle": invalid})
    failed = BundleImportJob.objects.get(filename="y.json")
    assert failed.status == JobStatus.FAILED and failed.code == "invalid_request"


def test_workspace_export_action(staff):
    root = make_workspace("root")
    make_workspace("kid", parent_id=root.pk)
    WorkspaceSecret.objects.create(workspace=root, key="K", value="hidden-value")
    other = make_workspace("other")
    url = "/admin/workspaces/workspace/"
    page = staff.get(url)
    assert b"export_bundles" in page.content
    response = staff.post(url, {"action": "export_bundles", "_selected_action": [str(root.pk)]})
    assert response.status_code == 200
    assert response["Content-Disposition"].startswith('attachment; filename="bundle-root-')
    bundle = json.loads(response.content)
    assert bundle["workspace"]["children"][0]["name"] == "kid"
    assert b"hidden-value" not in response.content
    response = staff.post(
        url, {"action": "export_bundles", "_selected_action": [str(root.pk), str(other.pk)]}
    )
    with zipfile.ZipFile(io.BytesIO(response.content)) as archive:
        assert len(archive.namelist()) == 2


def test_bundle_upload_activate_checkbox(staff, run_tasks_inline, django_capture_on_commit_callbacks):
    bundle = {
        "format": "integrations-bundle",
        "version": 1,
        "workspace": {
            "name": "timed",
            "schedules": [{"name": "tick", "expression": "* * * * *", "prompt": "go", "enabled": True}],
        },
    }
    page = staff.get("/admin/templates_app/bundleimportjob/add/").content.decode()
    assert 'name="activate"' in page
    for filename, extra, expected in (("off.json", {}, False), ("on.json", {"activate": "on"}, True)):
        upload = SimpleUploadedFile(filename, json.dumps(bundle).encode(), content_type="application/json")
        with django_capture_on_commit_callbacks(execute=True):
            response = staff.post("/admin/templates_app/bundleimportjob/add/", {"bundle": upload, **extra})
        assert response.status_code == 302
        job = BundleImportJob.objects.get(filename=filename)
        assert job.status == JobStatus.SUCCEEDED and job.activate is expected
        assert job.root.schedules.get().enabled is expected
