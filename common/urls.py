"""Route helpers: every API path answers with and without a trailing slash, never redirecting."""

from __future__ import annotations

from collections.abc import Callable

from django.urls import URLPattern, path


def api_route(route: str, view: Callable, name: str) -> list[URLPattern]:
    route = route.strip("/")
    return [path(route, view, name=name), path(f"{route}/", view)]
