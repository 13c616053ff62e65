"""Query-string filters of the approval list."""

from __future__ import annotations

import django_filters
from django.db.models import QuerySet

from approvals.models import Approval, ApprovalStatus
from approvals.selectors import status_q


class ApprovalFilter(django_filters.FilterSet):
    status = django_filters.ChoiceFilter(
        choices=ApprovalStatus.choices,
        method="filter_status",
        help_text="Effective status: a pending approval past `expires_at` counts as `expired`.",
    )

    class Meta:
        model = Approval
        fields: list[str] = []

    def filter_status(self, queryset: QuerySet, name: str, value: str) -> QuerySet:
        return queryset.filter(status_q(value))
