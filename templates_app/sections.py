"""Per-workspace data of a tree import/export, one small "section" per kind of data.

The org importer and the bundle importer both turn their input into `NodeSpec`s whose `data`
maps a section key to plain, already shape-checked data. Creating a tree then runs, for every
section: `prepare` (per node: build unsaved, validated objects — no writes) and `create` (once
for the whole tree: bulk insert or queue). Export runs `export` once for all workspace ids. So
adding a kind of data means adding one section, and the number of queries stays constant in
the number of workspaces.

Schedules, channels and plugins belong to other apps; their sections only use those apps'
services and selectors, and report `not_supported` when the app is not installed.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar
from uuid import UUID

from django.apps import apps

from common.errors import ApplicationError
from workspaces.models import (
    SECRET_KEY_PATTERN,
    Workspace,
    WorkspaceMemory,
    WorkspaceSecret,
)

BULK_BATCH_SIZE = 1000
ID_CHUNK = 5000


@dataclass
class ImportContext:
    """What the sections need to know about the import they are part of."""

    mode: str  # "org" or "bundle"
    # Bundles only: schedules keep their `enabled` when True, else come back disabled (a copy of
    # a tree must not start firing against the same agents by surprise).
    activate: bool = False
    missing_secrets: list[dict[str, str]] = field(default_factory=list)
    # Schedules created by the import, for the answer: {id, workspace_id, name, enabled}.
    schedules: list[dict[str, Any]] = field(default_factory=list)


def chunked(items: Sequence[Any], size: int = ID_CHUNK) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


class Section:
    """One kind of per-workspace data."""

    key: ClassVar[str]
    app_label: ClassVar[str | None] = None
    # The per-workspace limit (workspaces.quotas) an import must respect for this kind of data.
    quota: ClassVar[str | None] = None

    @classmethod
    def available(cls) -> bool:
        return cls.app_label is None or apps.is_installed(cls.app_label)

    def prepare(self, *, workspace: Workspace, data: Any, context: ImportContext) -> list[Any]:
        raise NotImplementedError

    def create(self, *, objects: list[Any], context: ImportContext) -> None:
        raise NotImplementedError

    def export(self, *, workspace_ids: list[UUID]) -> dict[UUID, Any]:
        raise NotImplementedError


class SecretsSection(Section):
    """Bundles carry secret keys only: they are created empty and reported as missing."""

    key = "secrets"

    def prepare(self, *, workspace: Workspace, data: list[str], context: ImportContext) -> list[Any]:
        objects = []
        for key in data:
            objects.append(WorkspaceSecret(workspace=workspace, key=key, value=""))
            context.missing_secrets.append({"workspace_id": str(workspace.pk), "key": key})
        return objects

    def create(self, *, objects: list[Any], context: ImportContext) -> None:
        WorkspaceSecret.objects.bulk_create(objects, batch_size=BULK_BATCH_SIZE)

    def export(self, *, workspace_ids: list[UUID]) -> dict[UUID, Any]:
        result: dict[UUID, list[str]] = defaultdict(list)
        for ids in chunked(workspace_ids):
            rows = WorkspaceSecret.objects.filter(workspace_id__in=ids).order_by("key")
            for workspace_id, key in rows.values_list("workspace_id", "key"):
                result[workspace_id].append(key)
        return result


class MemorySection(Section):
    key = "memory"
    quota = "memory_keys"

    def prepare(self, *, workspace: Workspace, data: dict[str, Any], context: ImportContext) -> list[Any]:
        return [WorkspaceMemory(workspace=workspace, key=key, value=value) for key, value in data.items()]

    def create(self, *, objects: list[Any], context: ImportContext) -> None:
        WorkspaceMemory.objects.bulk_create(objects, batch_size=BULK_BATCH_SIZE)

    def export(self, *, workspace_ids: list[UUID]) -> dict[UUID, Any]:
        result: dict[UUID, dict[str, Any]] = defaultdict(dict)
        for ids in chunked(workspace_ids):
            rows = WorkspaceMemory.objects.filter(workspace_id__in=ids).order_by("key")
            for workspace_id, key, value in rows.values_list("workspace_id", "key", "value"):
                result[workspace_id][key] = value
        return result


SECTIONS: list[Section] = [SecretsSection(), MemorySection()]


def register_section(section: Section) -> None:
    """Add a section (other kinds of data plug in here); replaces one with the same key."""
    global SECTIONS
    SECTIONS = [s for s in SECTIONS if s.key != section.key] + [section]


def sections() -> list[Section]:
    return list(SECTIONS)


def section_unavailable(key: str) -> ApplicationError:
    return ApplicationError(
        f"{key} are not available on this server.", code="not_supported", details={key: ["Not supported."]}
    )


def check_secret_key(key: Any) -> str | None:
    if not isinstance(key, str) or not re.fullmatch(SECRET_KEY_PATTERN, key):
        return f"Secret key {key!r} must match {SECRET_KEY_PATTERN}."
    return None
