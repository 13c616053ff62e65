"""Org templates: `org.yaml` folders under ORG_TEMPLATES_DIR, listed and imported as a tree.

Import order matters: safe YAML parse (size, depth, no anchors/aliases/tags) → `${VAR}`
expansion (values from the folder's `.env` and allowed variables only, see `org_env`; every
refused or missing name reported at once) → shape checks and file references (path
guard) → one transaction creating everything (`tree_create`). Nothing is written before the
last step, and the last step is all or nothing.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from uuid import UUID

from django.conf import settings

from common.documents import ErrorCollector, as_list
from common.errors import ApplicationError
from common.paths import InvalidPath, read_text_inside, resolve_inside
from common.safe_yaml import MAX_YAML_BYTES, load_yaml
from templates_app.models import WorkspaceTemplate, validate_template_config
from templates_app.org_env import ORG_ENV_FILE, MissingEnv, org_env_values, org_folder_env, redact
from templates_app.schemas import DEFAULT_FIELDS, ORG, ORG_NODE
from templates_app.sections import ImportContext
from templates_app.tree import NodeSpec, Progress, clean_workspace_fields, no_progress, tree_create
from workspaces.models import Workspace

logger = logging.getLogger(__name__)

ORG_FILE = "org.yaml"
MAX_ORG_WORKSPACES = 10_000  # the same cap as a bundle
ENV_REFERENCE = re.compile(r"\$(\$)?\{([A-Za-z_][A-Za-z0-9_]*)\}")


def _strings(document: Any):
    """Every string value of a parsed document (iteratively: documents are at most 64 deep)."""
    stack = [document]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            yield item
        elif isinstance(item, Mapping):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


def env_names(document: Any) -> list[str]:
    """The `${VAR}` names a document uses (`$${VAR}` is a literal and does not count)."""
    names = set()
    for text in _strings(document):
        for match in ENV_REFERENCE.finditer(text):
            if not match.group(1):
                names.add(match.group(2))
    return sorted(names)


def env_expand(document: Any, environ: Mapping[str, str]) -> Any:
    """Replace `${VAR}` in every string value with its value in `environ` (the values
    `org_env_values` resolved); 400 `missing_env` naming every missing one."""
    missing = [name for name in env_names(document) if name not in environ]
    if missing:
        raise MissingEnv(
            f"Missing environment variables: {', '.join(missing)}.", details={"missing": missing}
        )

    def replace(match: re.Match[str]) -> str:
        if match.group(1):
            return "${" + match.group(2) + "}"
        return environ[match.group(2)]

    def expand(item: Any) -> Any:
        if isinstance(item, str):
            return ENV_REFERENCE.sub(replace, item)
        if isinstance(item, Mapping):
            return {key: expand(value) for key, value in item.items()}
        if isinstance(item, list):
            return [expand(value) for value in item]
        return item

    return expand(document)


# --- Sources --------------------------------------------------------------------------------------


def _org_root() -> Path:
    return Path(settings.ORG_TEMPLATES_DIR)


def org_template_folder(*, slug: str) -> Path:
    """The folder of an org template; `invalid_path` for escapes, 400 for unknown slugs."""
    folder = resolve_inside(_org_root(), slug)
    if folder.parent != _org_root().resolve() or not (folder / ORG_FILE).is_file():
        raise ApplicationError(
            f"No org template {slug!r}.", details={"template": ["No org template with this slug."]}
        )
    return folder


def _read_reference(root: Path, reference: str) -> str:
    """A file an org.yaml references; never a folder's `.env`, whose values are for `${VAR}`."""
    if resolve_inside(root, reference).name == ORG_ENV_FILE:
        raise InvalidPath(f"The file reference {reference!r} names an org's .env file.")
    return read_text_inside(root, reference)


def _read_org_yaml(folder: Path) -> bytes:
    path = resolve_inside(folder, ORG_FILE)
    with path.open("rb") as handle:
        # One byte over the cap is enough for load_yaml to answer 413.
        return handle.read(MAX_YAML_BYTES + 1)


@dataclass
class OrgTemplateInfo:
    slug: str
    name: str
    description: str
    workspace_count: int
    required_env: list[str]


def _count_nodes(document: Mapping[str, Any]) -> int:
    count = 0
    stack = list(document.get("workspaces") or [])
    while stack:
        node = stack.pop()
        if isinstance(node, Mapping):
            count += 1
            children = node.get("children") or []
            if isinstance(children, list):
                stack.extend(children)
    return count


def org_template_list() -> list[OrgTemplateInfo]:
    """Org templates on disk, by slug; broken folders are logged and left out."""
    root = _org_root()
    if not root.is_dir():
        return []
    found = []
    for entry in sorted(root.iterdir(), key=lambda p: p.name):
        try:
            folder = org_template_folder(slug=entry.name)
            document = load_yaml(_read_org_yaml(folder))
        except ApplicationError as exc:
            if entry.is_dir():
                logger.warning("org template %s skipped: %s", entry.name, exc.message)
            continue
        if not isinstance(document, Mapping):
            logger.warning("org template %s skipped: org.yaml is not a mapping", entry.name)
            continue
        name = document.get("name")
        description = document.get("description")
        found.append(
            OrgTemplateInfo(
                slug=entry.name,
                name=name if isinstance(name, str) else entry.name,
                description=description if isinstance(description, str) else "",
                workspace_count=_count_nodes(document),
                # What the operator must still provide: the folder's own .env covers the rest.
                required_env=[n for n in env_names(document) if n not in org_folder_env(folder)],
            )
        )
    return found


# --- Planning -------------------------------------------------------------------------------------


def _plan_schedules(raw: Any, label: str, root: Path, errors: ErrorCollector) -> list[dict[str, Any]]:
    """Schedules with their defaults and prompt files read; shapes are `ORG_NODE`'s."""
    schedules = []
    names: set[str] = set()
    for i, item in enumerate(as_list(raw)):
        if not isinstance(item, dict):
            continue
        prompt = item.get("prompt")
        if "prompt" not in item and isinstance(item.get("prompt_file"), str):
            prompt = _read_reference(root, item["prompt_file"])
        name = item.get("name") or ""
        if isinstance(name, str) and name:
            if name in names:
                errors.add(f"{label}[{i}].name", "Schedule names must be unique within a workspace.")
            names.add(name)
        schedules.append(
            {
                "name": name,
                "expression": item.get("expression"),
                "timezone": item.get("timezone", "UTC"),
                "prompt": prompt,
                "enabled": item.get("enabled", True),
                "source": "template",
            }
        )
    return schedules


def _plan_channels(raw: Any) -> list[dict[str, Any]]:
    return [
        {
            "platform": item.get("platform"),
            "config": item.get("config") or {},
            "allowlist": [str(entry) for entry in as_list(item.get("allowlist"))],
            "enabled": item.get("enabled", True),
            "name": item.get("name") or "",
        }
        for item in as_list(raw)
        if isinstance(item, dict)
    ]


def _plan_plugins(raw: Any, defaults: list[str]) -> list[str]:
    sources = list(defaults)
    for source in as_list(raw):
        if source not in sources:
            sources.append(source)
    return sources


def _template_slugs(document: Mapping[str, Any]) -> set[str]:
    slugs = set()
    stack = list(document.get("workspaces") or []) if isinstance(document.get("workspaces"), list) else []
    while stack:
        node = stack.pop()
        if isinstance(node, Mapping):
            if isinstance(node.get("template"), str):
                slugs.add(node["template"])
            if isinstance(node.get("children"), list):
                stack.extend(node["children"])
    return slugs


@dataclass
class OrgPlan:
    name: str
    description: str
    nodes: list[NodeSpec]


def org_plan(*, document: Any, root: Path) -> OrgPlan:
    """Turn an expanded org document into nodes, reading referenced files (nothing written).
    Shapes are checked by `ORG` and `ORG_NODE` (templates_app/schemas.py); what needs the
    database or the disk (templates, files) is checked here."""
    errors = ErrorCollector()
    ORG.check(document, errors)
    workspaces = document.get("workspaces") if isinstance(document, dict) else None
    if not isinstance(workspaces, list) or not workspaces:
        errors.raise_if_any("The org template is not valid.")
    raw_defaults = document.get("defaults")
    raw_defaults = raw_defaults if isinstance(raw_defaults, dict) else {}
    probe = {key: raw_defaults[key] for key in DEFAULT_FIELDS if key in raw_defaults}
    fields = clean_workspace_fields(probe, "defaults", errors)
    defaults = {key: fields[key] for key in probe if key in fields}
    default_plugins = _plan_plugins(raw_defaults.get("plugins"), [])

    templates = {t.slug: t for t in WorkspaceTemplate.objects.filter(slug__in=_template_slugs(document))}
    nodes: list[NodeSpec] = []
    stack: list[tuple[Any, int | None, int, str]] = [
        (workspaces[i], None, 1, f"workspaces[{i}]") for i in reversed(range(len(workspaces)))
    ]
    while stack:
        raw, parent_index, depth, label = stack.pop()
        if len(nodes) >= MAX_ORG_WORKSPACES:
            message = f"An org template may create at most {MAX_ORG_WORKSPACES} workspaces."
            raise ApplicationError(message, details={"workspaces": [message]})
        ORG_NODE.check(raw, errors, at=label)
        if not isinstance(raw, dict):
            continue
        template = None
        if isinstance(raw.get("template"), str):
            template = templates.get(raw["template"])
            if template is None:
                errors.add(f"{label}.template", "No workspace template with this slug.")
        base: dict[str, Any] = dict(defaults)
        if template is not None:
            base.update({"runtime": template.runtime, "tier": template.tier})
        merged = {**base, **{key: value for key, value in raw.items() if value is not None}}
        fields = clean_workspace_fields(merged, label, errors)
        own_config = fields["config"] if isinstance(fields["config"], dict) else {}
        config = {**(template.config if template else {}), **own_config}
        if "system_prompt" in raw:
            config["system_prompt"] = raw["system_prompt"]
        elif isinstance(raw.get("system_prompt_file"), str):
            config["system_prompt"] = _read_reference(root, raw["system_prompt_file"])
        if template is not None and template.config_schema:
            for field, messages in validate_template_config(
                config=config, config_schema=template.config_schema
            ).items():
                for message in messages:
                    errors.add(f"{label}.{field}", message)
        fields["config"] = config
        node = NodeSpec(
            index=len(nodes),
            parent_index=parent_index,
            depth=depth,
            label=label,
            fields=fields,
            template_slug=template.slug if template else None,
            data={
                "memory": raw.get("memory") or {},
                "schedules": _plan_schedules(raw.get("schedules"), f"{label}.schedules", root, errors),
                "channels": _plan_channels(raw.get("channels")),
                "plugins": _plan_plugins(raw.get("plugins"), default_plugins),
            },
        )
        nodes.append(node)
        children = as_list(raw.get("children"))
        for i in reversed(range(len(children))):
            stack.append((children[i], node.index, depth + 1, f"{label}.children[{i}]"))
    errors.raise_if_any("The org template is not valid.")
    name = document["name"]
    return OrgPlan(name=name, description=document.get("description") or "", nodes=nodes)


@dataclass
class OrgImportResult:
    org: str
    root_ids: list[UUID]
    workspaces: list[Workspace]

    def as_dict(self) -> dict[str, Any]:
        return {
            "org": self.org,
            "root_ids": [str(pk) for pk in self.root_ids],
            "workspaces": [
                {"id": str(ws.pk), "name": ws.name, "parent_id": str(ws.parent_id) if ws.parent_id else None}
                for ws in self.workspaces
            ],
            "count": len(self.workspaces),
        }


def org_import(
    *,
    template: str | None = None,
    org_yaml: str | None = None,
    environ: Mapping[str, str] | None = None,
    progress: Progress = no_progress,
) -> OrgImportResult:
    """Import an org template (by slug) or an inline org.yaml; file references of inline YAML
    resolve inside ORG_TEMPLATES_DIR."""
    if (template is None) == (org_yaml is None):
        raise ApplicationError(
            "Give exactly one of template or org_yaml.",
            details={"non_field_errors": ["Give exactly one of template or org_yaml."]},
        )
    if template is not None:
        root = org_template_folder(slug=template)
        raw: bytes | str = _read_org_yaml(root)
    else:
        root = _org_root()
        raw = org_yaml or ""
    document = load_yaml(raw)
    # An inline org.yaml has no folder of its own, hence no .env.
    values = org_env_values(
        names=env_names(document), folder=root if template is not None else None, environ=environ
    )
    document = env_expand(document, values)
    try:
        plan = org_plan(document=document, root=root)
        result = tree_create(nodes=plan.nodes, context=ImportContext(mode="org"), progress=progress)
    except ApplicationError as exc:
        raise redact(exc, values) from None
    return OrgImportResult(org=plan.name, root_ids=result.root_ids, workspaces=result.workspaces)
