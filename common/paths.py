"""Path guard: resolve a file reference strictly inside a root folder.

Refuses absolute paths, `..` components, NUL bytes, and anything whose real path (after
following symlinks) leaves the root. Containment is checked on path components, so
`/srv/orgs2/x` is not inside `/srv/orgs`.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath, PureWindowsPath

from common.errors import ApplicationError


class InvalidPath(ApplicationError):
    code = "invalid_path"
    message = "The path is not allowed."


def resolve_inside(root: Path, reference: str) -> Path:
    """The real path of `reference` under `root`, or `InvalidPath`."""
    if not isinstance(reference, str) or not reference.strip() or "\x00" in reference:
        raise InvalidPath("The file reference is empty or not valid.")
    posix = PurePosixPath(reference)
    if posix.is_absolute() or PureWindowsPath(reference).is_absolute() or reference.startswith("\\"):
        raise InvalidPath(f"The file reference {reference!r} must be relative.")
    if ".." in posix.parts or ".." in PureWindowsPath(reference).parts:
        raise InvalidPath(f"The file reference {reference!r} may not contain '..'.")
    real_root = root.resolve()
    candidate = (real_root / posix).resolve()
    if candidate != real_root and not candidate.is_relative_to(real_root):
        raise InvalidPath(f"The file reference {reference!r} leaves its folder.")
    return candidate


def read_text_inside(root: Path, reference: str, *, max_bytes: int = 1024 * 1024) -> str:
    """Read a UTF-8 text file referenced from a document living in `root`."""
    path = resolve_inside(root, reference)
    if not path.is_file():
        raise InvalidPath(f"The file reference {reference!r} does not name a file.")
    if path.stat().st_size > max_bytes:
        raise InvalidPath(f"The file {reference!r} is larger than {max_bytes} bytes.")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise InvalidPath(f"The file {reference!r} is not UTF-8 text.") from None
    if "\x00" in text:
        # PostgreSQL text cannot hold NUL: refuse here rather than fail at insert time.
        raise InvalidPath(f"The file {reference!r} is not text (it holds NUL characters).")
    return text
