"""Query-string filters of the template list."""

from __future__ import annotations

import django_filters
from django.db.models import QuerySet

from templates_app.models import WorkspaceTemplate
from workspaces.services import runtime_normalize


class TemplateFilter(django_filters.FilterSet):
    runtime = django_filters.CharFilter(method="filter_runtime", help_text="`-` and `_` are equal.")

    class Meta:
        model = WorkspaceTemplate
        fields: list[str] = []

    def filter_runtime(self, queryset: QuerySet, name: str, value: str) -> QuerySet:
        return queryset.filter(runtime=runtime_normalize(value) or value)
