"""Query-string filters of the workspace list."""

from __future__ import annotations

import uuid
from typing import Any

import django_filters
from django import forms
from django.db.models import QuerySet

from workspaces.models import Workspace
from workspaces.services import runtime_normalize

ROOT_VALUES = {"null", "none", "root"}


class _ParentField(forms.Field):
    """A workspace UUID, or `null` for root workspaces."""

    def to_python(self, value: Any) -> uuid.UUID | str | None:
        if value in (None, ""):
            return None
        if str(value).lower() in ROOT_VALUES:
            return "null"
        try:
            return uuid.UUID(str(value))
        except ValueError:
            raise forms.ValidationError("Must be a workspace UUID or null.") from None


class _ParentFilter(django_filters.Filter):
    field_class = _ParentField

    def filter(self, qs: QuerySet, value: Any) -> QuerySet:
        if value is None:
            return qs
        if value == "null":
            return qs.filter(parent__isnull=True)
        return qs.filter(parent_id=value)


class WorkspaceFilter(django_filters.FilterSet):
    parent_id = _ParentFilter(help_text="Children of this workspace; `null` for root workspaces.")
    runtime = django_filters.CharFilter(method="filter_runtime", help_text="`-` and `_` are equal.")

    class Meta:
        model = Workspace
        fields: list[str] = []

    def filter_runtime(self, queryset: QuerySet, name: str, value: str) -> QuerySet:
        return queryset.filter(runtime=runtime_normalize(value) or value)
