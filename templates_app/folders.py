"""Reading a workspace template folder (`template.yaml` + files) safely into memory.

Used by `sync_templates` (folders of TEMPLATES_DIR) and by template import jobs (a `local://`
folder, or the staged tree the shared fetch pipeline produced for `github://`). Links and other
special files are refused; sizes and file counts are capped while walking.
"""

from __future__ import annotations

import base64
import os
import re
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from common.documents import ErrorCollector
from common.errors import ApplicationError, PayloadTooLarge
from common.paths import InvalidPath, resolve_inside
from common.safe_yaml import MAX_YAML_BYTES, load_yaml
from templates_app.models import SLUG_PATTERN, validate_template_config
from templates_app.schemas import TEMPLATE_MANIFEST
from workspaces.services import runtime_normalize

TEMPLATE_FILE = "template.yaml"
MAX_TEMPLATE_FILES = 1000
MAX_TEMPLATE_FILES_BYTES = 5 * 1024 * 1024


@dataclass
class TemplateFileData:
    path: str
    content: str
    encoding: str
    size: int


@dataclass
class TemplateData:
    slug: str
    name: str
    description: str
    runtime: str
    tier: int
    config: dict[str, Any]
    config_schema: dict[str, Any]
    files: list[TemplateFileData] = field(default_factory=list)


def check_slug(slug: str) -> str:
    if not re.match(SLUG_PATTERN, slug or ""):
        raise ApplicationError(
            f"Template slug {slug!r} must match {SLUG_PATTERN}.",
            details={"slug": [f"Must match {SLUG_PATTERN}."]},
        )
    return slug


def template_manifest_clean(document: Any, *, slug: str) -> dict[str, Any]:
    """The template.yaml fields: shapes by `TEMPLATE_MANIFEST`, then a runtime this server
    knows and a config valid for its own config_schema."""
    if not isinstance(document, dict):
        raise ApplicationError("template.yaml must be a mapping.")
    errors = ErrorCollector()
    TEMPLATE_MANIFEST.check(document, errors)
    from django.conf import settings

    runtime = document.get("runtime") or settings.WORKSPACE_DEFAULT_RUNTIME
    normalized = runtime_normalize(runtime) if isinstance(runtime, str) else None
    if isinstance(runtime, str) and normalized is None:
        errors.add("runtime", "Unknown runtime.")
    config = document.get("config") or {}
    config_schema = document.get("config_schema") or {}
    for key, messages in validate_template_config(config=config, config_schema=config_schema).items():
        for message in messages:
            errors.add(key, message)
    errors.raise_if_any("template.yaml is not valid:")
    return {
        "name": document.get("name") or slug,
        "description": document.get("description") or "",
        "runtime": normalized,
        "tier": document.get("tier", 2),
        "config": config,
        "config_schema": config_schema,
    }


def _read_files(folder: Path) -> list[TemplateFileData]:
    files: list[TemplateFileData] = []
    total = 0
    real_root = folder.resolve()
    for current, dirnames, filenames in os.walk(real_root, followlinks=False):
        dirnames.sort()
        for dirname in dirnames:
            if os.path.islink(os.path.join(current, dirname)):
                raise InvalidPath(f"The template folder holds a link: {dirname!r}.")
        for filename in sorted(filenames):
            full = Path(current) / filename
            relative = full.relative_to(real_root).as_posix()
            info = os.lstat(full)
            if not stat.S_ISREG(info.st_mode):
                raise InvalidPath(f"The template folder holds a link or special file: {relative!r}.")
            if relative == TEMPLATE_FILE:
                continue
            resolve_inside(real_root, relative)
            total += info.st_size
            if len(files) >= MAX_TEMPLATE_FILES:
                raise PayloadTooLarge(f"A template may hold at most {MAX_TEMPLATE_FILES} files.")
            if total > MAX_TEMPLATE_FILES_BYTES:
                raise PayloadTooLarge(
                    f"A template's files may total at most {MAX_TEMPLATE_FILES_BYTES} bytes."
                )
            raw = full.read_bytes()
            try:
                files.append(TemplateFileData(relative, raw.decode("utf-8"), "utf-8", len(raw)))
            except UnicodeDecodeError:
                files.append(TemplateFileData(relative, base64.b64encode(raw).decode(), "base64", len(raw)))
    return files


def template_read_folder(*, folder: Path, slug: str) -> TemplateData:
    """Load one template folder: `template.yaml` (safe YAML) plus every other file."""
    check_slug(slug)
    manifest_path = folder / TEMPLATE_FILE
    if manifest_path.is_symlink() or not manifest_path.is_file():
        raise ApplicationError(f"The template folder {slug!r} has no template.yaml.")
    with manifest_path.open("rb") as handle:
        document = load_yaml(handle.read(MAX_YAML_BYTES + 1))
    manifest = template_manifest_clean(document, slug=slug)
    return TemplateData(slug=slug, files=_read_files(folder), **manifest)


def local_template_folder(*, root: Path, name: str) -> Path:
    """A direct subfolder of `root` (TEMPLATES_DIR), through the path guard."""
    check_slug(name)
    folder = resolve_inside(root, name)
    if folder.parent != root.resolve() or not folder.is_dir():
        raise ApplicationError(
            f"No template folder {name!r}.", details={"source": ["No such template folder."]}
        )
    return folder
