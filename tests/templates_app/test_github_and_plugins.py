"""Template import from a fake GitHub on 127.0.0.1 through the shared fetch pipeline, and
plugin installs queued by org and bundle imports."""

from __future__ import annotations

import io
import tarfile

import pytest

from plugins_app.selectors import installed_plugin_list
from templates_app.models import JobStatus, TemplateImportJob, WorkspaceTemplate
from tests.support.factories import make_workspace
from tests.support.fake_http import FakeResponse, json_response
from tests.support.worker import run_due_jobs
from workspaces.models import Workspace

pytestmark = pytest.mark.django_db


ORG = """
name: Plugged
defaults: {plugins: [local://web-search]}
workspaces:
  - name: root
    plugins: [local://meeting-notes, local://web-search]
    children:
      - {name: kid, plugins: ["github://acme/tools#v1"]}
"""


def test_org_import_queues_plugin_installs_after_commit(
    as_admin, queued_installs, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = as_admin.post("/org/import", {"org_yaml": ORG}, format="json")
        assert response.status_code == 201, response.json()
    for callback in callbacks:
        callback()
    assert len(queued_installs) == 4
    root = Workspace.objects.get(name="root")
    kid = Workspace.objects.get(name="kid")
    assert sorted(p.name for p in installed_plugin_list(workspace=root)) == ["meeting-notes", "web-search"]
    assert {(p.name, p.source, p.status) for p in installed_plugin_list(workspace=kid)} == {
        ("web-search", "local://web-search", "installing"),
        ("tools", "github://acme/tools#v1", "installing"),
    }


def test_bad_plugin_source_names_the_node_and_creates_nothing(as_admin, queued_installs):
    text = ORG.replace("github://acme/tools#v1", "ftp://nope")
    response = as_admin.post("/org/import", {"org_yaml": text}, format="json")
    assert response.status_code == 400
    assert "workspaces[0].children[0]" in response.json()["error"]
    assert not Workspace.objects.exists() and queued_installs == []


def test_bundle_round_trip_queues_plugins(as_admin, queued_installs, django_capture_on_commit_callbacks):
    from plugins_app.services import plugin_install_bulk_request

    root = make_workspace("root")
    kid = make_workspace("kid", parent_id=root.pk)
    plugin_install_bulk_request(requests=[(root, "local://web-search"), (kid, "github://acme/tools#v1")])
    bundle = as_admin.get(f"/bundles/export/{root.pk}").json()
    assert bundle["workspace"]["plugins"] == [{"name": "web-search", "source": "local://web-search"}]
    assert bundle["workspace"]["children"][0]["plugins"] == [
        {"name": "tools", "source": "github://acme/tools#v1"}
    ]
    queued_installs.clear()
    with django_capture_on_commit_callbacks(execute=True):
        body = as_admin.post("/bundles/import", bundle, format="json").json()
    assert len(queued_installs) == 2
    again = as_admin.get(f"/bundles/export/{body['root_id']}").json()
    assert again["workspace"]["plugins"] == bundle["workspace"]["plugins"]
    assert again["workspace"]["children"][0]["plugins"] == bundle["workspace"]["children"][0]["plugins"]


# --- Template import from a fake GitHub ------------------------------------------------------

SHA = "a" * 40
SHA2 = "b" * 40


def _archive(files: dict[str, str], top: str = "acme-agent-template-aaaaaaa") -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(f"{top}/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


@pytest.fixture
def github(fake_http, settings):
    settings.GITHUB_API_BASE_URL = fake_http.url + "/api"
    settings.GITHUB_ARCHIVE_BASE_URL = fake_http.url + "/codeload"

    def serve(sha: str, name: str) -> None:
        archive = _archive(
            {"template.yaml": f"name: {name}\nruntime: autogen\ntier: 3\n", "prompts/p.md": name}
        )
        fake_http.route(
            "GET", f"/codeload/acme/agent-template/tar.gz/{sha}", lambda r: FakeResponse(200, archive, {})
        )

    fake_http.route("GET", "/api/repos/acme/agent-template", json_response({"default_branch": "main"}))
    fake_http.route("GET", "/api/repos/acme/agent-template/commits/main", json_response({"sha": SHA}))
    fake_http.route("GET", "/api/repos/acme/agent-template/commits/v2", json_response({"sha": SHA2}))
    serve(SHA, "From GitHub")
    serve(SHA2, "From GitHub v2")
    return fake_http


def test_import_from_fake_github_conflict_and_replace(as_admin, github):
    job = as_admin.post("/templates/import", {"source": "github://acme/agent-template"}, format="json").json()
    run_due_jobs()
    done = as_admin.get(f"/templates/imports/{job['id']}").json()
    assert done["status"] == "succeeded", done
    template = WorkspaceTemplate.objects.get(pk=done["template_id"])
    assert (template.slug, template.name, template.runtime) == ("agent-template", "From GitHub", "autogen")
    assert template.source == f"github://acme/agent-template#{SHA}"
    assert template.files.get().content == "From GitHub"

    again = as_admin.post(
        "/templates/import", {"source": "github://acme/agent-template#v2"}, format="json"
    ).json()
    run_due_jobs()
    conflict = as_admin.get(f"/templates/imports/{again['id']}").json()
    assert conflict["status"] == "failed" and conflict["code"] == "conflict"

    body = {"source": "github://acme/agent-template#v2", "replace": True}
    third = as_admin.post("/templates/import", body, format="json").json()
    run_due_jobs()
    assert TemplateImportJob.objects.get(pk=third["id"]).status == JobStatus.SUCCEEDED
    template.refresh_from_db()
    assert template.name == "From GitHub v2" and template.source == f"github://acme/agent-template#{SHA2}"


def test_github_archive_without_manifest_fails_the_job(as_admin, fake_http, settings):
    settings.GITHUB_API_BASE_URL = fake_http.url + "/api"
    settings.GITHUB_ARCHIVE_BASE_URL = fake_http.url + "/codeload"
    fake_http.route("GET", "/api/repos/acme/empty/commits/x", json_response({"sha": SHA}))
    archive = _archive({"README.md": "no manifest"}, top="acme-empty-aaaaaaa")
    fake_http.route("GET", f"/codeload/acme/empty/tar.gz/{SHA}", lambda r: FakeResponse(200, archive, {}))
    job = as_admin.post("/templates/import", {"source": "github://acme/empty#x"}, format="json").json()
    run_due_jobs()
    failed = as_admin.get(f"/templates/imports/{job['id']}").json()
    assert failed["status"] == "failed" and "template.yaml" in failed["error"]
    assert not WorkspaceTemplate.objects.exists()


def test_github_fetch_failure_is_reported(as_admin, fake_http, settings):
    settings.GITHUB_API_BASE_URL = fake_http.url + "/api"
    settings.GITHUB_ARCHIVE_BASE_URL = fake_http.url + "/codeload"
    fake_http.route("GET", "/api/repos/acme/gone/commits/x", lambda r: FakeResponse(404, b"{}", {}))
    job = as_admin.post("/templates/import", {"source": "github://acme/gone#x"}, format="json").json()
    run_due_jobs()
    failed = as_admin.get(f"/templates/imports/{job['id']}").json()
    assert failed["status"] == "failed" and failed["code"] == "fetch_failed"


def test_import_of_a_folder_of_a_repository(as_admin, fake_http, settings, tmp_path):
    """`github://owner/repo/<path>#ref`: slug = last segment, recorded source keeps the path,
    only the folder is read, and links elsewhere in the repository do not matter."""
    from tests.support.git_archive import git_archive

    repo = git_archive(
        tmp_path / "git",
        files={
            "templates/writer/template.yaml": b"name: Writer\nruntime: autogen\n",
            "templates/writer/AGENTS.md": b"write well",
            "templates/other/template.yaml": b"name: Other\n",
        },
        symlinks={"templates/writer/CLAUDE.md": "AGENTS.md", "docs/passwd": "/etc/passwd"},
    )
    settings.GITHUB_API_BASE_URL = fake_http.url + "/api"
    settings.GITHUB_ARCHIVE_BASE_URL = fake_http.url + "/codeload"
    fake_http.route("GET", "/api/repos/acme/mono/commits/v1", json_response({"sha": repo.sha}))
    fake_http.route(
        "GET", f"/codeload/acme/mono/tar.gz/{repo.sha}", lambda r: FakeResponse(200, repo.data, {})
    )
    job = as_admin.post(
        "/templates/import", {"source": "github://acme/mono/templates/writer#v1"}, format="json"
    )
    assert job.status_code == 202
    assert job.json()["source"] == "github://acme/mono/templates/writer#v1"
    run_due_jobs()
    done = as_admin.get(f"/templates/imports/{job.json()['id']}").json()
    assert done["status"] == "succeeded", done
    template = WorkspaceTemplate.objects.get(pk=done["template_id"])
    assert (template.slug, template.name) == ("writer", "Writer")
    assert template.source == f"github://acme/mono/templates/writer#{repo.sha}"
    assert {f.path: f.content for f in template.files.all()} == {
        "AGENTS.md": "write well",
        "CLAUDE.md": "write well",
    }

    missing = as_admin.post(
        "/templates/import", {"source": "github://acme/mono/templates/none#v1"}, format="json"
    )
    run_due_jobs()
    failed = as_admin.get(f"/templates/imports/{missing.json()['id']}").json()
    assert failed["status"] == "failed" and "'templates/none' does not exist" in failed["error"]

    escaping = as_admin.post("/templates/import", {"source": "github://acme/mono/../x#v1"}, format="json")
    assert escaping.status_code == 400 and escaping.json()["code"] == "invalid_path"
