"""Base view for every `/workspaces/:id/...` route of every app.

Auth runs first (WorkspaceAuth), then the workspace is loaded once as `self.workspace`; a
missing workspace is a 404 (only reachable with admin credentials, see SPEC §2).
"""

from __future__ import annotations

from typing import Any

from rest_framework.generics import GenericAPIView
from rest_framework.request import Request

from tokens.permissions import WorkspaceAuth, principal_of
from tokens.principal import Principal
from workspaces.models import Workspace
from workspaces.selectors import workspace_get


class WorkspaceScopedView(GenericAPIView):
    permission_classes = [WorkspaceAuth]
    workspace: Workspace

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        super().initial(request, *args, **kwargs)
        self.workspace = workspace_get(workspace_id=kwargs["workspace_id"])

    @property
    def principal(self) -> Principal:
        principal = principal_of(self.request)
        assert principal is not None  # guaranteed by WorkspaceAuth
        return principal
