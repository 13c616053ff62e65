"""Keyset ("cursor") pagination: the body stays a JSON array, the next page is in `Link`.

A cursor holds the ordering values of the last row served, so pages stay stable while rows are
inserted, and each page costs one query whatever the table size.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.models import Model, Q, QuerySet
from drf_spectacular.utils import OpenApiParameter
from rest_framework.pagination import BasePagination
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.utils.urls import replace_query_param

from common.errors import InvalidParameter

DEFAULT_LIMIT = 50
MAX_LIMIT = 200
DEFAULT_ORDERING: tuple[str, ...] = ("-created_at", "-id")
CURSOR_PATTERN = r"^[A-Za-z0-9_-]{1,2048}$"  # unpadded base64url, as the `Link` header gives it
LIMIT_PARAMETER: dict[str, Any] = {
    "name": "limit",
    "in": "query",
    "required": False,
    "description": f"Page size, 1 to {MAX_LIMIT} (default {DEFAULT_LIMIT}).",
    "schema": {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT},
}
CURSOR_PARAMETER: dict[str, Any] = {
    "name": "cursor",
    "in": "query",
    "required": False,
    "description": 'Opaque cursor taken from the `Link: <…>; rel="next"` header; any other value is '
    "a 400 `invalid_parameter`.",
    "schema": {"type": "string", "pattern": CURSOR_PATTERN},
}

# The same two parameters, for views that page something other than a queryset.
PAGE_PARAMETERS = [
    OpenApiParameter(p["name"], p["schema"], description=p["description"])
    for p in (LIMIT_PARAMETER, CURSOR_PARAMETER)
]


def query_value(request: Request, name: str) -> str | None:
    """A query parameter's value, None when absent; present but empty is a 400 (SPEC §1)."""
    value = request.query_params.get(name)
    if value == "":
        raise InvalidParameter(f"{name} must not be empty.", details={name: ["Must not be empty."]})
    return value


def parse_limit(request: Request) -> int:
    raw = query_value(request, "limit")
    if raw is None:
        return DEFAULT_LIMIT
    value = int(raw) if raw.isascii() and raw.isdigit() else 0
    if not 1 <= value <= MAX_LIMIT:
        raise InvalidParameter(
            f"limit must be an integer from 1 to {MAX_LIMIT}.",
            details={"limit": [f"Must be an integer from 1 to {MAX_LIMIT}."]},
        )
    return value


def parse_cursor(request: Request) -> bytes | None:
    """The decoded bytes of `?cursor=`, None when absent; a malformed one is a 400."""
    cursor = query_value(request, "cursor")
    if cursor is None:
        return None
    if not re.fullmatch(CURSOR_PATTERN, cursor):
        raise _bad_cursor()
    try:
        # validate=True: characters outside the alphabet are an error, not silently dropped.
        return base64.b64decode(cursor + "=" * (-len(cursor) % 4), altchars=b"-_", validate=True)
    except binascii.Error:
        raise _bad_cursor() from None


def paginate_by_key(
    request: Request, items: Sequence[Any], key: Callable[[Any], str]
) -> tuple[list[Any], dict[str, str]]:
    """A page of items that are not rows (folders on disk), sorted by a unique text key, with
    the same `limit`/`cursor`/`Link` rules as the database lists."""
    limit = parse_limit(request)
    raw = parse_cursor(request)
    if raw is not None:
        try:
            after = raw.decode()
        except UnicodeDecodeError:
            raise _bad_cursor() from None
        items = [item for item in items if key(item) > after]
    page = list(items[:limit])
    headers = {}
    if len(items) > limit:
        token = base64.urlsafe_b64encode(key(page[-1]).encode()).decode().rstrip("=")
        headers["Link"] = (
            f'<{replace_query_param(request.build_absolute_uri(), "cursor", token)}>; rel="next"'
        )
    return page, headers


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


def _decode(raw: bytes, model: type[Model], fields: Sequence[str]) -> list[Any]:
    try:
        values = json.loads(raw.decode())
    except (ValueError, UnicodeDecodeError):
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
        cursor = parse_cursor(request)
        if cursor is not None:
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
        return [LIMIT_PARAMETER, CURSOR_PARAMETER]
