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

from common.errors import ApplicationError, PayloadTooLarge
from common.paths import InvalidPath, resolve_inside
from common.safe_yaml import MAX_YAML_BYTES, load_yaml
from templates_app.models import SLUG_PATTERN, validate_template_config
from workspaces.services import runtime_normalize

TEMPLATE_FILE = "template.yaml"
TEMPLATE_KEYS = {"name", "description", "runtime", "tier", "config", "config_schema"}
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
    """The template.yaml fields, checked (runtime known, tier 1–4, config valid for its schema)."""
    if not isinstance(document, dict):
        raise ApplicationError("template.yaml must be a mapping.")
    errors: dict[str, list[str]] = {}
    for key in sorted(set(document) - TEMPLATE_KEYS):
        errors[str(key)] = ["Unknown field."]
    name = document.get("name") or slug
    if not isinstance(name, str) or len(name) > 200:
        errors["name"] = ["Must be a string of at most 200 characters."]
    description = document.get("description") or ""
    if not isinstance(description, str):
        errors["description"] = ["Must be a string."]
    from django.conf import settings

    runtime = document.get("runtime") or settings.WORKSPACE_DEFAULT_RUNTIME
    normalized = runtime_normalize(runtime) if isinstance(runtime, str) else None
    if normalized is None:
        errors["runtime"] = ["Unknown runtime."]
    tier = document.get("tier", 2)
    if not isinstance(tier, int) or isinstance(tier, bool) or not 1 <= tier <= 4:
        errors["tier"] = ["Must be an integer from 1 to 4."]
    config = document.get("config") or {}
    config_schema = document.get("config_schema") or {}
    errors.update(validate_template_config(config=config, config_schema=config_schema))
    if errors:
        first = next(iter(errors))
        raise ApplicationError(f"template.yaml is not valid: {first}: {errors[first][0]}", details=errors)
    return {
        "name": name,
        "description": description,
        "runtime": normalized,
        "tier": tier,
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
