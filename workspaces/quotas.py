"""Per-workspace limits, so one tenant cannot exhaust what all of them share.

A check counts under a lock on the workspace row, in the caller's transaction: two concurrent
creations for one workspace are serialised, so neither can slip past the limit.
"""

from __future__ import annotations

from django.conf import settings
from django.db import transaction
from django.db.models import QuerySet

from common.errors import ApplicationError
from workspaces.models import Workspace

# resource → setting holding its per-workspace limit
QUOTA_SETTINGS = {
    "schedules": "WORKSPACE_MAX_SCHEDULES",
    "channels": "WORKSPACE_MAX_CHANNELS",
    "plugins": "WORKSPACE_MAX_PLUGINS",
    "pending_approvals": "WORKSPACE_MAX_PENDING_APPROVALS",
    "memory_keys": "WORKSPACE_MAX_MEMORY_KEYS",
    "tokens": "WORKSPACE_TOKEN_LIMIT",
}


class LimitReached(ApplicationError):
    status_code = 409
    code = "limit_reached"
    message = "A per-workspace limit has been reached."


def quota_limit(resource: str) -> int:
    return int(getattr(settings, QUOTA_SETTINGS[resource]))


def limit_reached(*, resource: str, count: int | None = None) -> LimitReached:
    """The 409 for one more `resource` than the limit allows; `details.limit` says how many."""
    limit = quota_limit(resource)
    label = "active tokens" if resource == "tokens" else resource.replace("_", " ")
    message = f"A workspace may have at most {limit} {label}"
    message += f" (this one would have {count})." if count is not None else "; remove one first."
    return LimitReached(message, details={"limit": limit, "resource": resource})


def quota_check(*, workspace: Workspace, resource: str, existing: QuerySet, adding: int = 1) -> None:
    """Refuse (409 `limit_reached`) when `existing` plus `adding` would exceed the limit.

    Locks the workspace row first: call inside the transaction that then creates the rows.
    """
    assert transaction.get_connection().in_atomic_block, "quota_check needs the creating transaction"
    Workspace.objects.select_for_update().filter(pk=workspace.pk).exists()
    count = existing.count()
    if count + adding > quota_limit(resource):
        raise limit_reached(resource=resource)
