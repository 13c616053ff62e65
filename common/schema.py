"""OpenAPI generation hooks."""

from __future__ import annotations

from typing import Any


def drop_trailing_slash_twins(endpoints: list[tuple[Any, ...]], **kwargs: Any) -> list[tuple[Any, ...]]:
    """Every API path also answers with a trailing slash; document each path once, without it."""
    return [
        endpoint
        for endpoint in endpoints
        if endpoint[0] == "/" or not endpoint[0].endswith("/") or endpoint[0].startswith("/api/")
    ]
