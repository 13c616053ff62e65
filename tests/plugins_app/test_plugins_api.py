"""The eight plugin endpoints (SPEC §6): registry, install, list, uninstall, download, filters."""

from __future__ import annotations

import io
import json
import tarfile

import pytest

from common.outbox import relay_pass
from plugins_app import services
from plugins_app.models import InstalledPlugin
from tests.plugins_app.conftest import SHA, archive_of, plugin_files
from tests.plugins_app.helpers import install_now
from tests.support.factories import bearer, make_workspace, make_workspace_token
from tests.support.fake_http import FakeResponse
from tests.support.worker import run_due_jobs

pytestmark = pytest.mark.django_db


def names(response) -> list[str]:
    return [item["name"] for item in response.json()]


# --- registry ------------------------------------------------------------------------------------


def test_registry_lists_example_plugins_without_auth(api, plugin_dirs):
    response = api.get("/plugins")
    assert response.status_code == 200
    assert names(response) == ["code-review", "meeting-notes", "web-search"]
    first = response.json()[0]
    assert set(first) == {"name", "version", "description", "author", "tags", "runtimes", "skills", "source"}
    assert first["source"] == "local://code-review"
    assert first["runtimes"] == ["claude-code", "langgraph"]
    assert api.get("/plugins/").status_code == 200


@pytest.mark.parametrize(
    ("runtime", "expected"),
    [
        ("claude_code", ["code-review", "web-search"]),
        ("claude-code", ["code-review", "web-search"]),
        ("CREWAI", ["meeting-notes", "web-search"]),
        ("external", ["web-search"]),  # empty runtimes fits every runtime
    ],
)
def test_registry_runtime_filter(api, plugin_dirs, runtime, expected):
    assert names(api.get("/plugins", {"runtime": runtime})) == expected


def test_registry_skips_invalid_folders_and_paginates(api, plugin_dirs):
    (plugin_dirs.registry / "broken").mkdir()
    (plugin_dirs.registry / "broken" / "plugin.yaml").write_text("a: &x 1\nb: *x\n")
    (plugin_dirs.registry / "no-manifest").mkdir()
    first = api.get("/plugins", {"limit": 2})
    assert names(first) == ["code-review", "meeting-notes"]
    link = first.headers["Link"]
    assert link.endswith('>; rel="next"')
    second = api.get(link[1 : link.index(">")])
    assert names(second) == ["web-search"] and "Link" not in second.headers
    assert api.get("/plugins", {"limit": 0}).json()["code"] == "invalid_parameter"
    for cursor in ("!!!", "a", "_w", "%%%"):  # not urlsafe base64 (or not UTF-8): 400, not page one
        bad = api.get("/plugins", {"cursor": cursor})
        assert bad.status_code == 400 and bad.json()["code"] == "invalid_parameter", cursor
    assert api.get("/plugins", {"limit": 201}).status_code == 400


def test_sources(api):
    response = api.get("/plugins/sources")
    assert response.status_code == 200 and response.json() == {"schemes": ["github", "local"]}


def test_available_is_filtered_by_workspace_runtime(api, plugin_dirs, admin_token):
    crew = make_workspace("crew", runtime="crewai")
    token = make_workspace_token(crew)
    response = api.get(f"/workspaces/{crew.pk}/plugins/available", **bearer(token))
    assert response.status_code == 200
    assert names(response) == ["meeting-notes", "web-search"]
    claude = make_workspace("claude", runtime="claude-code")
    response = api.get(f"/workspaces/{claude.pk}/plugins/available/", **bearer(admin_token))
    assert names(response) == ["code-review", "web-search"]


# --- install requests ------------------------------------------------------------------------------


def test_install_answers_202_and_is_stored_for_the_relay(as_agent, workspace, plugin_dirs):
    response = as_agent.post(f"/workspaces/{workspace.pk}/plugins", {"source": "local://web-search"})
    assert response.status_code == 202
    body = response.json()
    assert body["status"] == "installing" and body["name"] == "web-search"
    assert body["source"] == "local://web-search" and body["sha256"] is None
    plugin = InstalledPlugin.objects.get()
    assert (plugin.relay_due_at is not None, plugin.publish_attempt) == (True, 0)  # due, not yet sent


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"source": "ftp://x"}, "invalid_request"),
        ({"source": "local://not-in-registry"}, "invalid_request"),
        ({"source": "github://acme/tools#-x"}, "invalid_request"),
        ({"source": "github://acme/tools#a%20b"}, "invalid_request"),
        ({"source": "local://web-search", "sha256": "abc"}, "invalid_request"),
        ({"source": "local://web-search", "status": "installed"}, "unknown_field"),
        ({}, "invalid_request"),
    ],
)
def test_install_refuses_bad_requests(as_agent, workspace, plugin_dirs, body, code):
    response = as_agent.post(f"/workspaces/{workspace.pk}/plugins", body, format="json")
    assert response.status_code == 400
    assert response.json()["code"] == code
    assert not InstalledPlugin.objects.exists()


def _padded_body(size: int) -> bytes:
    prefix = b'{"source": "local://web-search"'
    body = prefix + b" " * (size - len(prefix) - 1) + b"}"
    assert len(body) == size
    return body


def test_install_body_limit_edge(as_agent, workspace, plugin_dirs):
    url = f"/workspaces/{workspace.pk}/plugins"
    exact = as_agent.post(url, _padded_body(64 * 1024), content_type="application/json")
    assert exact.status_code == 202, exact.json()
    over = as_agent.post(url, _padded_body(64 * 1024 + 1), content_type="application/json")
    assert over.status_code == 413
    assert over.json()["code"] == "payload_too_large"


def test_bulk_request_creates_updates_and_publishes_once_per_record(
    workspace, other_workspace, plugin_dirs, broker
):
    existing = install_now(workspace, "local://web-search")
    plugins = services.plugin_install_bulk_request(
        requests=[
            (workspace, "local://web-search"),
            (workspace, "github://acme/tools#v1"),
            (other_workspace, "local://web-search"),
            (other_workspace, "local://web-search"),
        ]
    )
    assert [(p.workspace_id, p.name, p.status) for p in plugins] == [
        (workspace.pk, "web-search", "installing"),
        (workspace.pk, "tools", "installing"),
        (other_workspace.pk, "web-search", "installing"),
    ]
    assert plugins[0].pk == existing.pk
    assert relay_pass() == 3  # one task per record, then nothing more
    assert relay_pass() == 0
    assert sorted(m["args"][0] for m in broker.messages()) == sorted(str(p.pk) for p in plugins)
    assert InstalledPlugin.objects.count() == 3
    with pytest.raises(Exception) as caught:
        services.plugin_install_bulk_request(requests=[(workspace, "nope://x")])
    assert caught.value.status_code == 400
    assert services.plugin_install_bulk_request(requests=[]) == []


# --- list, reinstall, uninstall, download ---------------------------------------------------------------


def test_list_shape_and_constant_query_count(
    as_agent, workspace, plugin_dirs, django_assert_num_queries, settings
):
    url = f"/workspaces/{workspace.pk}/plugins"
    install_now(workspace, "local://web-search")
    # Count the queries of one page, then with more rows.
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    as_agent.get(url)  # warm-up: the token's last_used_at is written at most once a minute
    with CaptureQueriesContext(connection) as one:
        response = as_agent.get(url)
    body = response.json()
    assert body[0]["status"] == "installed" and body[0]["supported_on_runtime"] is True
    assert body[0]["installed_at"].endswith("Z")
    install_now(workspace, "local://code-review")
    install_now(workspace, "local://meeting-notes")
    with django_assert_num_queries(len(one.captured_queries)):
        response = as_agent.get(url)
    assert names(response) == ["meeting-notes", "code-review", "web-search"]  # newest first
    by_name = {item["name"]: item for item in response.json()}
    assert by_name["code-review"]["supported_on_runtime"] is True  # langgraph workspace
    assert by_name["meeting-notes"]["supported_on_runtime"] is False


def test_reinstall_replaces_only_after_staging_and_old_tree_survives_failure(
    as_agent, workspace, plugin_dirs, fake_github
):
    tree = plugin_dirs.workspace_dir(workspace) / "tools"
    fake_github.repo("acme", "tools", archive_of(plugin_files({"v1.txt": b"one"})))
    first = install_now(workspace, "github://acme/tools")
    assert first.status == "installed" and (tree / "v1.txt").exists()

    seen_during_fetch: list[bool] = []

    def serve_v2(request):
        seen_during_fetch.append((tree / "v1.txt").exists())
        return FakeResponse(200, archive_of(plugin_files({"v2.txt": b"two"})))

    v2_sha = "b" * 40
    fake_github.repo("acme", "tools", b"", refs={"v2": v2_sha})
    fake_github.server.route("GET", f"/codeload/acme/tools/tar.gz/{v2_sha}", serve_v2)
    second = install_now(workspace, "github://acme/tools#v2")
    assert seen_during_fetch == [True]  # the old tree was still in place while fetching
    assert second.status == "installed" and second.resolved_ref == v2_sha
    assert (tree / "v2.txt").exists() and not (tree / "v1.txt").exists()

    broken_sha = "c" * 40
    fake_github.repo("acme", "tools", b"", refs={"v3": broken_sha})
    fake_github.server.route(
        "GET", f"/codeload/acme/tools/tar.gz/{broken_sha}", lambda r: FakeResponse(200, b"garbage")
    )
    third = install_now(workspace, "github://acme/tools#v3")
    assert third.status == "installed"
    assert third.error
    assert third.source == "github://acme/tools#v2" and third.resolved_ref == v2_sha
    assert (tree / "v2.txt").read_bytes() == b"two"
    assert sorted(p.name for p in tree.parent.iterdir()) == ["tools"]  # no staging left
    body = as_agent.get(f"/workspaces/{workspace.pk}/plugins").json()[0]
    assert body["status"] == "installed" and body["error"] == third.error


def test_superseded_attempt_does_not_promote(workspace, plugin_dirs, fake_github, monkeypatch):
    """A newer request arriving while a fetch runs wins: the older staged tree is discarded."""
    from plugins_app.tasks import plugin_install

    fake_github.repo("acme", "tools", archive_of(plugin_files()), refs={"v1": SHA})
    stale = services.plugin_install_request(workspace=workspace, source="github://acme/tools")
    real_manifest_read = services.manifest_read
    newer = []

    def manifest_read_then_new_request(tree, *, name):
        newer.append(services.plugin_install_request(workspace=workspace, source="github://acme/tools#v1"))
        return real_manifest_read(tree, name=name)

    monkeypatch.setattr(services, "manifest_read", manifest_read_then_new_request)
    assert run_due_jobs(passes=1) == 1
    record = InstalledPlugin.objects.get()
    assert record.status == "installing" and record.attempt == newer[0].attempt
    assert record.source == "github://acme/tools#v1"
    assert record.relay_due_at is not None  # the newer request is still due for the relay
    assert not list(plugin_dirs.workspace_dir(workspace).iterdir())  # not promoted, staging removed
    # The stale attempt's task, delivered again, does nothing.
    plugin_install.run(str(stale.pk), 1)
    assert InstalledPlugin.objects.get().status == "installing"
    monkeypatch.setattr(services, "manifest_read", real_manifest_read)
    assert run_due_jobs() == 1  # the newer request, published by the relay
    assert InstalledPlugin.objects.get().status == "installed"


def test_uninstall(as_agent, workspace, plugin_dirs, django_capture_on_commit_callbacks):
    url = f"/workspaces/{workspace.pk}/plugins/web-search"
    assert as_agent.delete(url).status_code == 404
    assert as_agent.delete(url).json()["code"] == "not_found"
    install_now(workspace, "local://web-search")
    tree = plugin_dirs.workspace_dir(workspace) / "web-search"
    assert tree.is_dir()
    with django_capture_on_commit_callbacks(execute=True):
        response = as_agent.delete(url + "/")
    assert response.status_code == 204
    assert not tree.exists()
    assert not InstalledPlugin.objects.exists()
    assert as_agent.delete(url).status_code == 404


def _tar_files(data: bytes) -> dict[str, bytes]:
    files = {}
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as archive:
        for member in archive:
            assert member.isdir() or member.isfile()
            top, _, rest = member.name.partition("/")
            assert top == "web-search"
            if member.isfile():
                files[rest] = archive.extractfile(member).read()
    return files


def test_download_equals_installed_tree(as_agent, workspace, plugin_dirs):
    url = f"/workspaces/{workspace.pk}/plugins/web-search/download"
    assert as_agent.get(url).status_code == 404
    install_now(workspace, "local://web-search")
    (plugin_dirs.workspace_dir(workspace) / "web-search" / "big.bin").write_bytes(bytes(range(256)) * 4000)
    response = as_agent.get(url)
    assert response.status_code == 200
    assert response["Content-Type"] == "application/gzip"
    assert 'filename="web-search.tar.gz"' in response["Content-Disposition"]
    files = _tar_files(b"".join(response.streaming_content))
    tree = plugin_dirs.workspace_dir(workspace) / "web-search"
    expected = {str(p.relative_to(tree)): p.read_bytes() for p in tree.rglob("*") if p.is_file()}
    assert files == expected
    assert as_agent.get(url, HTTP_ACCEPT="application/gzip").status_code == 200


def test_download_404_while_not_installed(as_agent, workspace, plugin_dirs, fake_github):
    fake_github.repo("acme", "tools", b"not an archive")
    failed = install_now(workspace, "github://acme/tools")
    assert failed.status == "failed"
    assert as_agent.get(f"/workspaces/{workspace.pk}/plugins/tools/download").status_code == 404
    services.plugin_install_request(workspace=workspace, source="local://web-search")
    assert as_agent.get(f"/workspaces/{workspace.pk}/plugins/web-search/download").status_code == 404


def test_compatibility(as_agent, workspace, plugin_dirs):
    url = f"/workspaces/{workspace.pk}/plugins/compatibility"
    missing = as_agent.get(url)
    assert missing.status_code == 400 and missing.json()["code"] == "invalid_parameter"
    empty = as_agent.get(url, {"runtime": "crewai"}).json()
    assert empty == {"target_runtime": "crewai", "compatible": [], "incompatible": [], "all_compatible": True}
    for name in ("web-search", "code-review", "meeting-notes"):
        install_now(workspace, f"local://{name}")
    body = as_agent.get(url, {"runtime": "claude_code"}).json()
    assert body == {
        "target_runtime": "claude_code",
        "compatible": ["code-review", "web-search"],
        "incompatible": ["meeting-notes"],
        "all_compatible": False,
    }
    assert as_agent.get(url + "/", {"runtime": "autogen"}).json()["compatible"] == [
        "meeting-notes",
        "web-search",
    ]


def test_cross_workspace_access_is_404(api, workspace, other_workspace, plugin_dirs, admin_token):
    install_now(other_workspace, "local://web-search")
    api.credentials(**bearer(admin_token))
    base = f"/workspaces/{workspace.pk}/plugins/web-search"
    assert api.get(base + "/download").status_code == 404
    assert api.delete(base).status_code == 404
    assert api.get(f"/workspaces/{workspace.pk}/plugins").json() == []
    assert InstalledPlugin.objects.filter(workspace=other_workspace).exists()
    # A token of another workspace is a 403 (SPEC §2), an unknown workspace a 404 for admins.
    assert api.get("/workspaces/00000000-0000-0000-0000-000000000000/plugins").status_code == 404
    api.credentials(**bearer(make_workspace_token(workspace)))
    assert api.get(f"/workspaces/{other_workspace.pk}/plugins").status_code == 403


def test_auth_required_on_workspace_routes(api, workspace):
    for path in ("", "/available", "/compatibility?runtime=x", "/x/download"):
        response = api.get(f"/workspaces/{workspace.pk}/plugins{path}")
        assert response.status_code == 401, path
    response = api.post(
        f"/workspaces/{workspace.pk}/plugins",
        json.dumps({"source": "local://x"}),
        content_type="application/json",
    )
    assert response.status_code == 401


def test_workspace_delete_removes_plugin_files(
    as_admin, workspace, plugin_dirs, django_capture_on_commit_callbacks
):
    install_now(workspace, "local://web-search")
    folder = plugin_dirs.workspace_dir(workspace)
    assert (folder / "web-search").is_dir()
    with django_capture_on_commit_callbacks(execute=True):
        assert as_admin.delete(f"/workspaces/{workspace.pk}").status_code == 204
    assert not folder.exists()
    assert not InstalledPlugin.objects.exists()


def test_names_in_path_cannot_escape(as_agent, workspace, plugin_dirs):
    assert as_agent.get(f"/workspaces/{workspace.pk}/plugins/..%2F..%2Fetc/download").status_code == 404
    assert as_agent.delete(f"/workspaces/{workspace.pk}/plugins/..").status_code == 404


def test_sha_is_recorded_for_github_in_list(as_agent, workspace, plugin_dirs, fake_github):
    fake_github.repo("acme", "tools", archive_of(plugin_files()))
    install_now(workspace, "github://acme/tools")
    body = as_agent.get(f"/workspaces/{workspace.pk}/plugins").json()[0]
    assert body["resolved_ref"] == SHA and len(body["sha256"]) == 64


@pytest.mark.parametrize("name", ["available", "compatibility"])
def test_plugin_named_like_a_fixed_route_can_be_downloaded_and_uninstalled(
    name, as_agent, workspace, plugin_dirs, fake_github, django_capture_on_commit_callbacks
):
    """A repository may be called `available`; its DELETE must not be swallowed by that route."""
    fake_github.repo("acme", name, archive_of(plugin_files()))
    assert install_now(workspace, f"github://acme/{name}").status == "installed"
    url = f"/workspaces/{workspace.pk}/plugins/{name}"
    assert as_agent.get(url + "/download").status_code == 200
    with django_capture_on_commit_callbacks(execute=True):
        response = as_agent.delete(url)
    assert response.status_code == 204
    assert not (plugin_dirs.workspace_dir(workspace) / name).exists()
    missing = as_agent.delete(url + "/")
    assert missing.status_code == 404 and missing.json()["code"] == "not_found"
    assert as_agent.get(url, {"runtime": "x"}).status_code == 200  # the GET route is unchanged


def test_unexpected_error_before_the_fetch_still_settles_the_record(workspace, plugin_dirs, monkeypatch):
    """A crash in the housekeeping before the fetch must not leave the record `installing`."""

    def broken(*args, **kwargs):
        raise PermissionError("storage folder not readable")

    monkeypatch.setattr(services, "remove_stale_staging", broken)
    plugin = install_now(workspace, "local://web-search")
    assert plugin.status == "failed"
    assert plugin.error == "internal error while installing"  # no exception text leaks
