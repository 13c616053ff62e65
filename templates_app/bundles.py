"""Bundles: a workspace subtree with its data as one portable JSON document.

Export reads the subtree one level per query and each kind of data once for all workspaces.
Import checks the whole document (size, depth, count, shapes) before writing anything, then
creates everything with `tree_create` in one transaction, with new ids.
"""

from __future__ import annotations

import datetime
import json
import re
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from django.utils import timezone

from common.documents import ErrorCollector, as_list
from common.errors import ApplicationError
from common.storable import Unstorable, json_problem
from templates_app.models import WorkspaceOrigin
from templates_app.schemas import BUNDLE, BUNDLE_FORMAT, BUNDLE_NODE, BUNDLE_VERSION
from templates_app.sections import ImportContext, check_secret_key, chunked, sections
from templates_app.tree import (
    NodeSpec,
    Progress,
    clean_workspace_fields,
    no_progress,
    subtree_collect,
    tree_create,
)
from workspaces.models import Workspace

MAX_BUNDLE_BYTES = 10 * 1024 * 1024
MAX_BUNDLE_DEPTH = 64
MAX_BUNDLE_WORKSPACES = 10_000


def _iso(value: Any) -> str:
    return value.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def bundle_export(*, workspace: Workspace, progress: Progress = no_progress) -> dict[str, Any]:
    """The bundle of `workspace` and its subtree (secret values and channel secrets left out)."""
    members = subtree_collect(root=workspace)
    progress("workspaces", len(members), len(members))
    ids = [member.pk for member in members]
    templates: dict[UUID, str] = {}
    for chunk in chunked(ids):
        templates.update(
            WorkspaceOrigin.objects.filter(workspace_id__in=chunk).values_list(
                "workspace_id", "template_slug"
            )
        )
    exported: dict[str, dict[UUID, Any]] = {}
    available = [section for section in sections() if section.available()]
    for done, section in enumerate(available, start=1):
        exported[section.key] = section.export(workspace_ids=ids)
        progress(section.key, done, len(available))
    nodes: dict[UUID, dict[str, Any]] = {}
    for member in members:
        node: dict[str, Any] = {
            "name": member.name,
            "role": member.role,
            "runtime": member.runtime,
            "tier": member.tier,
            "url": member.url,
            "a2a_protocol": member.a2a_protocol,
            "max_concurrent_tasks": member.max_concurrent_tasks,
            "config": member.config,
            "template": templates.get(member.pk),
            "secrets": exported.get("secrets", {}).get(member.pk, []),
            "memory": exported.get("memory", {}).get(member.pk, {}),
            "schedules": exported.get("schedules", {}).get(member.pk, []),
            "channels": exported.get("channels", {}).get(member.pk, []),
            "plugins": exported.get("plugins", {}).get(member.pk, []),
            "children": [],
        }
        nodes[member.pk] = node
        if member.pk != workspace.pk:
            nodes[member.parent_id]["children"].append(node)
    return {
        "format": BUNDLE_FORMAT,
        "version": BUNDLE_VERSION,
        "exported_at": _iso(timezone.now()),
        "workspace": nodes[workspace.pk],
    }


def bundle_filename(workspace: Workspace) -> str:
    """A safe download name: `bundle-<name>-<id prefix>.json`."""
    stem = re.sub(r"[^A-Za-z0-9._-]+", "-", workspace.name).strip("-.")[:60] or "workspace"
    return f"bundle-{stem}-{str(workspace.pk)[:8]}.json"


def _limits_error(message: str, field: str = "workspace") -> ApplicationError:
    return ApplicationError(message, details={field: [message]})


def _walk_limits(root: Any, *, max_depth: int, max_workspaces: int) -> None:
    """Count and depth, iteratively, before any other work (a hostile bundle stops here)."""
    stack = [(root, 1)]
    count = 0
    while stack:
        node, depth = stack.pop()
        count += 1
        if count > max_workspaces:
            raise _limits_error(f"The bundle has more than {max_workspaces} workspaces.")
        if depth > max_depth:
            raise _limits_error(f"The bundle is deeper than {max_depth} levels.")
        if isinstance(node, dict):
            children = node.get("children") or []
            if isinstance(children, list):
                stack.extend((child, depth + 1) for child in children)


def _refuse_json_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def bundle_loads(raw: bytes | str) -> Any:
    """Parse a bundle file strictly (`NaN`/`Infinity` refused), for the shell and the console."""
    return json.loads(raw, parse_constant=_refuse_json_constant)


_UNSTORABLE_MESSAGES = {
    Unstorable.NON_FINITE: "Numbers must be finite (no NaN or Infinity).",
    Unstorable.NUL: "Strings may not contain NUL characters.",
    Unstorable.SURROGATE: "Strings may not contain unpaired surrogates.",
}


def bundle_check_storable(bundle: Any) -> None:
    """400 for a document the database cannot hold (checked before it is stored or parsed)."""
    problem = json_problem(bundle)
    if problem is not None:
        message = _UNSTORABLE_MESSAGES[problem]
        raise ApplicationError(f"The bundle is not valid. {message}", details={"bundle": [message]})


def _secret_keys(raw: Any, label: str, errors: ErrorCollector) -> list[str]:
    """Secret keys follow the model's rule; each refused key is named at `<label>.secrets`."""
    secrets = as_list(raw)
    for key in secrets:
        problem = check_secret_key(key)
        if problem:
            errors.add(f"{label}.secrets", problem)
    return secrets


def bundle_parse(
    *, bundle: Any, max_depth: int | None = None, max_workspaces: int | None = None
) -> list[NodeSpec]:
    """Check a bundle document completely and flatten it into nodes (nothing written): the
    shapes by `BUNDLE` and `BUNDLE_NODE` (templates_app/schemas.py), limits and keys here."""
    if not isinstance(bundle, dict):
        raise ApplicationError("The bundle must be a JSON object.")
    errors = ErrorCollector()
    BUNDLE.check(bundle, errors)
    errors.raise_if_any("The bundle is not valid.")
    _walk_limits(
        bundle["workspace"],
        max_depth=max_depth or MAX_BUNDLE_DEPTH,
        max_workspaces=max_workspaces or MAX_BUNDLE_WORKSPACES,
    )
    bundle_check_storable(bundle)

    nodes: list[NodeSpec] = []
    stack: list[tuple[Any, int | None, int, str]] = [(bundle["workspace"], None, 1, "workspace")]
    while stack:
        raw, parent_index, depth, label = stack.pop()
        BUNDLE_NODE.check(raw, errors, at=label)
        if not isinstance(raw, dict):
            continue
        plugins = as_list(raw.get("plugins"))
        node = NodeSpec(
            index=len(nodes),
            parent_index=parent_index,
            depth=depth,
            label=label,
            fields=clean_workspace_fields(raw, label, errors),
            template_slug=raw.get("template") or None,
            data={
                "secrets": _secret_keys(raw.get("secrets"), label, errors),
                "memory": raw.get("memory") or {},
                "schedules": raw.get("schedules") or [],
                "channels": raw.get("channels") or [],
                "plugins": [plugin.get("source") for plugin in plugins if isinstance(plugin, dict)],
            },
        )
        nodes.append(node)
        children = as_list(raw.get("children"))
        # Reversed onto the stack so nodes come out in document (pre-)order.
        for i in reversed(range(len(children))):
            stack.append((children[i], node.index, depth + 1, f"{label}.children[{i}]"))
    errors.raise_if_any("The bundle is not valid.")
    return nodes


@dataclass
class BundleImportResult:
    root_id: UUID
    workspaces: list[Workspace]
    missing_secrets: list[dict[str, str]]
    schedules: list[dict[str, Any]]

    def as_dict(self) -> dict[str, Any]:
        return {
            "root_id": str(self.root_id),
            "workspaces": [
                {
                    "id": str(ws.pk),
                    "name": ws.name,
                    "parent_id": str(ws.parent_id) if ws.parent_id else None,
                }
                for ws in self.workspaces
            ],
            "count": len(self.workspaces),
            "missing_secrets": self.missing_secrets,
            "schedules": self.schedules,
        }


def bundle_import(
    *,
    bundle: Any,
    parent: Workspace | None = None,
    activate: bool = False,
    progress: Progress = no_progress,
) -> BundleImportResult:
    """Recreate a bundle's tree with new ids, all or nothing. Channels come back disabled and
    without secrets; schedules come back disabled unless `activate` (then as exported)."""
    nodes = bundle_parse(bundle=bundle)
    progress("parse", len(nodes), len(nodes))
    context = ImportContext(mode="bundle", activate=activate)
    result = tree_create(nodes=nodes, parent=parent, context=context, progress=progress)
    return BundleImportResult(
        root_id=result.root_ids[0],
        workspaces=result.workspaces,
        missing_secrets=result.missing_secrets,
        schedules=context.schedules,
    )
