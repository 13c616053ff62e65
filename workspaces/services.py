"""Workspace writes: create, update (with the cycle check), delete, heartbeat, secrets, memory."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from common.errors import ApplicationError, Conflict, NotFound
from workspaces.models import Workspace, WorkspaceMemory, WorkspaceSecret
from workspaces.quotas import quota_check
from workspaces.selectors import workspace_ancestor_ids


class InvalidParent(ApplicationError):
    code = "invalid_parent"
    message = "parent_id does not name an existing workspace."


class HasChildren(Conflict):
    code = "has_children"
    message = "The workspace has children; delete them first or pass ?cascade=true."


def runtime_normalize(value: str) -> str | None:
    """The allowed spelling of a runtime (`claude_code` ≡ `claude-code`), or None if unknown."""
    wanted = value.strip().lower().replace("_", "-")
    for allowed in settings.WORKSPACE_RUNTIMES:
        if allowed.lower().replace("_", "-") == wanted:
            return allowed
    return None


def _lock_parent(parent_id: UUID | None) -> Workspace | None:
    if parent_id is None:
        return None
    parent = Workspace.objects.select_for_update().filter(pk=parent_id).first()
    if parent is None:
        raise InvalidParent()
    return parent


@transaction.atomic
def workspace_create(
    *,
    name: str,
    role: str = "",
    runtime: str | None = None,
    tier: int = 2,
    parent_id: UUID | None = None,
    url: str = "",
    a2a_protocol: str = "auto",
    max_concurrent_tasks: int = 1,
    config: dict[str, Any] | None = None,
) -> Workspace:
    parent = _lock_parent(parent_id)
    return Workspace.objects.create(
        name=name,
        role=role,
        runtime=runtime or settings.WORKSPACE_DEFAULT_RUNTIME,
        tier=tier,
        parent=parent,
        url=url,
        a2a_protocol=a2a_protocol,
        max_concurrent_tasks=max_concurrent_tasks,
        config=config or {},
    )


UPDATABLE_FIELDS = (
    "name",
    "role",
    "url",
    "a2a_protocol",
    "config",
    "max_concurrent_tasks",
    "runtime",
    "tier",
    "parent_id",
)


@transaction.atomic
def workspace_update(*, workspace: Workspace, data: dict[str, Any]) -> Workspace:
    """Apply validated fields; a new parent must exist and must not be the workspace or below it."""
    if "parent_id" in data and data["parent_id"] != workspace.parent_id:
        new_parent_id = data["parent_id"]
        if new_parent_id is not None:
            _lock_parent(new_parent_id)
            if new_parent_id == workspace.pk or workspace.pk in workspace_ancestor_ids(
                workspace_id=new_parent_id
            ):
                raise InvalidParent("parent_id would make a cycle: the workspace cannot be its own ancestor.")
    changed = []
    for field in UPDATABLE_FIELDS:
        if field in data:
            setattr(workspace, field, data[field])
            changed.append(field)
    if changed:
        workspace.save(update_fields=[*changed, "updated_at"])
    return workspace


@transaction.atomic
def workspace_delete(*, workspace: Workspace, cascade: bool = False) -> None:
    """Delete the workspace and everything that belongs to it (and its subtree with cascade)."""
    Workspace.objects.select_for_update().filter(pk=workspace.pk).exists()
    if not cascade and Workspace.objects.filter(parent_id=workspace.pk).exists():
        raise HasChildren()
    workspace.delete()


def workspace_heartbeat(
    *, workspace: Workspace, active_tasks: int, current_task: str | None = None
) -> Workspace:
    workspace.active_tasks = active_tasks
    workspace.current_task = current_task or ""
    workspace.last_heartbeat_at = timezone.now()
    workspace.save(update_fields=["active_tasks", "current_task", "last_heartbeat_at", "updated_at"])
    return workspace


def secret_set(*, workspace: Workspace, key: str, value: str) -> WorkspaceSecret:
    secret, _ = WorkspaceSecret.objects.update_or_create(
        workspace=workspace, key=key, defaults={"value": value}
    )
    return secret


def secret_delete(*, workspace: Workspace, key: str) -> None:
    deleted, _ = WorkspaceSecret.objects.filter(workspace=workspace, key=key).delete()
    if not deleted:
        raise NotFound("Secret not found.")


@transaction.atomic
def memory_set(*, workspace: Workspace, key: str, value: Any) -> WorkspaceMemory:
    """Create or replace an entry; a new key counts against WORKSPACE_MAX_MEMORY_KEYS."""
    others = WorkspaceMemory.objects.filter(workspace=workspace).exclude(key=key)
    quota_check(workspace=workspace, resource="memory_keys", existing=others)
    entry, _ = WorkspaceMemory.objects.update_or_create(
        workspace=workspace, key=key, defaults={"value": value}
    )
    return entry


def memory_delete(*, workspace: Workspace, key: str) -> None:
    deleted, _ = WorkspaceMemory.objects.filter(workspace=workspace, key=key).delete()
    if not deleted:
        raise NotFound("Memory entry not found.")
