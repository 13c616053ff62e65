"""Query-string filtering where a bad value is a 400 `invalid_parameter`, never ignored."""

from __future__ import annotations

from typing import Any

import django_filters
from django import forms
from django.db.models import QuerySet
from django_filters.rest_framework import DjangoFilterBackend

from common.errors import InvalidParameter
from common.pagination import query_value


class StrictFilterBackend(DjangoFilterBackend):
    def filter_queryset(self, request: Any, queryset: QuerySet, view: Any) -> QuerySet:
        filterset = self.get_filterset(request, queryset, view)
        if filterset is None:
            return queryset
        for name in filterset.filters:
            query_value(request, name)  # `?status=` is a 400, not "no filter" (SPEC §1)
        if not filterset.is_valid():
            details = {name: [str(m) for m in msgs] for name, msgs in filterset.errors.items()}
            name = next(iter(details), "query")
            raise InvalidParameter(f"{name}: {details[name][0]}", details=details)
        return filterset.qs


_BOOLEANS = {"true": True, "1": True, "false": False, "0": False}


class _StrictBooleanField(forms.Field):
    """`true`/`false` (also `1`/`0`); anything else is an error instead of "no filter"."""

    def to_python(self, value: Any) -> bool | None:
        if value in (None, ""):
            return None
        key = str(value).strip().lower()
        if key not in _BOOLEANS:
            raise forms.ValidationError("Must be true or false.")
        return _BOOLEANS[key]


def bool_param(request: Any, name: str, *, default: bool = False) -> bool:
    """A boolean query parameter outside a FilterSet (e.g. `?cascade=`), as strict as the filters."""
    try:
        value = _StrictBooleanField().to_python(query_value(request, name))
    except forms.ValidationError:
        raise InvalidParameter(
            f"{name} must be true or false.", details={name: ["Must be true or false."]}
        ) from None
    return default if value is None else value


class StrictBooleanFilter(django_filters.Filter):
    field_class = _StrictBooleanField
