"""Token reads."""

from __future__ import annotations

from django.db.models import QuerySet

from tokens.models import WorkspaceToken
from workspaces.models import Workspace


def workspace_token_list(*, workspace: Workspace) -> QuerySet[WorkspaceToken]:
    """Active (not revoked, not expired) tokens of a workspace."""
    return WorkspaceToken.objects.active().filter(workspace=workspace)
