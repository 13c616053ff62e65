"""plugin.yaml parsing and the on-disk registry (PLUGINS_DIR).

A plugin is a folder holding `plugin.yaml` (`name, version, description, author, tags,
runtimes, skills`). The files are data: nothing here imports or runs them.
"""

from __future__ import annotations

import logging
import os
import re
import stat
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from common.documents import ErrorCollector
from common.errors import ApplicationError
from common.fetch import LOCAL_NAME_PATTERN
from common.safe_yaml import YamlError, load_yaml
from plugins_app.schemas import PLUGIN_MANIFEST

logger = logging.getLogger(__name__)

MANIFEST_NAME = "plugin.yaml"
MANIFEST_MAX_BYTES = 256 * 1024
_NAME = re.compile(LOCAL_NAME_PATTERN)


@dataclass(frozen=True)
class PluginManifest:
    name: str
    version: str = ""
    description: str = ""
    author: str = ""
    tags: list[str] = field(default_factory=list)
    runtimes: list[str] = field(default_factory=list)
    skills: list[Any] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class RegistryEntry:
    manifest: PluginManifest

    @property
    def name(self) -> str:
        return self.manifest.name

    @property
    def source(self) -> str:
        return f"local://{self.manifest.name}"

    def as_dict(self) -> dict[str, Any]:
        return {**self.manifest.as_dict(), "source": self.source}


def runtime_key(value: str) -> str:
    """Runtimes compare case-insensitively with `-` and `_` equal (`claude_code` ≡ `claude-code`)."""
    return value.strip().lower().replace("_", "-")


def supports_runtime(runtimes: list[str], runtime: str) -> bool:
    """An empty `runtimes` list means every runtime."""
    if not runtimes:
        return True
    wanted = runtime_key(runtime)
    return any(runtime_key(item) == wanted for item in runtimes)


def _invalid(message: str) -> ApplicationError:
    return YamlError(f"plugin.yaml: {message}")


def _text(value: Any) -> str:
    return "" if value is None else str(value)


def manifest_parse(raw: bytes, *, name: str) -> PluginManifest:
    """Validate a plugin.yaml document (`PLUGIN_MANIFEST`); the plugin's name comes from its
    source, not the file."""
    data = load_yaml(raw, max_bytes=MANIFEST_MAX_BYTES)
    if not isinstance(data, dict):
        raise _invalid("the document must be a mapping")
    errors = ErrorCollector()
    PLUGIN_MANIFEST.check(data, errors)
    errors.raise_if_any("plugin.yaml:", error=YamlError)
    return PluginManifest(
        name=name,
        version=_text(data.get("version")),
        description=_text(data.get("description")),
        author=_text(data.get("author")),
        tags=list(data.get("tags") or []),
        runtimes=list(data.get("runtimes") or []),
        skills=list(data.get("skills") or []),
    )


def manifest_read(folder: Path, *, name: str) -> PluginManifest:
    """Read `folder/plugin.yaml` (a regular file, never through a link)."""
    path = folder / MANIFEST_NAME
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except FileNotFoundError:
        raise _invalid("the plugin has no plugin.yaml") from None
    except OSError:
        raise _invalid("plugin.yaml cannot be read") from None
    with os.fdopen(fd, "rb") as handle:
        if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
            raise _invalid("plugin.yaml is not a regular file")
        raw = handle.read(MANIFEST_MAX_BYTES + 1)
    return manifest_parse(raw, name=name)


def registry_entry(root: Path, name: str) -> RegistryEntry | None:
    """The plugin folder `root/name`, or None when it is not a valid plugin (logged)."""
    child = root / name
    if not _NAME.match(name) or child.is_symlink() or not child.is_dir():
        return None
    if not (child / MANIFEST_NAME).exists():
        return None
    try:
        return RegistryEntry(manifest_read(child, name=name))
    except ApplicationError as exc:
        logger.warning("plugin registry: skipping %s: %s", name, exc.message)
        return None


def registry_scan(root: Path) -> list[RegistryEntry]:
    """Every valid plugin folder of `root`, by name. Invalid folders are skipped and logged."""
    if not root.is_dir():
        return []
    found = (registry_entry(root, child.name) for child in sorted(root.iterdir(), key=lambda p: p.name))
    return [entry for entry in found if entry is not None]
