"""Workspace templates: sync from TEMPLATES_DIR, listing, JSON Schema checks, and import jobs
(`local://`), with conflict without `replace` and update with it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from django.core.exceptions import ValidationError
from django.core.management import call_command

from common.outbox import relay_pass
from templates_app import services
from templates_app.models import TemplateFile, TemplateImportJob, WorkspaceTemplate
from tests.support.worker import run_due_jobs
from tests.templates_app.conftest import REPO, write

pytestmark = pytest.mark.django_db

MANIFEST = """
name: {name}
description: a test template
runtime: {runtime}
tier: 2
config: {{depth: 2}}
config_schema:
  type: object
  properties:
    depth: {{type: integer, maximum: 5}}
"""


def _template(root: Path, slug: str, name: str = "T", runtime: str = "langgraph") -> Path:
    folder = root / slug
    write(folder / "template.yaml", MANIFEST.format(name=name, runtime=runtime))
    write(folder / "prompts" / "system.md", "You are helpful.\n")
    (folder / "bin.dat").write_bytes(b"\xff\x00\xfe")
    return folder


def test_sync_shipped_examples():
    report = services.template_sync_dir(root=REPO / "workspace-templates")
    assert not report.failed
    assert sorted(report.created) == ["coder", "researcher", "support-agent"]
    coder = WorkspaceTemplate.objects.get(slug="coder")
    assert coder.runtime == "claude-code" and coder.tier == 3 and coder.source == "local://coder"
    assert [f.path for f in coder.files.all()] == ["skills/tests.md"]
    again = services.template_sync_dir(root=REPO / "workspace-templates")
    assert sorted(again.updated) == ["coder", "researcher", "support-agent"] and not again.created


def test_sync_command_keeps_files_and_reports_broken(templates_root, capsys):
    _template(templates_root, "alpha", runtime="claude_code")
    write(templates_root / "broken" / "template.yaml", "name: x\ntier: 9\n")
    write(templates_root / "unsafe" / "template.yaml", "name: !!python/object:os.system {}\n")
    call_command("sync_templates")
    out = capsys.readouterr()
    assert "created alpha" in out.out
    assert "broken" in out.err and "unsafe" in out.err
    alpha = WorkspaceTemplate.objects.get(slug="alpha")
    assert alpha.runtime == "claude-code"
    files = {f.path: f for f in alpha.files.all()}
    assert files["prompts/system.md"].content == "You are helpful.\n"
    assert files["bin.dat"].encoding == "base64" and files["bin.dat"].size == 3
    assert not WorkspaceTemplate.objects.filter(slug__in=["broken", "unsafe"]).exists()


def test_folder_with_symlink_is_refused(templates_root, tmp_path):
    folder = _template(templates_root, "linked")
    outside = write(tmp_path / "secret.txt", "nope")
    os.symlink(outside, folder / "leak.txt")
    report = services.template_sync_dir()
    assert "linked" in report.failed
    assert not WorkspaceTemplate.objects.exists()


def test_config_and_schema_are_validated_on_save():
    template = WorkspaceTemplate(slug="x", name="X", runtime="langgraph", config_schema={"type": 12})
    with pytest.raises(ValidationError) as caught:
        template.save()
    assert "config_schema" in caught.value.message_dict
    template = WorkspaceTemplate(
        slug="x",
        name="X",
        runtime="langgraph",
        config={"depth": "deep"},
        config_schema={"type": "object", "properties": {"depth": {"type": "integer"}}},
    )
    with pytest.raises(ValidationError) as caught:
        template.full_clean()
    assert "config" in caught.value.message_dict
    template.config = {"depth": 1}
    template.save()


def test_list_filter_and_shape(as_admin, django_assert_num_queries):
    services.template_sync_dir(root=REPO / "workspace-templates")
    as_admin.get("/templates")
    with django_assert_num_queries(2):  # auth + one page query
        response = as_admin.get("/templates")
    assert response.status_code == 200
    items = response.json()
    assert len(items) == 3
    assert set(items[0]) == {
        "id",
        "slug",
        "name",
        "description",
        "runtime",
        "tier",
        "config_schema",
        "config",
        "files",
        "source",
        "created_at",
        "updated_at",
    }
    researcher = next(item for item in items if item["slug"] == "researcher")
    assert researcher["files"] == 1 and researcher["config"]["max_sources"] == 10
    only = as_admin.get("/templates?runtime=claude_code").json()
    assert [item["slug"] for item in only] == ["coder"]
    assert as_admin.get("/templates?runtime=nothing").json() == []
    page = as_admin.get("/templates?limit=2")
    assert len(page.json()) == 2 and 'rel="next"' in page["Link"]
    assert as_admin.get("/templates?limit=0").json()["code"] == "invalid_parameter"


def test_import_local_conflict_and_replace(as_admin, templates_root, django_capture_on_commit_callbacks):
    _template(templates_root, "alpha", name="First")
    response = as_admin.post("/templates/import", {"source": "local://alpha"}, format="json")
    assert response.status_code == 202
    job = response.json()
    assert job["status"] == "queued" and job["source"] == "local://alpha" and job["template_id"] is None
    run_due_jobs()
    done = as_admin.get(f"/templates/imports/{job['id']}").json()
    assert done["status"] == "succeeded" and done["code"] is None and done["error"] is None
    template = WorkspaceTemplate.objects.get(slug="alpha")
    assert done["template_id"] == str(template.pk) and template.name == "First"
    assert template.files.count() == 2

    _template(templates_root, "alpha", name="Second")
    (templates_root / "alpha" / "bin.dat").unlink()
    second = as_admin.post("/templates/import", {"source": "local://alpha"}, format="json").json()
    run_due_jobs()
    failed = as_admin.get(f"/templates/imports/{second['id']}").json()
    assert failed["status"] == "failed" and failed["code"] == "conflict" and failed["template_id"] is None
    assert WorkspaceTemplate.objects.get(slug="alpha").name == "First"

    third = as_admin.post(
        "/templates/import", {"source": "local://alpha", "replace": True}, format="json"
    ).json()
    run_due_jobs()
    replaced = as_admin.get(f"/templates/imports/{third['id']}").json()
    assert replaced["status"] == "succeeded" and replaced["template_id"] == str(template.pk)
    template.refresh_from_db()
    assert template.name == "Second"
    assert sorted(TemplateFile.objects.filter(template=template).values_list("path", flat=True)) == [
        "prompts/system.md"
    ]


def test_importing_what_sync_templates_stored_is_not_a_conflict(as_admin, templates_root):
    """The README's order (sync_templates, then import the same folder) used to fail with a
    conflict: an identical template from the same source is now a no-op success."""
    _template(templates_root, "alpha", name="First")
    call_command("sync_templates")
    template = WorkspaceTemplate.objects.get(slug="alpha")
    stamp = template.updated_at
    job = as_admin.post("/templates/import", {"source": "local://alpha"}, format="json").json()
    run_due_jobs()
    done = as_admin.get(f"/templates/imports/{job['id']}").json()
    assert done["status"] == "succeeded" and done["template_id"] == str(template.pk)
    template.refresh_from_db()
    assert template.updated_at == stamp  # nothing was rewritten

    # One changed byte in one file is other content: a conflict that says how to replace.
    (templates_root / "alpha" / "prompts" / "system.md").write_text("changed")
    changed = as_admin.post("/templates/import", {"source": "local://alpha"}, format="json").json()
    run_due_jobs()
    failed = as_admin.get(f"/templates/imports/{changed['id']}").json()
    assert failed["status"] == "failed" and failed["code"] == "conflict"
    assert "replace: true" in failed["error"]


def test_import_job_is_stored_for_the_relay(as_admin, templates_root, broker):
    job = as_admin.post("/templates/import", {"source": "local://alpha"}, format="json").json()
    assert job["status"] == "queued"
    assert relay_pass() == 1  # published once, with its attempt number
    assert relay_pass() == 0
    assert [(m["headers"]["task"], m["args"]) for m in broker.messages()] == [
        ("templates.run_template_import", [job["id"], 1])
    ]


@pytest.mark.parametrize(
    "body",
    [
        {"source": "http://example.com/x"},
        {"source": "local://../etc"},
        {"source": "local://Bad Name"},
        {"source": "github://owner"},
        {},
    ],
)
def test_import_bad_sources(as_admin, body):
    response = as_admin.post("/templates/import", body, format="json")
    assert response.status_code == 400
    assert not TemplateImportJob.objects.exists()


def test_import_unknown_local_folder_fails_the_job(as_admin, templates_root):
    job = as_admin.post("/templates/import", {"source": "local://missing"}, format="json").json()
    run_due_jobs()
    failed = as_admin.get(f"/templates/imports/{job['id']}").json()
    assert failed["status"] == "failed" and failed["code"] == "fetch_failed"


def test_unknown_job_is_404(as_admin):
    assert as_admin.get("/templates/imports/00000000-0000-0000-0000-000000000000").status_code == 404
    assert as_admin.get("/templates/imports/nope").status_code == 404
