"""Keyset ("cursor") pagination: the body stays a JSON array, the next page is in `Link`.

A cursor holds the ordering values of the last row served, so pages stay stable while rows are
inserted, and each page costs one query whatever the table size.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.models import Model, Q, QuerySet
from rest_framework.pagination import BasePagination
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.utils.urls import replace_query_param

from common.errors import InvalidParameter

DEFAULT_LIMIT = 50
MAX_LIMIT = 200
DEFAULT_ORDERING: tuple[str, ...] = ("-created_at", "-id")


def parse_limit(request: Request) -> int:
    raw = request.query_params.get("limit")
    if raw is None or raw == "":
        return DEFAULT_LIMIT
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if not 1 <= value <= MAX_LIMIT:
        raise InvalidParameter(
            f"limit must be an integer from 1 to {MAX_LIMIT}.",
            details={"limit": [f"Must be an integer from 1 to {MAX_LIMIT}."]},
        )
    return value


def _encode(values: Sequence[Any]) -> str:
    def plain(value: Any) -> Any:
        if isinstance(value, datetime):
            return value.isoformat()
        if isinstance(value, UUID):
            return str(value)
        return value

    raw = json.dumps([plain(value) for value in values], separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _bad_cursor() -> InvalidParameter:
    return InvalidParameter("cursor is not valid.", details={"cursor": ["Not a valid cursor."]})


def _decode(cursor: str, model: type[Model], fields: Sequence[str]) -> list[Any]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        values = json.loads(base64.urlsafe_b64decode(padded.encode()).decode())
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise _bad_cursor() from None
    if not isinstance(values, list) or len(values) != len(fields):
        raise _bad_cursor()
    try:
        return [
            model._meta.get_field(name).to_python(value) for name, value in zip(fields, values, strict=True)
        ]
    except (DjangoValidationError, TypeError, ValueError):
        raise _bad_cursor() from None


def _after(ordering: Sequence[str], values: Sequence[Any]) -> Q:
    """Rows strictly after `values` in `ordering`: (a > x) or (a = x and b > y) ..."""
    condition = Q()
    equal_so_far = Q()
    for term, value in zip(ordering, values, strict=True):
        name = term.lstrip("-")
        lookup = "lt" if term.startswith("-") else "gt"
        condition |= equal_so_far & Q(**{f"{name}__{lookup}": value})
        equal_so_far &= Q(**{name: value})
    return condition


class CursorLinkPagination(BasePagination):
    """Array body, `?limit=` (1–200, default 50), `Link: <…>; rel="next"` when more rows exist.

    Views set `ordering` (local, non-null fields ending with a unique one); the default is
    newest first.
    """

    def paginate_queryset(self, queryset: QuerySet, request: Request, view: Any = None) -> list[Any]:
        ordering = tuple(getattr(view, "ordering", None) or DEFAULT_ORDERING)
        if ordering[-1].lstrip("-") not in {"id", "pk"}:
            ordering = (*ordering, "-id" if ordering[-1].startswith("-") else "id")
        fields = [term.lstrip("-") for term in ordering]
        limit = parse_limit(request)
        cursor = request.query_params.get("cursor")
        if cursor:
            queryset = queryset.filter(_after(ordering, _decode(cursor, queryset.model, fields)))
        rows = list(queryset.order_by(*ordering)[: limit + 1])
        self.request = request
        self.next_cursor: str | None = None
        if len(rows) > limit:
            rows = rows[:limit]
            last = rows[-1]
            self.next_cursor = _encode(
                [getattr(last, queryset.model._meta.get_field(name).attname) for name in fields]
            )
        return rows

    def get_next_link(self) -> str | None:
        if not self.next_cursor:
            return None
        return replace_query_param(self.request.build_absolute_uri(), "cursor", self.next_cursor)

    def get_paginated_response(self, data: Any) -> Response:
        headers = {}
        next_link = self.get_next_link()
        if next_link:
            headers["Link"] = f'<{next_link}>; rel="next"'
        return Response(data, headers=headers)

    def get_paginated_response_schema(self, schema: dict[str, Any]) -> dict[str, Any]:
        return schema

    def get_schema_operation_parameters(self, view: Any) -> list[dict[str, Any]]:
        return [
            {
                "name": "limit",
                "in": "query",
                "required": False,
                "description": f"Page size, 1 to {MAX_LIMIT} (default {DEFAULT_LIMIT}).",
                "schema": {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT},
            },
            {
                "name": "cursor",
                "in": "query",
                "required": False,
                "description": 'Opaque cursor taken from the `Link: <…>; rel="next"` header.',
                "schema": {"type": "string"},
            },
        ]
