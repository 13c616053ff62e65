"""Safe extraction of untrusted gzipped tar streams (plugin and template archives).

Python's `tarfile` extraction filters are not enough on their own (3.11 may lack them, and they
do not bound size or file counts), so nothing here calls `extract()`. Every member header is
inspected before a single byte of it is written:

- regular files and directories are extracted; a symbolic or hard link whose target (after at
  most `MAX_LINK_HOPS` links) is a regular file of the same tree is written as a *copy* of that
  file (never as a link on disk, counted in the file and byte limits), because real repositories
  hold such links (`CLAUDE.md -> AGENTS.md`); every other link (absolute, leaving the tree,
  dangling, to a folder, through a folder link, a longer chain), devices, FIFOs, sparse files and
  any other type are refused;
- with a `subfolder`, only the members under that folder are considered: the others are neither
  extracted nor inspected beyond their name, so they can never fail the fetch;
- names must be relative, without `..`, NUL or backslashes;
- files and bytes are counted while streaming (the declared size is checked before writing, the
  written size while writing), and the decompressed stream itself is capped, so a gzip bomb
  stops after at most the cap instead of after inflating;
- files are created with `O_EXCL` inside a staging folder that this module owns, with fixed
  permissions (0644 / 0755): no owner, mode or mtime from the archive is honoured.

The caller owns the staging folder and removes it on failure (see `common.fetch`).
"""

from __future__ import annotations

import hashlib
import io
import os
import stat
import tarfile
import time
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Protocol

DEFAULT_MAX_FILES = 10_000
# Deeper trees are refused: nobody needs them, and tools that recurse once per level (shutil.rmtree,
# os.walk) fail on a tree nested about 1,000 levels deep.
MAX_DEPTH = 64
# A link may point at a link, and so on: a few hops are normal, a longer chain (or a cycle) is not.
MAX_LINK_HOPS = 5
COPY_CHUNK = 64 * 1024
# Tar framing per entry: a 512-byte header, padding to 512, and possibly pax/long-name headers.
_PER_ENTRY_OVERHEAD = 4096
_FRAMING_SLACK = 1024 * 1024
_ALLOWED_FILE_TYPES = {tarfile.REGTYPE, tarfile.AREGTYPE}


class Hasher(Protocol):
    def update(self, data: bytes, /) -> None: ...

    def hexdigest(self) -> str: ...


class _Readable(Protocol):
    def read(self, size: int, /) -> bytes: ...


class ArchiveError(Exception):
    """The archive or tree was refused; `reason` is short and safe to store and show."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


@dataclass
class TreeStats:
    """What was written into the staging folder."""

    files: int = 0
    directories: int = 0
    bytes: int = 0

    @property
    def entries(self) -> int:
        return self.files + self.directories


@dataclass(frozen=True)
class Limits:
    """Bounds for one tree: entries (files and folders), total file bytes, and a deadline."""

    max_files: int
    max_bytes: int
    deadline: float | None = None  # time.monotonic() value

    def check_deadline(self) -> None:
        if self.deadline is not None and time.monotonic() > self.deadline:
            raise ArchiveError("the fetch exceeded its time limit")


_META_TYPES = {
    tarfile.XHDTYPE,
    tarfile.XGLTYPE,
    tarfile.SOLARIS_XHDTYPE,
    tarfile.GNUTYPE_LONGNAME,
    tarfile.GNUTYPE_LONGLINK,
}
_MAX_META_BYTES = 64 * 1024
# A real member has at most a few extended headers in front of it (pax, long name, long link);
# `tarfile` reads a chain of them recursively, so an endless chain would end in RecursionError.
_MAX_META_CHAIN = 4


class _GuardedTarInfo(tarfile.TarInfo):
    """Refuses oversized pax / long-name headers, long chains of them and GNU sparse members
    before `tarfile` reads their payload into memory."""

    def _proc_member(self, tarfile_: tarfile.TarFile) -> tarfile.TarInfo:
        if self.type == tarfile.GNUTYPE_SPARSE:
            raise ArchiveError("archive member of an unsupported type")
        if self.type not in _META_TYPES:
            return super()._proc_member(tarfile_)  # type: ignore[misc]
        if self.size > _MAX_META_BYTES:
            raise ArchiveError("archive member with an oversized extended header")
        depth = getattr(tarfile_, "_guard_meta_depth", 0) + 1
        if depth > _MAX_META_CHAIN:
            raise ArchiveError("archive member with too many extended headers")
        tarfile_._guard_meta_depth = depth  # type: ignore[attr-defined]
        try:
            return super()._proc_member(tarfile_)  # type: ignore[misc]
        finally:
            tarfile_._guard_meta_depth = depth - 1  # type: ignore[attr-defined]


def safe_member_path(name: str) -> PurePosixPath:
    """A relative, normalised path for an archive member name, or `ArchiveError`."""
    if not name or "\x00" in name or "\\" in name:
        raise ArchiveError("archive member with an invalid name")
    if name.startswith("/"):
        raise ArchiveError("archive member with an absolute path")
    parts = [part for part in name.split("/") if part not in ("", ".")]
    if any(part == ".." for part in parts):
        raise ArchiveError("archive member with '..' in its path")
    return PurePosixPath(*parts) if parts else PurePosixPath(".")


class _GunzipReader(io.RawIOBase):
    """A readable stream that inflates gzip chunks lazily and caps the inflated size.

    The compressed bytes pass through `on_compressed` (the caller hashes them); the inflated
    output never exceeds `max_output` bytes, whatever the compression ratio.
    """

    def __init__(
        self,
        chunks: Iterator[bytes],
        *,
        max_output: int,
        on_compressed: Callable[[bytes], None],
        limits: Limits,
    ) -> None:
        super().__init__()
        self._chunks = chunks
        self._max_output = max_output
        self._on_compressed = on_compressed
        self._limits = limits
        self._inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
        self._pending = b""  # compressed input not yet inflated
        self._output = 0
        self._source_done = False

    def readable(self) -> bool:
        return True

    def _next_compressed(self) -> bytes:
        self._limits.check_deadline()
        try:
            chunk = next(self._chunks)
        except StopIteration:
            self._source_done = True
            return b""
        self._on_compressed(chunk)
        return chunk

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        wanted = len(buffer)
        while True:
            if self._inflater.eof:
                rest = self._inflater.unused_data + self._pending
                if not rest.strip(b"\x00"):
                    self._pending = b""
                    return 0  # end of the gzip stream (trailing zero padding is tolerated)
                # Concatenated gzip members are valid gzip; start a new member.
                self._inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
                self._pending = rest
            if not self._pending and not self._inflater.unconsumed_tail:
                if self._source_done:
                    if self._output == 0:
                        raise ArchiveError("the archive is empty")
                    raise ArchiveError("the archive is truncated")
                self._pending = self._next_compressed()
                continue
            data = self._inflater.unconsumed_tail or self._pending
            self._pending = b"" if not self._inflater.unconsumed_tail else self._pending
            try:
                out = self._inflater.decompress(data, wanted)
            except zlib.error:
                raise ArchiveError("the archive is not valid gzip") from None
            if out:
                self._output += len(out)
                if self._output > self._max_output:
                    raise ArchiveError("the archive inflates beyond the size limit")
                buffer[: len(out)] = out
                return len(out)

    def drain(self) -> None:
        """Pull (and hash) the rest of the compressed stream without inflating it."""
        while not self._source_done:
            self._next_compressed()


def _write_file(source: _Readable | None, target: Path, size: int, stats: TreeStats, limits: Limits) -> None:
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(target, flags, 0o644)
    except FileExistsError:
        raise ArchiveError("archive member appears twice") from None
    except OSError:
        raise ArchiveError("archive member could not be written") from None
    written = 0
    with os.fdopen(fd, "wb") as out:
        while source is not None and written < size:
            limits.check_deadline()
            block = source.read(min(COPY_CHUNK, size - written))
            if not block:
                raise ArchiveError("the archive is truncated")
            written += len(block)
            stats.bytes += len(block)
            if stats.bytes > limits.max_bytes:
                raise ArchiveError(f"the tree is larger than {limits.max_bytes} bytes")
            out.write(block)
    if written != size:
        raise ArchiveError("the archive is truncated")


def _existing_kind(target: Path) -> str | None:
    """ "dir", "other" or None (absent), without following links. A name the filesystem cannot
    hold (too long, too deep) is refused rather than left to escape as an `OSError`."""
    try:
        info = os.lstat(target)
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError:
        raise ArchiveError("archive member could not be written") from None
    return "dir" if stat.S_ISDIR(info.st_mode) else "other"


def _make_dir(target: Path) -> None:
    try:
        target.mkdir(mode=0o755)
    except FileExistsError:
        if target.is_symlink() or not target.is_dir():
            raise ArchiveError("archive member conflicts with another member") from None
    except OSError:
        raise ArchiveError("archive member could not be written") from None


def _ensure_parents(staging: Path, relative: PurePosixPath, stats: TreeStats, limits: Limits) -> None:
    current = staging
    for part in relative.parts[:-1]:
        current = current / part
        existing = _existing_kind(current)
        if existing is None:
            _count_entry(stats, limits, directory=True)
            _make_dir(current)
        elif existing != "dir":
            raise ArchiveError("archive member conflicts with another member")


def _count_entry(stats: TreeStats, limits: Limits, *, directory: bool) -> None:
    if directory:
        stats.directories += 1
    else:
        stats.files += 1
    if stats.entries > limits.max_files:
        raise ArchiveError(f"the tree has more than {limits.max_files} entries")


def extract_tar_gz(
    chunks: Iterable[bytes],
    *,
    staging: Path,
    limits: Limits,
    strip_top_folder: bool,
    hasher: Hasher | None = None,
    subfolder: PurePosixPath | None = None,
) -> TreeStats:
    """Inspect and extract a gzipped tar stream into the existing, empty folder `staging`.

    With `strip_top_folder`, every member must sit under one common top folder (as GitHub
    serves repository archives), which is removed from the paths. With `subfolder` (a relative,
    already checked path; needs `strip_top_folder`), only that folder of the tree is extracted,
    as the root of `staging`. `hasher` receives every compressed byte, including any after the
    end of the tar (the whole archive is read).
    """
    if subfolder is not None and not strip_top_folder:
        raise ValueError("subfolder needs strip_top_folder")
    hasher = hasher if hasher is not None else hashlib.sha256()
    reader = _GunzipReader(
        iter(chunks),
        max_output=limits.max_bytes + (limits.max_files + 2) * _PER_ENTRY_OVERHEAD + _FRAMING_SLACK,
        on_compressed=hasher.update,
        limits=limits,
    )
    buffered = io.BufferedReader(reader, buffer_size=COPY_CHUNK)
    selector = _MemberSelector(strip_top_folder=strip_top_folder, subfolder=subfolder)
    tree = _TreeWriter(staging=staging, limits=limits, selector=selector)
    try:
        with tarfile.open(fileobj=buffered, mode="r|", tarinfo=_GuardedTarInfo) as archive:
            for member in archive:
                limits.check_deadline()
                relative = selector.select(member)
                if relative is None:
                    continue
                tree.add(archive, member, relative, _member_kind(member))
        reader.drain()
    except ArchiveError:
        raise
    except (tarfile.TarError, EOFError):
        raise ArchiveError("the archive is not a valid tar.gz") from None
    if subfolder is not None and not selector.found:
        raise ArchiveError(f"the folder {subfolder.as_posix()!r} does not exist in the archive")
    tree.write_links()
    if tree.stats.entries == 0:
        raise ArchiveError("the archive is empty")
    return tree.stats


class _MemberSelector:
    """Maps archive member names to paths in the extracted tree (None: not part of it)."""

    def __init__(self, *, strip_top_folder: bool, subfolder: PurePosixPath | None) -> None:
        self.strip_top_folder = strip_top_folder
        self.subfolder = subfolder.parts if subfolder is not None else ()
        self.top: str | None = None
        self.found = False

    def select(self, member: tarfile.TarInfo) -> PurePosixPath | None:
        if self.subfolder and self.top is not None:
            # Outside the chosen folder, a name is only compared, never judged: whatever it is
            # (a link, a device, an absolute path), it is not extracted and cannot fail the fetch.
            parts = _name_parts(member.name)
            head, rest = parts[:1], tuple(parts[1:])
            if head != [self.top]:
                return None
            if len(rest) <= len(self.subfolder) and rest == self.subfolder[: len(rest)]:
                # The top folder, a folder above the chosen one, or the chosen folder itself.
                if not member.isdir():
                    raise ArchiveError("the chosen folder is a link or a file in the archive, not a folder")
                self.found = self.found or len(rest) == len(self.subfolder)
                return None
            if rest[: len(self.subfolder)] != self.subfolder:
                return None
        return self.tree_path(member.name, is_dir=member.isdir())

    def tree_path(self, name: str, *, is_dir: bool) -> PurePosixPath | None:
        """The checked tree path of an archive name (also used for hard link targets)."""
        relative = safe_member_path(name)
        if not self.strip_top_folder:
            return relative
        if relative == PurePosixPath("."):
            raise ArchiveError("the archive does not have a single top folder")
        head = relative.parts[0]
        if self.top is None:
            self.top = head
        elif head != self.top:
            raise ArchiveError("the archive does not have a single top folder")
        parts = relative.parts[1:]
        if not parts:
            if not is_dir:
                raise ArchiveError("the archive does not have a single top folder")
            return None
        if self.subfolder:
            if parts[: len(self.subfolder)] != self.subfolder:
                return None  # the top folder or a folder above the chosen one
            self.found = True
            parts = parts[len(self.subfolder) :]
            if not parts:
                return None  # the chosen folder itself is the root of the tree
        return PurePosixPath(*parts)


def _name_parts(name: str) -> list[str]:
    return [part for part in name.split("/") if part not in ("", ".")]


class _TreeWriter:
    """Writes files and folders into `staging` and remembers links until the end of the archive,
    when their targets are known: a link then becomes a copy of the regular file it leads to."""

    def __init__(self, *, staging: Path, limits: Limits, selector: _MemberSelector) -> None:
        self.staging = staging
        self.limits = limits
        self.selector = selector
        self.stats = TreeStats()
        # tree path -> ("symlink" | "hardlink", link text as in the archive)
        self.links: dict[PurePosixPath, tuple[str, str]] = {}

    def add(
        self,
        archive: tarfile.TarFile,
        member: tarfile.TarInfo,
        relative: PurePosixPath,
        kind: str,
    ) -> None:
        if len(relative.parts) > MAX_DEPTH:
            raise ArchiveError(f"archive member nested deeper than {MAX_DEPTH} levels")
        for depth in range(1, len(relative.parts) + 1 if self.links else 1):
            if PurePosixPath(*relative.parts[:depth]) in self.links:
                what = "appears twice" if depth == len(relative.parts) else "is inside a link"
                raise ArchiveError(f"archive member {what}")
        if kind in ("symlink", "hardlink"):
            if _existing_kind(self.staging.joinpath(*relative.parts)) is not None:
                raise ArchiveError("archive member appears twice")
            _count_entry(self.stats, self.limits, directory=False)
            self.links[relative] = (kind, member.linkname)
            return
        _ensure_parents(self.staging, relative, self.stats, self.limits)
        target = self.staging.joinpath(*relative.parts)
        if kind == "dir":
            if _existing_kind(target) is None:
                _count_entry(self.stats, self.limits, directory=True)
            _make_dir(target)
            return
        _count_entry(self.stats, self.limits, directory=False)
        if self.stats.bytes + member.size > self.limits.max_bytes:
            raise ArchiveError(f"the tree is larger than {self.limits.max_bytes} bytes")
        _write_file(archive.extractfile(member), target, member.size, self.stats, self.limits)

    def write_links(self) -> None:
        for relative in sorted(self.links):
            self.limits.check_deadline()
            source = self.staging.joinpath(*self._resolve(relative).parts)
            _ensure_parents(self.staging, relative, self.stats, self.limits)
            try:
                fd = os.open(source, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
            except OSError:
                raise ArchiveError("archive member is a link that could not be followed") from None
            with os.fdopen(fd, "rb") as handle:
                size = os.fstat(handle.fileno()).st_size
                if self.stats.bytes + size > self.limits.max_bytes:
                    raise ArchiveError(f"the tree is larger than {self.limits.max_bytes} bytes")
                _write_file(handle, self.staging.joinpath(*relative.parts), size, self.stats, self.limits)

    def _resolve(self, start: PurePosixPath) -> PurePosixPath:
        """The regular file `start` leads to, following at most `MAX_LINK_HOPS` links."""
        current = start
        for _ in range(MAX_LINK_HOPS):
            kind, text = self.links[current]
            candidate = (
                self._symlink_target(current, text) if kind == "symlink" else self._hardlink_target(text)
            )
            if candidate in self.links:
                current = candidate
                continue
            found = _existing_kind(self.staging.joinpath(*candidate.parts)) if candidate.parts else "dir"
            if found == "other":
                return candidate
            if found == "dir":
                raise ArchiveError("archive member is a link to a folder")
            raise ArchiveError("archive member is a link to nothing in the tree")
        raise ArchiveError(f"archive member is a chain of more than {MAX_LINK_HOPS} links")

    def _symlink_target(self, link: PurePosixPath, text: str) -> PurePosixPath:
        if not text or "\x00" in text:
            raise ArchiveError("archive member is a link with an invalid target")
        if text.startswith("/"):
            raise ArchiveError("archive member is a link to an absolute path")
        parts = list(link.parts[:-1])
        for part in text.split("/"):
            if part in ("", "."):
                continue
            # Each step is taken from a real folder of the tree, never through another link.
            here = PurePosixPath(*parts)
            if here in self.links:
                raise ArchiveError("archive member is a link through another link")
            if parts and _existing_kind(self.staging.joinpath(*parts)) != "dir":
                raise ArchiveError("archive member is a link to nothing in the tree")
            if part == "..":
                if not parts:
                    raise ArchiveError("archive member is a link leaving the tree")
                parts.pop()
            else:
                parts.append(part)
            if len(parts) > MAX_DEPTH:
                raise ArchiveError("archive member is a link with an invalid target")
        return PurePosixPath(*parts)

    def _hardlink_target(self, text: str) -> PurePosixPath:
        # A hard link names another member of the archive; outside the extracted tree (another
        # top folder, outside the chosen folder) it leaves the tree.
        try:
            target = self.selector.tree_path(text, is_dir=False)
        except ArchiveError:
            raise ArchiveError("archive member is a link leaving the tree") from None
        if target is None:
            raise ArchiveError("archive member is a link leaving the tree")
        return target


def _member_kind(member: tarfile.TarInfo) -> str:
    if member.type == tarfile.DIRTYPE:
        return "dir"
    if member.type in _ALLOWED_FILE_TYPES and not member.issparse():
        return "file"
    if member.issym():
        return "symlink"
    if member.islnk():
        return "hardlink"
    if member.ischr() or member.isblk():
        raise ArchiveError("archive member is a device")
    if member.isfifo():
        raise ArchiveError("archive member is a FIFO")
    raise ArchiveError("archive member of an unsupported type")


def copy_tree(source: Path, *, staging: Path, limits: Limits, hasher: Hasher | None = None) -> TreeStats:
    """Copy a local folder into `staging` with the same rules as an archive.

    Symlinks (even inside the tree) and special files are refused rather than followed. The
    `hasher` receives a canonical serialisation of the tree (see `tree_digest_records`).
    """
    hasher = hasher if hasher is not None else hashlib.sha256()
    stats = TreeStats()
    if source.is_symlink() or not source.is_dir():
        raise ArchiveError("the source is not a folder")
    for relative, kind in _walk_sorted(source, limits):
        target = staging.joinpath(*relative.parts)
        if kind == "dir":
            _count_entry(stats, limits, directory=True)
            _make_dir(target)
            hasher.update(b"D " + relative.as_posix().encode() + b"\n")
            continue
        _count_entry(stats, limits, directory=False)
        path = source.joinpath(*relative.parts)
        try:
            fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        except OSError:
            raise ArchiveError("a file of the source could not be read") from None
        with os.fdopen(fd, "rb") as handle:
            info = os.fstat(handle.fileno())
            if not stat.S_ISREG(info.st_mode):
                raise ArchiveError("the source holds a special file")
            if stats.bytes + info.st_size > limits.max_bytes:
                raise ArchiveError(f"the tree is larger than {limits.max_bytes} bytes")
            hasher.update(b"F " + relative.as_posix().encode() + b" " + str(info.st_size).encode() + b"\n")
            before = stats.bytes
            _write_file(_HashingReader(handle, hasher), target, info.st_size, stats, limits)
            if stats.bytes - before != info.st_size:
                raise ArchiveError("a file of the source changed while it was copied")
    if stats.entries == 0:
        raise ArchiveError("the source folder is empty")
    return stats


class _HashingReader:
    def __init__(self, handle: _Readable, hasher: Hasher) -> None:
        self._handle = handle
        self._hasher = hasher

    def read(self, size: int) -> bytes:
        block = self._handle.read(size)
        self._hasher.update(block)
        return block


def _walk_sorted(root: Path, limits: Limits) -> Iterator[tuple[PurePosixPath, str]]:
    """Entries of `root` in a stable order (a folder before its content), refusing links."""
    stack: list[tuple[Path, PurePosixPath]] = [(root, PurePosixPath())]
    seen = 0
    while stack:
        folder, relative = stack.pop()
        try:
            entries = sorted(os.scandir(folder), key=lambda entry: entry.name)
        except OSError:
            raise ArchiveError("a folder of the source could not be read") from None
        subfolders: list[tuple[Path, PurePosixPath]] = []
        for entry in entries:
            limits.check_deadline()
            seen += 1
            if seen > limits.max_files:
                raise ArchiveError(f"the tree has more than {limits.max_files} entries")
            child = relative / entry.name
            if len(child.parts) > MAX_DEPTH:
                raise ArchiveError(f"the source is nested deeper than {MAX_DEPTH} levels")
            if entry.is_symlink():
                raise ArchiveError("the source holds a link")
            if entry.is_dir(follow_symlinks=False):
                yield child, "dir"
                subfolders.append((Path(entry.path), child))
            elif entry.is_file(follow_symlinks=False):
                yield child, "file"
            else:
                raise ArchiveError("the source holds a special file")
        stack.extend(reversed(subfolders))


def tar_gz_stream(root: Path, *, top_folder: str, compresslevel: int = 6) -> Iterator[bytes]:
    """Stream `root` as a gzipped tar under `top_folder/`, block by block (never whole in memory).

    Entries get fixed owner, mode and mtime so the archive depends only on names and contents.
    """
    compressor = zlib.compressobj(compresslevel, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    unbounded = Limits(max_files=10**9, max_bytes=10**15)

    def header(name: str, *, directory: bool, size: int = 0) -> bytes:
        info = tarfile.TarInfo(name)
        info.type = tarfile.DIRTYPE if directory else tarfile.REGTYPE
        info.mode = 0o755 if directory else 0o644
        info.size = 0 if directory else size
        info.mtime = 0
        info.uid = info.gid = 0
        info.uname = info.gname = ""
        return info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")

    def emit(data: bytes) -> Iterator[bytes]:
        out = compressor.compress(data)
        if out:
            yield out

    yield from emit(header(top_folder, directory=True))
    for relative, kind in _walk_sorted(root, unbounded):
        name = f"{top_folder}/{relative.as_posix()}"
        if kind == "dir":
            yield from emit(header(name, directory=True))
            continue
        with root.joinpath(*relative.parts).open("rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            yield from emit(header(name, directory=False, size=size))
            sent = 0
            while sent < size:
                block = handle.read(min(COPY_CHUNK, size - sent))
                if not block:
                    raise ArchiveError("a file changed while it was archived")
                sent += len(block)
                yield from emit(block)
            remainder = size % tarfile.BLOCKSIZE
            if remainder:
                yield from emit(b"\0" * (tarfile.BLOCKSIZE - remainder))
    yield from emit(b"\0" * (2 * tarfile.BLOCKSIZE))
    yield compressor.flush()
