"""Admin index: how many approvals are waiting for an operator (one COUNT query)."""

from __future__ import annotations

from typing import Any

from django import template
from django.urls import reverse

from approvals.selectors import approval_pending_count

register = template.Library()


@register.inclusion_tag("admin/approvals/pending_notice.html", takes_context=True)
def pending_approvals_notice(context: dict[str, Any]) -> dict[str, Any]:
    request = context.get("request")
    user = getattr(request, "user", None)
    if user is None or not user.has_perm("approvals.view_approval"):
        return {"show": False}
    return {
        "show": True,
        "count": approval_pending_count(),
        "url": reverse("admin:approvals_approval_changelist") + "?status=pending",
    }
