"""Admin console building blocks shared by the apps."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest


def deleting_through_a_workspace(request: HttpRequest) -> bool:
    """True on the workspace's own pages, whose delete checks the permission of every related row.

    History rows (runs, message logs, audit trails) are never deleted on their own pages, only
    together with their workspace; without this the workspace's delete page would refuse.
    """
    match = getattr(request, "resolver_match", None)
    return bool(match and match.url_name and match.url_name.startswith("workspaces_workspace_"))


class ReadOnlyAdminMixin:
    """A log or history page: rows are written by the services only, never in the console."""

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return deleting_through_a_workspace(request) and super().has_delete_permission(request, obj)  # type: ignore[misc]
