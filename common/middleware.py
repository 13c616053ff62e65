"""Request-level guards that must run before any view parses a body."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse

from common.errors import PayloadTooLarge, error_response
from common.logging import request_id_var

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,128}$")


class RequestIdMiddleware:
    """Takes a well-formed `X-Request-Id` or makes one; echoes it and tags the logs with it."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        incoming = request.headers.get("X-Request-Id", "")
        request_id = incoming if _REQUEST_ID.match(incoming) else uuid.uuid4().hex
        request.request_id = request_id  # type: ignore[attr-defined]
        token = request_id_var.set(request_id)
        try:
            response = self.get_response(request)
        finally:
            request_id_var.reset(token)
        response["X-Request-Id"] = request_id
        return response


def body_limit_for(view_func: Callable) -> int:
    """The body cap of a view: `max_body_bytes` on the DRF view class or function, else 1 MiB."""
    cls = getattr(view_func, "cls", None)
    limit = getattr(cls, "max_body_bytes", None) or getattr(view_func, "max_body_bytes", None)
    return int(limit or settings.API_MAX_BODY_BYTES)


class BodySizeLimitMiddleware:
    """Refuses bodies above the view's cap with 413, from Content-Length, before parsing.

    Also answers 404 for a path parameter holding NUL (see `process_view`).
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_view(
        self, request: HttpRequest, view_func: Callable, view_args: tuple, view_kwargs: dict
    ) -> HttpResponse | None:
        if any("\x00" in str(value) for value in view_kwargs.values()):
            # `%00` in a `<str:...>` segment (secret key, plugin name, webhook type) names nothing
            # that can exist, and PostgreSQL refuses NUL in a query: a 404, not a 500.
            return error_response("Not found.", "not_found", 404)
        raw_length = request.META.get("CONTENT_LENGTH") or "0"
        try:
            length = int(raw_length)
        except ValueError:
            return error_response("Content-Length is not valid.", "invalid_request", 400)
        limit = body_limit_for(view_func)
        if length > limit:
            return error_response(
                f"{PayloadTooLarge.message} The limit is {limit} bytes.", "payload_too_large", 413
            )
        return None
