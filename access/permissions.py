"""AdminAuth and WorkspaceAuth, with the 401/403/404 rules of the contract (SPEC §2)."""

from __future__ import annotations

from typing import Any

from rest_framework.exceptions import NotAuthenticated, PermissionDenied
from rest_framework.permissions import BasePermission
from rest_framework.request import Request

from access.principal import Principal

WORKSPACE_URL_KWARG = "workspace_id"


def principal_of(request: Request) -> Principal | None:
    auth = getattr(request, "auth", None)
    return auth if isinstance(auth, Principal) else None


def require_principal(request: Request) -> Principal:
    principal = principal_of(request)
    if principal is None:
        raise NotAuthenticated()
    return principal


class AdminAuth(BasePermission):
    """Admin tokens, ADMIN_TOKEN and staff sessions. A workspace token → 403."""

    def has_permission(self, request: Request, view: Any) -> bool:
        if not require_principal(request).is_admin:
            raise PermissionDenied()
        return True


class WorkspaceAuth(BasePermission):
    """A token of the workspace in the URL, or any admin credential.

    A workspace token of another workspace is a 403 whether or not the workspace exists; the
    view answers 404 to an admin for a workspace that does not exist.
    """

    def has_permission(self, request: Request, view: Any) -> bool:
        principal = require_principal(request)
        if not principal.can_access(view.kwargs[WORKSPACE_URL_KWARG]):
            raise PermissionDenied()
        return True


class PublicAccess(BasePermission):
    """Routes open to everyone (health, adapters, plugin registry, webhooks)."""

    def has_permission(self, request: Request, view: Any) -> bool:
        return True
