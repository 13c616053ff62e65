"""The public API of common.fetch that template import reuses: fetch_tree / stage_tree."""

from __future__ import annotations

import os
import time

import pytest

from common.errors import ApplicationError
from common.fetch import (
    FetchError,
    GithubBases,
    fetch_tree,
    parse_source,
    remove_stale_staging,
    remove_tree,
    stage_tree,
)
from tests.plugins_app.conftest import SHA, FakeGithub, archive_of


@pytest.fixture
def local_base(tmp_path):
    base = tmp_path / "sources"
    (base / "demo" / "prompts").mkdir(parents=True)
    (base / "demo" / "template.yaml").write_text("name: demo\n")
    (base / "demo" / "prompts" / "system.md").write_text("You are helpful.\n")
    return base


def _fetch(local_base, destination, **kwargs):
    options = {"max_bytes": 10_000, "max_files": 100, "timeout": 10}
    options.update(kwargs)
    return fetch_tree(
        source=parse_source("local://demo"), local_base=local_base, destination=destination, **options
    )


def test_fetch_tree_local_places_the_tree_and_is_deterministic(tmp_path, local_base):
    destination = tmp_path / "out" / "demo"
    first = _fetch(local_base, destination)
    assert (destination / "prompts" / "system.md").read_text() == "You are helpful.\n"
    assert (first.name, first.resolved_ref, first.files) == ("demo", "", 2)
    os.utime(local_base / "demo" / "template.yaml", (1, 1))  # timestamps do not change the digest
    again = _fetch(local_base, destination, expected_sha256=first.sha256)
    assert again.sha256 == first.sha256
    assert sorted(p.name for p in destination.parent.iterdir()) == ["demo"]


def test_failed_fetch_keeps_the_old_destination_and_leaves_nothing(tmp_path, local_base):
    destination = tmp_path / "out" / "demo"
    _fetch(local_base, destination)
    (local_base / "demo" / "big.bin").write_bytes(b"x" * 20_000)
    with pytest.raises(FetchError, match="larger than 10000 bytes"):
        _fetch(local_base, destination)
    assert (destination / "template.yaml").exists() and not (destination / "big.bin").exists()
    assert sorted(p.name for p in destination.parent.iterdir()) == ["demo"]


def test_entry_limit_edge(tmp_path, local_base):
    # demo holds 3 entries: template.yaml, prompts/, prompts/system.md
    _fetch(local_base, tmp_path / "ok", max_files=3)
    with pytest.raises(FetchError, match="more than 2 entries"):
        _fetch(local_base, tmp_path / "no", max_files=2)
    assert not (tmp_path / "no").exists()


def test_validate_refuses_and_stage_tree_discards_unless_promoted(tmp_path, local_base):
    def require_manifest(tree):
        if not (tree / "missing.yaml").exists():
            raise ApplicationError("missing.yaml is required")

    with pytest.raises(FetchError, match=r"missing\.yaml is required"):
        _fetch(local_base, tmp_path / "out" / "demo", validate=require_manifest)
    assert list((tmp_path / "out").iterdir()) == []
    with stage_tree(
        source=parse_source("local://demo"),
        local_base=local_base,
        staging_parent=tmp_path / "out",
        max_bytes=10_000,
        max_files=100,
        timeout=10,
    ) as staged:
        assert (staged.path / "template.yaml").exists()
    assert list((tmp_path / "out").iterdir()) == []


def test_missing_local_folder(tmp_path, local_base):
    with pytest.raises(FetchError, match="no folder named"):
        fetch_tree(
            source=parse_source("local://absent"),
            local_base=local_base,
            destination=tmp_path / "x",
            max_bytes=1,
            max_files=1,
            timeout=5,
        )


def test_fetch_tree_github_with_explicit_bases(tmp_path, fake_http):
    github = FakeGithub(fake_http)
    github.repo("acme", "demo", archive_of({"template.yaml": b"name: demo\n"}, top="acme-demo-1"))
    result = fetch_tree(
        source=parse_source("github://acme/demo"),
        local_base=tmp_path,
        destination=tmp_path / "demo",
        max_bytes=10_000,
        max_files=10,
        timeout=10,
        github=GithubBases(api=github.api, archive=github.archive_base),
    )
    assert result.resolved_ref == SHA
    assert (tmp_path / "demo" / "template.yaml").read_bytes() == b"name: demo\n"


def test_remove_stale_staging(tmp_path):
    old = tmp_path / ".staging-old"
    old.mkdir()
    os.utime(old, (time.time() - 3600, time.time() - 3600))
    fresh = tmp_path / ".staging-fresh"
    fresh.mkdir()
    keep = tmp_path / "plugin"
    keep.mkdir()
    os.utime(keep, (1, 1))
    remove_stale_staging(tmp_path, older_than_seconds=600)
    assert sorted(p.name for p in tmp_path.iterdir()) == [".staging-fresh", "plugin"]


def test_remove_tree_handles_trees_deeper_than_the_recursion_limit(tmp_path):
    """shutil.rmtree recurses per level; a leftover ~1,900-level tree must still go away."""
    root = tmp_path / "deep"
    current = root
    current.mkdir()
    while len(str(current)) < 3900:
        current = current / "a"
        current.mkdir()
    (current / "f").write_bytes(b"x")
    (root / "link").symlink_to(tmp_path)  # removed, not followed
    remove_tree(root)
    assert not root.exists()
    assert tmp_path.exists()


def test_local_source_deeper_than_the_limit_is_refused(tmp_path, local_base):
    (local_base / "demo" / ("d/" * 65)).mkdir(parents=True)  # 65 levels
    with pytest.raises(FetchError, match="nested deeper than 64 levels"):
        _fetch(local_base, tmp_path / "out" / "demo", max_files=1000)
    assert list((tmp_path / "out").iterdir()) == []
