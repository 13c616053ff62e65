"""The fetch pipeline shared by plugin installs and template imports.

    resolve the source → stream it under a deadline and a byte cap → inspect every archive
    member → extract into a staging folder → check sha256 → validate → atomic rename into place

Sources are `local://<name>` (a folder under a base directory given by the caller) and
`github://<owner>/<repo>[/<path>][#<ref>]` (GitHub's API resolves the ref to a commit sha, the
archive of that sha is streamed from the archive host; with a path, only that folder of the
archive is extracted). Every failure is a `FetchError` with a short,
safe `reason`, and leaves no files behind: the staging folder is removed, and an existing
destination is only replaced after the new tree is complete.

Typical use (see docs/decisions.md, "Fetch pipeline"):

    spec = parse_source("github://acme/tools#v1.2")        # ApplicationError 400 if malformed
    result = fetch_tree(source=spec, local_base=settings.PLUGINS_DIR, destination=target,
                        max_bytes=..., max_files=10_000, timeout=300, expected_sha256=None)

or, to decide under a lock whether to promote the staged tree:

    with stage_tree(source=spec, local_base=..., staging_parent=target.parent, ...) as staged:
        ...  # inspect staged.path, staged.result
        staged.promote(target)                            # else it is discarded on exit
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Literal

from django.conf import settings

from common.archive import MAX_DEPTH, ArchiveError, Hasher, Limits, copy_tree, extract_tar_gz
from common.errors import ApplicationError
from common.http import HttpError, NetworkPolicy, http_request, open_stream
from common.paths import InvalidPath

logger = logging.getLogger(__name__)

SCHEMES = ("github", "local")
# What a source looks like, for the OpenAPI schema; parse_source() checks the rest.
SOURCE_PATTERN = rf"^({'|'.join(SCHEMES)})://\S"
LOCAL_NAME_PATTERN = r"^[a-z0-9][a-z0-9._-]{0,127}$"
_LOCAL_NAME = re.compile(LOCAL_NAME_PATTERN)
_GITHUB_OWNER = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})$")
_GITHUB_REPO = re.compile(r"^[A-Za-z0-9._-]{1,100}$")
_REF = re.compile(r"^[A-Za-z0-9_./-]{1,255}$")
# One folder name of a github:// path: what GitHub shows in URLs without escaping.
_PATH_SEGMENT = re.compile(r"^[A-Za-z0-9._@+-]{1,255}$")
# Keeps a recorded source (path plus a 40-character sha) within the 500-character columns.
_PATH_MAX_CHARS = 300
_SHA = re.compile(r"^(?:[0-9a-f]{40}|[0-9a-f]{64})$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_API_MAX_BYTES = 1024 * 1024
# Archive bytes allowed on the wire: the tree cap plus tar framing (incompressible content can
# make the gzip slightly larger than the tree).
_ARCHIVE_SLACK_BYTES = 4 * 1024 * 1024


class FetchError(Exception):
    """The fetch failed; `reason` is short and safe to store and show (no upstream text)."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


@dataclass(frozen=True)
class SourceSpec:
    """A parsed source. `name` is the local folder name, or the last segment of the github path,
    or the repository name (lowercased). `path` is the folder inside the repository ("" = all)."""

    scheme: Literal["local", "github"]
    name: str
    owner: str = ""
    repo: str = ""
    ref: str | None = None
    path: str = ""

    def __str__(self) -> str:
        if self.scheme == "local":
            return f"local://{self.name}"
        folder = f"/{self.path}" if self.path else ""
        suffix = f"#{self.ref}" if self.ref else ""
        return f"github://{self.owner}/{self.repo}{folder}{suffix}"


@dataclass(frozen=True)
class FetchResult:
    """What was fetched: `resolved_ref` is the commit sha for github ("" for local);
    `sha256` is of the archive bytes (github) or of the canonical tree serialisation (local)."""

    name: str
    resolved_ref: str
    sha256: str
    files: int
    bytes: int


def _bad_source(message: str, field: str) -> ApplicationError:
    return ApplicationError(f"{field}: {message}", code="invalid_request", details={field: [message]})


def ref_is_safe(ref: str) -> bool:
    """A git ref we are willing to put in a URL: `[A-Za-z0-9_./-]`, no leading `-`, no `..`."""
    return bool(
        _REF.match(ref)
        and not ref.startswith(("-", "/", "."))
        and not ref.endswith("/")
        and ".." not in ref
        and "//" not in ref
    )


def _parse_github_path(path: str, *, field: str) -> str:
    """The folder part of a github:// source, guarded like every other file reference:
    relative, no `..`, no empty or odd segments (400 `invalid_path`). Whether a segment is a
    link is only known from the archive, which refuses it then."""

    def refuse(message: str) -> InvalidPath:
        return InvalidPath(f"{field}: {message}", details={field: [message]})

    if path.startswith("/") or "//" in path:
        raise refuse("The folder must be a relative path inside the repository.")
    segments = path.rstrip("/").split("/")
    if any(segment in (".", "..") for segment in segments):
        raise refuse("The folder may not contain '.' or '..' segments.")
    if not all(_PATH_SEGMENT.match(segment) for segment in segments):
        raise refuse("Folder names may use only [A-Za-z0-9._@+-].")
    if len(segments) > MAX_DEPTH or len(path) > _PATH_MAX_CHARS:
        raise refuse(f"The folder is longer than {_PATH_MAX_CHARS} characters or {MAX_DEPTH} levels.")
    return "/".join(segments)


def parse_source(spec: str, *, field: str = "source") -> SourceSpec:
    """Parse `local://<name>` or `github://<owner>/<repo>[/<path>][#<ref>]`; 400 if not
    (`invalid_request`, or `invalid_path` for a folder that would leave the repository)."""
    if not isinstance(spec, str) or not spec.strip():
        raise _bad_source("A source is required.", field)
    spec = spec.strip()
    scheme, sep, rest = spec.partition("://")
    if not sep or scheme not in SCHEMES:
        raise _bad_source(f"Unknown source scheme; use one of {', '.join(SCHEMES)}.", field)
    if scheme == "local":
        if not _LOCAL_NAME.match(rest):
            raise _bad_source("local:// needs a name matching ^[a-z0-9][a-z0-9._-]{0,127}$.", field)
        return SourceSpec(scheme="local", name=rest)
    location, hash_sign, ref = rest.partition("#")
    owner, slash, repo_and_path = location.partition("/")
    repo, _, folder = repo_and_path.partition("/")
    if not slash or not _GITHUB_OWNER.match(owner) or not _GITHUB_REPO.match(repo) or repo in (".", ".."):
        raise _bad_source("github:// needs <owner>/<repo> with GitHub's allowed characters.", field)
    if repo.lower().endswith(".git"):
        repo = repo[:-4]
    path = _parse_github_path(folder, field=field) if folder else ""
    name = (path.rsplit("/", 1)[-1] if path else repo).lower()
    if not _LOCAL_NAME.match(name):
        what = "folder" if path else "repository"
        raise _bad_source(
            f"The {what} name cannot be used as a name (^[a-z0-9][a-z0-9._-]{{0,127}}$).", field
        )
    if hash_sign and not ref_is_safe(ref):
        raise _bad_source(
            "The ref must use only [A-Za-z0-9_./-], not start with '-', '.' or '/', and not contain '..'.",
            field,
        )
    return SourceSpec(scheme="github", name=name, owner=owner, repo=repo, ref=ref or None, path=path)


def normalize_sha256(value: str | None, *, field: str = "sha256") -> str | None:
    """Lower-case hex sha256, or None; 400 `invalid_request` if malformed."""
    if value is None or value == "":
        return None
    lowered = value.strip().lower()
    if not _SHA256.match(lowered):
        raise _bad_source("Must be 64 hexadecimal characters.", field)
    return lowered


# --- GitHub --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class GithubBases:
    api: str
    archive: str

    @classmethod
    def from_settings(cls) -> GithubBases:
        return cls(
            api=settings.GITHUB_API_BASE_URL.rstrip("/"), archive=settings.GITHUB_ARCHIVE_BASE_URL.rstrip("/")
        )

    @property
    def redirect_prefixes(self) -> tuple[str, str]:
        return (self.api + "/", self.archive + "/")


# The bases are operator settings (and 127.0.0.1 fakes in tests), so private addresses are
# allowed; link-local and metadata addresses are still refused by common.http.
_GITHUB_POLICY = NetworkPolicy(allow_private=True)


def _remaining(deadline: float) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise FetchError("the fetch exceeded its time limit")
    return left


def _github_get(url: str, *, deadline: float, bases: GithubBases, accept: str) -> str:
    try:
        result = http_request(
            "GET",
            url,
            timeout=_remaining(deadline),
            max_bytes=_API_MAX_BYTES,
            policy=_GITHUB_POLICY,
            headers={"Accept": accept, "X-GitHub-Api-Version": "2022-11-28"},
            redirect_prefixes=bases.redirect_prefixes,
        )
    except HttpError as exc:
        raise FetchError(f"GitHub API: {exc.reason}") from None
    if result.status_code == 404:
        raise FetchError("GitHub repository or ref not found")
    if result.status_code in {401, 403, 429}:
        raise FetchError(f"GitHub API refused the request (HTTP {result.status_code})")
    if not result.ok:
        raise FetchError(f"GitHub API answered HTTP {result.status_code}")
    try:
        return result.content.decode("utf-8")
    except UnicodeDecodeError:
        raise FetchError("GitHub API answered with an unexpected body") from None


def github_resolve_sha(source: SourceSpec, *, deadline: float, bases: GithubBases) -> str:
    """The commit sha of `source.ref`, or of the default branch when there is no ref."""
    repo_url = f"{bases.api}/repos/{source.owner}/{source.repo}"
    ref = source.ref
    if ref is None:
        body = _github_get(repo_url, deadline=deadline, bases=bases, accept="application/vnd.github+json")
        try:
            ref = json.loads(body).get("default_branch")
        except (ValueError, AttributeError):
            ref = None
        if not isinstance(ref, str) or not ref_is_safe(ref):
            raise FetchError("GitHub API answered without a usable default branch")
    # The sha media type answers with the bare sha; a JSON commit (`sha`) is accepted too.
    body = _github_get(
        f"{repo_url}/commits/{ref}",
        deadline=deadline,
        bases=bases,
        accept="application/vnd.github.sha, application/vnd.github+json;q=0.5",
    ).strip()
    sha: object = body
    if body.startswith("{"):
        try:
            sha = json.loads(body).get("sha")
        except ValueError:
            sha = None
    if not isinstance(sha, str) or not _SHA.match(sha.lower()):
        raise FetchError("GitHub API answered without a commit sha")
    return sha.lower()


def _github_extract(
    source: SourceSpec, sha: str, *, staging: Path, limits: Limits, bases: GithubBases, hasher: Hasher
) -> tuple[int, int]:
    url = f"{bases.archive}/{source.owner}/{source.repo}/tar.gz/{sha}"
    assert limits.deadline is not None
    try:
        with open_stream(
            "GET",
            url,
            timeout=_remaining(limits.deadline),
            max_bytes=limits.max_bytes + _ARCHIVE_SLACK_BYTES,
            policy=_GITHUB_POLICY,
            redirect_prefixes=bases.redirect_prefixes,
        ) as stream:
            if stream.status_code == 404:
                raise FetchError("GitHub archive not found")
            if stream.status_code != 200:
                raise FetchError(f"GitHub archive answered HTTP {stream.status_code}")
            stats = extract_tar_gz(
                stream.iter_chunks(),
                staging=staging,
                limits=limits,
                strip_top_folder=True,
                hasher=hasher,
                subfolder=PurePosixPath(source.path) if source.path else None,
            )
    except HttpError as exc:
        if exc.kind == "too_large":
            raise FetchError(f"the archive is larger than {limits.max_bytes} bytes") from None
        raise FetchError(f"GitHub archive: {exc.reason}") from None
    return stats.files, stats.bytes


# --- Staging and promotion --------------------------------------------------------------------------


class StagedTree:
    """A complete, checked tree in a staging folder, waiting to be promoted or discarded."""

    def __init__(self, path: Path, result: FetchResult) -> None:
        self.path = path
        self.result = result
        self.promoted = False

    def promote(self, destination: Path) -> None:
        """Move the staged tree to `destination` (same filesystem), replacing any old tree.

        The old tree is renamed aside first and removed only once the new one is in place, so a
        reader sees either the old or the new tree, and a failure restores the old one.
        """
        destination.parent.mkdir(parents=True, exist_ok=True)
        backup: Path | None = None
        if destination.exists() or destination.is_symlink():
            backup = destination.parent / f".old-{destination.name}-{uuid.uuid4().hex}"
            os.rename(destination, backup)
        try:
            os.rename(self.path, destination)
        except OSError:
            if backup is not None:
                os.rename(backup, destination)
            raise
        self.promoted = True
        if backup is not None:
            remove_tree(backup)

    def discard(self) -> None:
        if not self.promoted:
            remove_tree(self.path)


def remove_tree(path: Path) -> None:
    """Remove a folder (or a stray file or link) without following links; missing is fine."""
    if path.is_symlink() or path.is_file():
        path.unlink(missing_ok=True)
    elif path.exists():
        try:
            shutil.rmtree(path, ignore_errors=True)
        except RecursionError:
            # shutil.rmtree recurses once per level: a tree nested deeper than the interpreter's
            # recursion limit (about 1,000 levels fit in PATH_MAX) would otherwise stay on disk.
            _remove_tree_iteratively(path)


def _remove_tree_iteratively(root: Path) -> None:
    """Depth-first removal with an explicit stack; links are removed, never followed."""
    stack = [root]
    expanded: set[Path] = set()
    while stack:
        folder = stack[-1]
        if folder not in expanded:
            expanded.add(folder)
            subfolders: list[Path] = []
            try:
                entries = list(os.scandir(folder))
            except OSError:
                entries = []
            for entry in entries:
                if entry.is_dir(follow_symlinks=False):
                    subfolders.append(Path(entry.path))
                else:
                    with contextlib.suppress(OSError):
                        os.unlink(entry.path)
            if subfolders:
                stack.extend(subfolders)
                continue
        stack.pop()
        with contextlib.suppress(OSError):
            os.rmdir(folder)


@contextmanager
def stage_tree(
    *,
    source: SourceSpec,
    local_base: Path,
    staging_parent: Path,
    max_bytes: int,
    max_files: int,
    timeout: float,
    expected_sha256: str | None = None,
    validate: Callable[[Path], None] | None = None,
    github: GithubBases | None = None,
) -> Iterator[StagedTree]:
    """Fetch `source` into a new staging folder under `staging_parent` and yield it.

    `validate(path)` may raise `FetchError` or `ApplicationError` to refuse the tree (e.g. a
    missing manifest). The staging folder is removed on exit unless it was promoted.
    """
    deadline = time.monotonic() + timeout
    limits = Limits(max_files=max_files, max_bytes=max_bytes, deadline=deadline)
    staging_parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=staging_parent))
    staged: StagedTree | None = None
    try:
        hasher = hashlib.sha256()
        resolved_ref = ""
        try:
            if source.scheme == "local":
                folder = local_base / source.name
                if not folder.is_dir() or folder.is_symlink():
                    raise FetchError(f"no folder named {source.name!r} in the local source")
                stats = copy_tree(folder, staging=staging, limits=limits, hasher=hasher)
                files, size = stats.files, stats.bytes
            else:
                bases = github or GithubBases.from_settings()
                resolved_ref = github_resolve_sha(source, deadline=deadline, bases=bases)
                files, size = _github_extract(
                    source, resolved_ref, staging=staging, limits=limits, bases=bases, hasher=hasher
                )
        except ArchiveError as exc:
            raise FetchError(exc.reason) from None
        digest = hasher.hexdigest()
        if expected_sha256 and digest != expected_sha256.lower():
            raise FetchError("sha256 mismatch: the fetched content does not match the given sha256")
        if validate is not None:
            try:
                validate(staging)
            except ApplicationError as exc:
                raise FetchError(exc.message) from None
        staged = StagedTree(
            staging,
            FetchResult(name=source.name, resolved_ref=resolved_ref, sha256=digest, files=files, bytes=size),
        )
        yield staged
    finally:
        if staged is None or not staged.promoted:
            remove_tree(staging)


def fetch_tree(
    *,
    source: SourceSpec,
    local_base: Path,
    destination: Path,
    max_bytes: int,
    max_files: int,
    timeout: float,
    expected_sha256: str | None = None,
    validate: Callable[[Path], None] | None = None,
    github: GithubBases | None = None,
) -> FetchResult:
    """Fetch `source` and put its tree at `destination` (replacing an old one only on success)."""
    with stage_tree(
        source=source,
        local_base=local_base,
        staging_parent=destination.parent,
        max_bytes=max_bytes,
        max_files=max_files,
        timeout=timeout,
        expected_sha256=expected_sha256,
        validate=validate,
        github=github,
    ) as staged:
        staged.promote(destination)
        return staged.result


def remove_stale_staging(parent: Path, *, older_than_seconds: float) -> None:
    """Remove staging/backup folders left by a killed process (normal runs clean up themselves)."""
    if not parent.is_dir():
        return
    cutoff = time.time() - older_than_seconds
    for entry in parent.iterdir():
        if entry.name.startswith((".staging-", ".old-")):
            try:
                if entry.lstat().st_mtime < cutoff:
                    remove_tree(entry)
            except OSError:
                continue
