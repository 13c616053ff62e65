"""Fixtures for the plugin tests: a private registry and storage, tar.gz builders, a fake GitHub."""

from __future__ import annotations

import gzip
import io
import json
import shutil
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.fake_http import FakeHttpServer, FakeResponse, RecordedRequest

REPO_ROOT = Path(__file__).resolve().parents[2]
SHA = "0123456789abcdef0123456789abcdef01234567"
PLUGIN_YAML = b"name: tools\nversion: '1.0'\ndescription: test tools\nruntimes: [claude_code]\n"


@dataclass
class PluginDirs:
    registry: Path
    storage: Path
    root: Path

    def workspace_dir(self, workspace) -> Path:
        return self.storage / str(workspace.pk)


@pytest.fixture
def plugin_dirs(tmp_path, settings) -> PluginDirs:
    """A copy of the example registry and an empty storage folder, wired into settings."""
    registry = tmp_path / "registry"
    shutil.copytree(REPO_ROOT / "plugins", registry)
    storage = tmp_path / "storage"
    storage.mkdir()
    settings.PLUGINS_DIR = registry
    settings.PLUGIN_STORAGE_DIR = storage
    return PluginDirs(registry=registry, storage=storage, root=tmp_path)


def tar_member(name: str, data: bytes = b"", *, kind: bytes = tarfile.REGTYPE, linkname: str = "") -> tuple:
    return (name, data, kind, linkname)


def make_tar_gz(members: list[tuple], *, top: str | None = "acme-tools-0123456") -> bytes:
    """A gzipped tar; with `top`, every member sits under that folder (as GitHub serves it)."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as archive:
        if top:
            info = tarfile.TarInfo(top)
            info.type = tarfile.DIRTYPE
            info.mode = 0o755
            archive.addfile(info)
        for name, data, kind, linkname in members:
            info = tarfile.TarInfo(f"{top}/{name}" if top and not name.startswith("/") else name)
            info.type = kind
            info.linkname = linkname
            info.mode = 0o755 if kind == tarfile.DIRTYPE else 0o644
            if kind in (tarfile.CHRTYPE, tarfile.BLKTYPE):
                info.devmajor, info.devminor = 1, 3
            if kind == tarfile.REGTYPE:
                info.size = len(data)
                archive.addfile(info, io.BytesIO(data))
            else:
                archive.addfile(info)
    return gzip.compress(raw.getvalue())


def plugin_files(extra: dict[str, bytes] | None = None) -> dict[str, bytes]:
    return {"plugin.yaml": PLUGIN_YAML, "skills/a.md": b"# a\n", **(extra or {})}


def archive_of(files: dict[str, bytes], *, top: str | None = "acme-tools-0123456") -> bytes:
    return make_tar_gz([tar_member(name, data) for name, data in files.items()], top=top)


class FakeGithub:
    """GitHub's three endpoints on a FakeHttpServer, under /api and /codeload."""

    def __init__(self, server: FakeHttpServer) -> None:
        self.server = server
        self.api = f"{server.url}/api"
        self.archive_base = f"{server.url}/codeload"

    def repo(
        self,
        owner: str,
        repo: str,
        archive: bytes | FakeResponse,
        *,
        sha: str = SHA,
        default_branch: str = "main",
        refs: dict[str, str] | None = None,
    ) -> None:
        refs = {default_branch: sha, **(refs or {})}
        self.server.route(
            "GET", f"/api/repos/{owner}/{repo}", _json({"name": repo, "default_branch": default_branch})
        )
        for ref, ref_sha in refs.items():
            self.server.route("GET", f"/api/repos/{owner}/{repo}/commits/{ref}", _json({"sha": ref_sha}))
        response = archive if isinstance(archive, FakeResponse) else FakeResponse(200, archive)
        for ref_sha in set(refs.values()):
            self.server.route("GET", f"/codeload/{owner}/{repo}/tar.gz/{ref_sha}", lambda request: response)

    def requested_paths(self) -> list[str]:
        return [request.path for request in self.server.requests]


def _json(body: dict) -> callable:
    payload = json.dumps(body).encode()
    return lambda request: FakeResponse(200, payload, {"Content-Type": "application/json"})


@pytest.fixture
def fake_github(fake_http, settings) -> Iterator[FakeGithub]:
    github = FakeGithub(fake_http)
    settings.GITHUB_API_BASE_URL = github.api
    settings.GITHUB_ARCHIVE_BASE_URL = github.archive_base
    yield github


def all_paths(root: Path) -> set[str]:
    """Every path under `root` (links not followed), to prove nothing was written elsewhere."""
    return {str(path.relative_to(root)) for path in root.rglob("*")}


__all__ = ["SHA", "FakeGithub", "RecordedRequest", "all_paths", "archive_of", "make_tar_gz", "tar_member"]
