"""Base view for every `/workspaces/:id/...` route of every app.

Auth runs first (WorkspaceAuth), then the workspace is loaded once as `self.workspace`; a
missing workspace is a 404 (only reachable with admin credentials, see SPEC §2). The model is
looked up through the app registry so that `access` imports no app (`workspaces` imports it).
"""

from __future__ import annotations

from typing import Any

from django.apps import apps
from rest_framework.generics import GenericAPIView
from rest_framework.request import Request

from access.permissions import WorkspaceAuth, principal_of
from access.principal import Principal
from common.errors import NotFound


class WorkspaceScopedView(GenericAPIView):
    permission_classes = [WorkspaceAuth]
    workspace: Any  # a workspaces.models.Workspace, loaded in `initial`

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        super().initial(request, *args, **kwargs)
        model = apps.get_model("workspaces", "Workspace")
        workspace = model.objects.filter(pk=kwargs["workspace_id"]).first()
        if workspace is None:
            raise NotFound("Workspace not found.")
        self.workspace = workspace

    @property
    def principal(self) -> Principal:
        principal = principal_of(self.request)
        assert principal is not None  # guaranteed by WorkspaceAuth
        return principal
