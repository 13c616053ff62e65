"""Real `git archive` output (what GitHub's codeload serves) built from a throwaway repository."""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

_ENV = {
    "GIT_AUTHOR_NAME": "Test",
    "GIT_AUTHOR_EMAIL": "test@example.invalid",
    "GIT_COMMITTER_NAME": "Test",
    "GIT_COMMITTER_EMAIL": "test@example.invalid",
    "GIT_CONFIG_GLOBAL": os.devnull,
    "GIT_CONFIG_NOSYSTEM": "1",
}


@dataclass(frozen=True)
class GitArchive:
    sha: str
    data: bytes


def _git(repo: Path, *args: str) -> bytes:
    env = {**os.environ, **_ENV}
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, env=env).stdout


def git_archive(
    root: Path, *, files: dict[str, bytes], symlinks: dict[str, str] | None = None, prefix: str = "acme-repo"
) -> GitArchive:
    """Commit `files` (path → bytes) and `symlinks` (path → link text) in a new repository under
    `root`, and return the commit sha and `git archive --format=tar.gz --prefix=<prefix>-<sha>/`."""
    repo = root / f"repo-{len(list(root.glob('repo-*')))}"
    repo.mkdir(parents=True)
    _git(repo, "init", "-q", "-b", "main")
    for name, data in files.items():
        path = repo / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    for name, target in (symlinks or {}).items():
        path = repo / name
        path.parent.mkdir(parents=True, exist_ok=True)
        os.symlink(target, path)
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m", "test")
    sha = _git(repo, "rev-parse", "HEAD").decode().strip()
    data = _git(repo, "archive", "--format=tar.gz", f"--prefix={prefix}-{sha[:7]}/", sha)
    return GitArchive(sha=sha, data=data)
