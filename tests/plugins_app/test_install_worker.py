"""End to end through a real Celery worker process: API → broker → worker → files and record."""

from __future__ import annotations

import hashlib

import pytest

from plugins_app.models import InstalledPlugin
from tests.plugins_app.conftest import SHA, archive_of, plugin_files
from tests.support.factories import bearer, make_admin_token
from tests.support.worker import run_worker, wait_for

pytestmark = pytest.mark.e2e


@pytest.fixture
def plugin_worker(transactional_db, plugin_dirs, fake_github):
    """A worker whose settings (a separate process) point at this test's folders and fake GitHub."""
    env = {
        "PLUGINS_DIR": str(plugin_dirs.registry),
        "PLUGIN_STORAGE_DIR": str(plugin_dirs.storage),
        "GITHUB_API_BASE_URL": fake_github.api,
        "GITHUB_ARCHIVE_BASE_URL": fake_github.archive_base,
        "PLUGIN_FETCH_TIMEOUT_SECONDS": "20",
    }
    with run_worker(env=env) as process:
        yield process


def _settled(workspace, name: str) -> InstalledPlugin | None:
    plugin = InstalledPlugin.objects.filter(workspace=workspace, name=name).first()
    return plugin if plugin and plugin.status != "installing" else None


def test_install_from_local_and_github_through_a_worker(
    api, workspace, plugin_dirs, fake_github, plugin_worker
):
    api.credentials(**bearer(make_admin_token("e2e")))
    url = f"/workspaces/{workspace.pk}/plugins"

    response = api.post(url, {"source": "local://code-review"}, format="json")
    assert response.status_code == 202 and response.json()["status"] == "installing"
    local = wait_for(lambda: _settled(workspace, "code-review"), message="local install")
    assert local.status == "installed", local.error
    tree = plugin_dirs.workspace_dir(workspace) / "code-review"
    source = plugin_dirs.registry / "code-review"
    assert {p.relative_to(tree) for p in tree.rglob("*")} == {
        p.relative_to(source) for p in source.rglob("*")
    }
    assert local.runtimes == ["claude-code", "langgraph"]

    archive = archive_of(plugin_files())
    branch_sha = "e" * 40
    fake_github.repo("acme", "tools", archive, sha=branch_sha, refs={"v1": SHA})
    response = api.post(url, {"source": "github://acme/tools"}, format="json")
    assert response.status_code == 202
    unpinned = wait_for(lambda: _settled(workspace, "tools"), message="github install")
    assert unpinned.status == "installed", unpinned.error
    assert unpinned.resolved_ref == branch_sha  # the default branch's commit
    assert unpinned.sha256 == hashlib.sha256(archive).hexdigest()
    assert (plugin_dirs.workspace_dir(workspace) / "tools" / "skills" / "a.md").read_bytes() == b"# a\n"

    response = api.post(url, {"source": "github://acme/tools#v1", "sha256": "1" * 64}, format="json")
    assert response.status_code == 202
    mismatch = wait_for(lambda: _settled(workspace, "tools"), message="sha256 mismatch")
    assert mismatch.status == "installed"  # the previous tree stays; the failure is reported
    assert "sha256 mismatch" in mismatch.error and mismatch.resolved_ref == branch_sha

    listed = api.get(url).json()
    assert {item["name"]: item["status"] for item in listed} == {
        "tools": "installed",
        "code-review": "installed",
    }


def test_first_install_failure_through_a_worker(api, workspace, plugin_dirs, fake_github, plugin_worker):
    api.credentials(**bearer(make_admin_token("e2e")))
    fake_github.repo("acme", "tools", archive_of(plugin_files()))
    response = api.post(
        f"/workspaces/{workspace.pk}/plugins",
        {"source": "github://acme/tools", "sha256": "2" * 64},
        format="json",
    )
    assert response.status_code == 202
    failed = wait_for(lambda: _settled(workspace, "tools"), message="failed install")
    assert failed.status == "failed" and "sha256 mismatch" in failed.error
    assert not (plugin_dirs.workspace_dir(workspace) / "tools").exists()
    assert list(plugin_dirs.workspace_dir(workspace).iterdir()) == []
