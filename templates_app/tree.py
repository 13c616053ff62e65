"""Creating and reading whole workspace trees in a constant number of queries.

`tree_create` is shared by the org importer and the bundle importer: every workspace gets its
id in Python (UUID), so the whole tree is inserted with `bulk_create` in parent-first order,
then every section bulk-inserts its rows, all inside one transaction. `subtree_collect` reads a
subtree one level per query.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any
from uuid import UUID

from django.conf import settings
from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.validators import URLValidator
from django.db import IntegrityError, transaction
from django.utils import timezone
from rest_framework import serializers

from common.documents import ErrorCollector
from common.errors import ApplicationError, Conflict
from templates_app.models import WorkspaceOrigin
from templates_app.schemas import WORKSPACE_FIELDS
from templates_app.sections import BULK_BATCH_SIZE, ImportContext, section_unavailable, sections
from workspaces.models import Workspace
from workspaces.quotas import limit_reached, quota_limit
from workspaces.services import InvalidParent, runtime_normalize
from workspaces.validators import validate_agent_url

Progress = Callable[[str, int, int], None]


def no_progress(stage: str, done: int, total: int) -> None:
    return None


@dataclass
class NodeSpec:
    """One workspace to create: validated fields plus per-section data."""

    index: int
    parent_index: int | None
    depth: int
    label: str
    fields: dict[str, Any]
    template_slug: str | None = None
    data: dict[str, Any] = field(default_factory=dict)


_url_validator = URLValidator(schemes=["http", "https"])


def clean_workspace_fields(raw: dict[str, Any], label: str, errors: ErrorCollector) -> dict[str, Any]:
    """The Workspace columns of a node whose document schema already checked its shape
    (`WORKSPACE_FIELDS`; null or absent means the default). What needs the server is checked
    here, like `POST /workspaces` checks it: a runtime this server runs, an agent URL it may call."""
    out: dict[str, Any] = {"role": "", "url": "", "config": {}}
    out.update((key, raw[key]) for key in WORKSPACE_FIELDS if raw.get(key) is not None)
    runtime = out.get("runtime")
    if isinstance(runtime, str):
        normalized = runtime_normalize(runtime)
        if normalized is None:
            del out["runtime"]  # reported once, where it was written (a default is not repeated per node)
            errors.add(
                f"{label}.runtime", f"Unknown runtime; allowed: {', '.join(settings.WORKSPACE_RUNTIMES)}."
            )
        else:
            out["runtime"] = normalized
    url = out["url"]
    if isinstance(url, str) and url:
        try:
            _url_validator(url)
            validate_agent_url(url)
        except (DjangoValidationError, serializers.ValidationError) as exc:
            messages = getattr(exc, "messages", None) or [str(d) for d in getattr(exc, "detail", [])]
            errors.add(f"{label}.url", messages[0] if messages else "Not a valid URL.")
    return out


_DUPLICATE_KEY = re.compile(r"\(([^)]*)\)=")


@dataclass
class TreeResult:
    workspaces: list[Workspace]
    root_ids: list[UUID]
    missing_secrets: list[dict[str, str]]


def tree_create(
    *,
    nodes: list[NodeSpec],
    parent: Workspace | None = None,
    context: ImportContext,
    progress: Progress = no_progress,
) -> TreeResult:
    """Create every node and its data in one transaction (all or nothing)."""
    present = {key for node in nodes for key, value in node.data.items() if value}
    active = [section for section in sections() if section.key in present]
    for key in sorted(present - {section.key for section in sections()}):
        raise section_unavailable(key)
    for section in active:
        if not section.available():
            raise section_unavailable(section.key)

    ordered = sorted(nodes, key=lambda node: (node.depth, node.index))
    base = timezone.now()
    workspaces: dict[int, Workspace] = {}
    for node in sorted(nodes, key=lambda node: node.index):
        fields = dict(node.fields)
        fields.setdefault("runtime", settings.WORKSPACE_DEFAULT_RUNTIME)
        parent_id = workspaces[node.parent_index].pk if node.parent_index is not None else None
        workspaces[node.index] = Workspace(
            **fields,
            parent_id=parent_id if node.parent_index is not None else (parent.pk if parent else None),
            # Creation order = document order, so an export lists children as they were given.
            created_at=base + timedelta(microseconds=node.index),
        )

    try:
        with transaction.atomic():
            if parent is not None and not Workspace.objects.select_for_update().filter(pk=parent.pk).exists():
                raise InvalidParent()
            prepared: dict[str, list[Any]] = {section.key: [] for section in active}
            for position, node in enumerate(ordered, start=1):
                workspace = workspaces[node.index]
                for section in active:
                    value = node.data.get(section.key)
                    if not value:
                        continue
                    try:
                        items = section.prepare(workspace=workspace, data=value, context=context)
                        # Every node is a new workspace: its own items are all it will have.
                        if section.quota and len(items) > quota_limit(section.quota):
                            raise limit_reached(resource=section.quota, count=len(items))
                        prepared[section.key].extend(items)
                    except ApplicationError as exc:
                        exc.details = {**(exc.details or {}), "node": [node.label]}
                        exc.message = f"{node.label}: {exc.message}"
                        raise
                if position % 500 == 0 or position == len(ordered):
                    progress("validate", position, len(ordered))
            rows = [workspaces[node.index] for node in ordered]
            for start in range(0, len(rows), BULK_BATCH_SIZE):
                Workspace.objects.bulk_create(rows[start : start + BULK_BATCH_SIZE])
                progress("workspaces", min(start + BULK_BATCH_SIZE, len(rows)), len(rows))
            origins = [
                WorkspaceOrigin(workspace=workspaces[node.index], template_slug=node.template_slug)
                for node in ordered
                if node.template_slug
            ]
            WorkspaceOrigin.objects.bulk_create(origins, batch_size=BULK_BATCH_SIZE)
            for done, section in enumerate(active, start=1):
                section.create(objects=prepared[section.key], context=context)
                progress(section.key, done, len(active))
    except IntegrityError:
        # A uniqueness rule the per-node checks did not catch (e.g. a concurrent writer).
        raise Conflict("The tree could not be created: it conflicts with existing data.") from None
    except RecursionError:
        # A JSON value (config, memory) nested too deeply to encode for the database.
        message = "A value is nested too deeply to be stored."
        raise ApplicationError(message, details={"workspace": [message]}) from None
    roots = [workspaces[node.index].pk for node in ordered if node.parent_index is None]
    return TreeResult(
        workspaces=[workspaces[node.index] for node in sorted(nodes, key=lambda node: node.index)],
        root_ids=roots,
        missing_secrets=context.missing_secrets,
    )


def subtree_collect(*, root: Workspace) -> list[Workspace]:
    """The root and every descendant, parents before children (one query per level)."""
    collected = [root]
    frontier = [root.pk]
    seen = {root.pk}
    while frontier:
        children = list(Workspace.objects.filter(parent_id__in=frontier).order_by("created_at", "id"))
        children = [child for child in children if child.pk not in seen]
        seen.update(child.pk for child in children)
        collected.extend(children)
        frontier = [child.pk for child in children]
    return collected
