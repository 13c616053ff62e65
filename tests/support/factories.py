"""Small builders for test data, going through the real services."""

from __future__ import annotations

from typing import Any

from access.principal import Principal
from tokens.services import admin_token_create, workspace_token_create
from workspaces.models import Workspace
from workspaces.services import workspace_create

SYSTEM = Principal(kind="env_admin", name="tests")


def make_workspace(name: str = "ws", **kwargs: Any) -> Workspace:
    return workspace_create(name=name, **kwargs)


def make_workspace_token(workspace: Workspace, role: str = "agent", **kwargs: Any) -> str:
    return workspace_token_create(workspace=workspace, creator=SYSTEM, role=role, **kwargs).plaintext


def make_admin_token(name: str = "admin") -> str:
    return admin_token_create(name=name, created_by="tests").plaintext


def bearer(token: str) -> dict[str, str]:
    return {"HTTP_AUTHORIZATION": f"Bearer {token}"}
