"""github://<owner>/<repo>[/<path>][#<ref>] with real `git archive` output, and links in archives.

The fake GitHub serves what `git archive --format=tar.gz --prefix=<repo>-<sha>/` produces from a
repository built in the test, so symlinks are stored exactly as GitHub stores them.
"""

from __future__ import annotations

import io
import tarfile

import pytest

from common.archive import MAX_LINK_HOPS
from tests.plugins_app.conftest import SHA, all_paths, make_tar_gz, plugin_files, tar_member
from tests.plugins_app.helpers import install_now
from tests.support.git_archive import git_archive

pytestmark = pytest.mark.django_db

PLUGIN = {"plugin.yaml": b"name: tools\nversion: '2.0'\n", "AGENTS.md": b"# how to work here\n"}


def _monorepo(root, *, symlinks=None, extra=None):
    """A repository with two plugins under plugins/, a README and hostile links elsewhere."""
    files = {f"plugins/tools/{name}": data for name, data in PLUGIN.items()}
    files.update({"plugins/other/plugin.yaml": b"name: other\n", "README.md": b"monorepo\n", **(extra or {})})
    links = {
        "docs/passwd": "/etc/passwd",  # absolute, outside the chosen folder
        "docs/up": "../../../../etc",  # leaving the repository, outside the chosen folder
        "docs/dangling": "nothing-here",
        **(symlinks or {}),
    }
    return git_archive(root, files=files, symlinks=links)


def _tree(plugin_dirs, workspace, name="tools"):
    return plugin_dirs.workspace_dir(workspace) / name


def test_pinned_ref_with_a_folder_installs_only_that_folder(workspace, plugin_dirs, fake_github, tmp_path):
    repo = _monorepo(tmp_path / "git")
    fake_github.repo("acme", "mono", repo.data, sha=repo.sha, refs={"v2": repo.sha})
    plugin = install_now(workspace, "github://acme/mono/plugins/tools#v2")
    assert plugin.status == "installed", plugin.error
    assert plugin.name == "tools" and plugin.version == "2.0"
    assert plugin.source == "github://acme/mono/plugins/tools#v2"
    assert plugin.resolved_ref == repo.sha
    tree = _tree(plugin_dirs, workspace)
    assert {p.name for p in tree.iterdir()} == {"plugin.yaml", "AGENTS.md"}
    assert "/api/repos/acme/mono" not in fake_github.requested_paths()  # pinned: no default branch
    # Nothing of the rest of the repository was written anywhere.
    assert {
        p for p in all_paths(plugin_dirs.storage) if "other" in p or "docs" in p or "README" in p
    } == set()


def test_default_branch_with_a_folder(workspace, plugin_dirs, fake_github, tmp_path):
    repo = _monorepo(tmp_path / "git")
    fake_github.repo("acme", "mono", repo.data, sha=repo.sha, default_branch="trunk")
    plugin = install_now(workspace, "github://acme/mono/plugins/other")
    assert plugin.status == "installed", plugin.error
    assert plugin.name == "other" and plugin.resolved_ref == repo.sha
    assert plugin.source == "github://acme/mono/plugins/other"
    assert fake_github.requested_paths()[:2] == ["/api/repos/acme/mono", "/api/repos/acme/mono/commits/trunk"]
    assert [p.name for p in _tree(plugin_dirs, workspace, "other").iterdir()] == ["plugin.yaml"]


def test_folder_that_does_not_exist_fails_the_install_clearly(workspace, plugin_dirs, fake_github, tmp_path):
    repo = _monorepo(tmp_path / "git")
    fake_github.repo("acme", "mono", repo.data, sha=repo.sha)
    plugin = install_now(workspace, "github://acme/mono/plugins/nope")
    assert plugin.status == "failed"
    assert plugin.error == "the folder 'plugins/nope' does not exist in the archive"
    assert not list(plugin_dirs.workspace_dir(workspace).iterdir())


def test_a_file_named_like_the_folder_is_not_a_folder(workspace, plugin_dirs, fake_github, tmp_path):
    repo = _monorepo(tmp_path / "git")
    fake_github.repo("acme", "mono", repo.data, sha=repo.sha)
    plugin = install_now(workspace, "github://acme/mono/README.md")
    assert plugin.status == "failed" and "not a folder" in plugin.error


def test_symlinked_folder_is_refused(workspace, plugin_dirs, fake_github, tmp_path):
    repo = _monorepo(tmp_path / "git", symlinks={"plugins/alias": "tools", "linked": "plugins"})
    fake_github.repo("acme", "mono", repo.data, sha=repo.sha)
    for source in ("github://acme/mono/plugins/alias", "github://acme/mono/linked/tools"):
        plugin = install_now(workspace, source)
        assert plugin.status == "failed", source
        assert "link" in plugin.error
    assert not list(plugin_dirs.workspace_dir(workspace).iterdir())


@pytest.mark.parametrize(
    "source",
    [
        "github://acme/mono/../etc",
        "github://acme/mono/plugins/../../etc",
        "github://acme/mono//etc/passwd",
        "github://acme/mono/plugins/./tools",
        "github://acme/mono/a b",
        "github://acme/mono/a\\b",
        "github://acme/mono/" + "/".join(["d"] * 65),
        "github://acme/mono/" + "x" * 172 + "/" + "y" * 128,  # 301 characters
        "github://acme/mono/" + "x" * 256,
    ],
)
def test_escaping_or_malformed_folder_is_a_400_at_request_time(as_agent, workspace, plugin_dirs, source):
    response = as_agent.post(f"/workspaces/{workspace.pk}/plugins", {"source": source}, format="json")
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_path"
    assert "source" in response.json()["details"]


def test_folder_length_edge_is_accepted(as_agent, workspace, plugin_dirs, fake_github):
    longest = "github://acme/mono/" + "x" * 171 + "/" + "y" * 128  # 300 characters
    response = as_agent.post(f"/workspaces/{workspace.pk}/plugins", {"source": longest}, format="json")
    assert response.status_code == 202, response.json()
    deepest = "github://acme/mono/" + "/".join(["d"] * 64)
    assert (
        as_agent.post(f"/workspaces/{workspace.pk}/plugins", {"source": deepest}, format="json").status_code
        == 202
    )


def test_in_tree_symlink_is_installed_and_downloaded_as_a_regular_file(
    as_agent, workspace, plugin_dirs, fake_github, tmp_path
):
    repo = _monorepo(tmp_path / "git", symlinks={"plugins/tools/CLAUDE.md": "AGENTS.md"})
    fake_github.repo("acme", "mono", repo.data, sha=repo.sha)
    plugin = install_now(workspace, "github://acme/mono/plugins/tools")
    assert plugin.status == "installed", plugin.error
    copy = _tree(plugin_dirs, workspace) / "CLAUDE.md"
    assert not copy.is_symlink() and copy.is_file()
    assert copy.read_bytes() == PLUGIN["AGENTS.md"]
    response = as_agent.get(f"/workspaces/{workspace.pk}/plugins/tools/download")
    assert response.status_code == 200
    with tarfile.open(fileobj=io.BytesIO(b"".join(response.streaming_content)), mode="r:gz") as archive:
        member = archive.getmember("tools/CLAUDE.md")
        assert member.isfile() and archive.extractfile(member).read() == PLUGIN["AGENTS.md"]


def test_whole_repository_with_an_in_tree_symlink_installs(workspace, plugin_dirs, fake_github, tmp_path):
    """The reported case: a repository holding `CLAUDE.md -> AGENTS.md`, no folder."""
    repo = git_archive(tmp_path / "git", files=PLUGIN, symlinks={"CLAUDE.md": "AGENTS.md"})
    fake_github.repo("acme", "tools", repo.data, sha=repo.sha)
    plugin = install_now(workspace, "github://acme/tools")
    assert plugin.status == "installed", plugin.error
    assert (_tree(plugin_dirs, workspace) / "CLAUDE.md").read_bytes() == PLUGIN["AGENTS.md"]


def test_hostile_symlinks_outside_the_chosen_folder_do_not_matter(
    workspace, plugin_dirs, fake_github, tmp_path
):
    repo = _monorepo(tmp_path / "git", symlinks={"plugins/other/loop": "loop", "plugins/self": "."})
    fake_github.repo("acme", "mono", repo.data, sha=repo.sha)
    assert install_now(workspace, "github://acme/mono/plugins/tools").status == "installed"
    # The same archive, taken whole, is refused for its hostile links.
    whole = install_now(workspace, "github://acme/mono")
    assert whole.status == "failed" and "link" in whole.error


def _chain(length: int) -> dict[str, str]:
    """`l1 -> l2 -> … -> l<length> -> AGENTS.md`: `length` links in a row."""
    return {f"plugins/tools/l{i}": (f"l{i + 1}" if i < length else "AGENTS.md") for i in range(1, length + 1)}


HOSTILE_LINKS = {
    "absolute": ({"plugins/tools/passwd": "/etc/passwd"}, "link to an absolute path"),
    "leaving_the_repository": ({"plugins/tools/up": "../../../etc/passwd"}, "link leaving the tree"),
    "leaving_the_chosen_folder": ({"plugins/tools/readme": "../../README.md"}, "link leaving the tree"),
    "dangling": ({"plugins/tools/gone": "missing.md"}, "link to nothing"),
    "to_a_folder": ({"plugins/tools/skills": "."}, "link to a folder"),
    "through_a_folder_link": (
        {"plugins/tools/dir": ".", "plugins/tools/via": "dir/AGENTS.md"},
        "link",
    ),
    "cycle": ({"plugins/tools/a": "b", "plugins/tools/b": "a"}, f"more than {MAX_LINK_HOPS} links"),
    "chain_too_long": (_chain(MAX_LINK_HOPS + 1), f"more than {MAX_LINK_HOPS} links"),
}


@pytest.mark.parametrize("case", sorted(HOSTILE_LINKS))
def test_hostile_links_inside_the_folder_are_refused(case, workspace, plugin_dirs, fake_github, tmp_path):
    links, reason = HOSTILE_LINKS[case]
    repo = _monorepo(tmp_path / "git", symlinks=links)
    fake_github.repo("acme", "mono", repo.data, sha=repo.sha)
    before = all_paths(plugin_dirs.root)
    plugin = install_now(workspace, "github://acme/mono/plugins/tools")
    assert plugin.status == "failed"
    assert reason in plugin.error
    assert all_paths(plugin_dirs.root) - before == {f"storage/{workspace.pk}"}


def test_chain_of_the_longest_allowed_length_is_followed(workspace, plugin_dirs, fake_github, tmp_path):
    repo = _monorepo(tmp_path / "git", symlinks=_chain(MAX_LINK_HOPS))
    fake_github.repo("acme", "mono", repo.data, sha=repo.sha)
    plugin = install_now(workspace, "github://acme/mono/plugins/tools")
    assert plugin.status == "installed", plugin.error
    for i in range(1, MAX_LINK_HOPS + 1):
        assert (_tree(plugin_dirs, workspace) / f"l{i}").read_bytes() == PLUGIN["AGENTS.md"]


def test_link_into_a_subfolder_and_back_up_is_followed(workspace, plugin_dirs, fake_github, tmp_path):
    links = {"plugins/tools/docs/guide.md": "../AGENTS.md", "plugins/tools/top.md": "docs/guide.md"}
    repo = _monorepo(tmp_path / "git", symlinks=links, extra={"plugins/tools/docs/x.md": b"x"})
    fake_github.repo("acme", "mono", repo.data, sha=repo.sha)
    plugin = install_now(workspace, "github://acme/mono/plugins/tools")
    assert plugin.status == "installed", plugin.error
    tree = _tree(plugin_dirs, workspace)
    assert (tree / "docs" / "guide.md").read_bytes() == (tree / "top.md").read_bytes() == PLUGIN["AGENTS.md"]


def test_in_tree_hardlink_is_written_as_a_copy(workspace, plugin_dirs, fake_github):
    archive = make_tar_gz(
        [
            tar_member("plugin.yaml", plugin_files()["plugin.yaml"]),
            tar_member("h", kind=tarfile.LNKTYPE, linkname="acme-tools-0123456/plugin.yaml"),
        ]
    )
    fake_github.repo("acme", "tools", archive, sha=SHA)
    plugin = install_now(workspace, "github://acme/tools")
    assert plugin.status == "installed", plugin.error
    copy = _tree(plugin_dirs, workspace) / "h"
    assert copy.read_bytes() == plugin_files()["plugin.yaml"]
    assert copy.stat().st_nlink == 1 and not copy.is_symlink()


def test_member_after_a_link_with_its_name_is_refused(workspace, plugin_dirs, fake_github):
    archive = make_tar_gz(
        [
            tar_member("plugin.yaml", plugin_files()["plugin.yaml"]),
            tar_member("h", kind=tarfile.SYMTYPE, linkname="plugin.yaml"),
            tar_member("h", b"again"),
        ]
    )
    fake_github.repo("acme", "tools", archive, sha=SHA)
    plugin = install_now(workspace, "github://acme/tools")
    assert plugin.status == "failed" and "twice" in plugin.error


def _with_links(files: int, links: int) -> bytes:
    members = [tar_member("plugin.yaml", plugin_files()["plugin.yaml"])]
    members += [tar_member(f"f{i}", b"") for i in range(files - 1)]
    members += [tar_member(f"l{i}", kind=tarfile.SYMTYPE, linkname="plugin.yaml") for i in range(links)]
    return make_tar_gz(members)


def test_links_count_in_the_file_limit(workspace, plugin_dirs, fake_github, monkeypatch):
    from plugins_app import services

    monkeypatch.setattr(services, "DEFAULT_MAX_FILES", 10)
    fake_github.repo("acme", "tools", _with_links(5, 5))
    assert install_now(workspace, "github://acme/tools").status == "installed"
    fake_github.repo("acme", "tools", _with_links(5, 6))
    over = install_now(workspace, "github://acme/tools")
    assert "more than 10 entries" in over.error


def test_links_count_in_the_size_limit(workspace, plugin_dirs, fake_github, settings):
    size = len(plugin_files()["plugin.yaml"])
    settings.PLUGIN_MAX_TREE_BYTES = size * 3
    fake_github.repo("acme", "tools", _with_links(1, 2))
    assert install_now(workspace, "github://acme/tools").status == "installed"
    fake_github.repo("acme", "tools", _with_links(1, 3))
    over = install_now(workspace, "github://acme/tools")
    assert f"larger than {size * 3} bytes" in over.error
