"""One error shape for the whole API: `{"error": message, "code": code, "details": {...}}`.

Services raise `ApplicationError` (or a subclass) with a stable machine code; the DRF exception
handler below maps those and DRF's own exceptions to the shape. Codes are listed in
docs/errors.md; never put upstream text, SQL, secrets or tokens in a message.
"""

from __future__ import annotations

import logging
import math
from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig
from django.http import Http404, JsonResponse
from rest_framework import exceptions as drf_exceptions
from rest_framework import status
from rest_framework.response import Response

logger = logging.getLogger(__name__)

UNAUTHENTICATED_MESSAGE = "Authentication credentials were not provided or are not valid."


class ApplicationError(Exception):
    """A failure the client can act on, with an HTTP status and a stable code."""

    status_code: int = status.HTTP_400_BAD_REQUEST
    code: str = "invalid_request"
    message: str = "The request is not valid."

    def __init__(
        self,
        message: str | None = None,
        *,
        code: str | None = None,
        status_code: int | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        self.message = message or self.message
        self.code = code or self.code
        self.status_code = status_code or self.status_code
        self.details = details
        super().__init__(self.message)


class NotFound(ApplicationError):
    status_code = status.HTTP_404_NOT_FOUND
    code = "not_found"
    message = "Not found."


class Forbidden(ApplicationError):
    status_code = status.HTTP_403_FORBIDDEN
    code = "forbidden"
    message = "You do not have permission to perform this action."


class Conflict(ApplicationError):
    status_code = status.HTTP_409_CONFLICT
    code = "conflict"
    message = "The request conflicts with the current state."


class PayloadTooLarge(ApplicationError):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    code = "payload_too_large"
    message = "The request body is too large."


class InvalidParameter(ApplicationError):
    code = "invalid_parameter"
    message = "A query parameter is not valid."


class UnknownField(ApplicationError):
    code = "unknown_field"
    message = "The request has fields that cannot be set."


def error_body(message: str, code: str, details: dict[str, Any] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"error": message, "code": code}
    if details:
        body["details"] = details
    return body


def error_response(
    message: str, code: str, status_code: int, details: dict[str, Any] | None = None
) -> JsonResponse:
    """The error shape for plain Django views and middleware (outside DRF)."""
    return JsonResponse(error_body(message, code, details), status=status_code)


def _validation_details(detail: Any) -> dict[str, Any]:
    """DRF validation detail → `{field: [messages]}`; non-field errors under `non_field_errors`."""
    if isinstance(detail, dict):
        return {str(key): _as_messages(value) for key, value in detail.items()}
    return {"non_field_errors": _as_messages(detail)}


def _as_messages(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(key): _as_messages(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        if all(not isinstance(item, (dict, list, tuple)) for item in value):
            return [str(item) for item in value]
        return [_as_messages(item) for item in value]
    return [str(value)]


def _first_message(details: dict[str, Any]) -> str:
    for field, messages in details.items():
        first = messages
        while isinstance(first, (list, dict)) and first:
            first = first[0] if isinstance(first, list) else next(iter(first.values()))
        if field == "non_field_errors":
            return f"{first}"
        return f"{field}: {first}"
    return "The request is not valid."


def api_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """DRF EXCEPTION_HANDLER: every error leaves the API in the one shape."""
    headers: dict[str, str] = {}
    if isinstance(exc, ApplicationError):
        body = error_body(exc.message, exc.code, exc.details)
        return Response(body, status=exc.status_code)
    if isinstance(exc, Http404):
        return Response(error_body("Not found.", "not_found"), status=404)
    if isinstance(exc, DjangoPermissionDenied):
        exc = drf_exceptions.PermissionDenied()
    if isinstance(exc, RequestDataTooBig):
        return Response(error_body(PayloadTooLarge.message, "payload_too_large"), status=413)
    if not isinstance(exc, drf_exceptions.APIException):
        return None  # unexpected: Django's 500 handler answers (JSON, no internals)

    if isinstance(exc, (drf_exceptions.NotAuthenticated, drf_exceptions.AuthenticationFailed)):
        headers["WWW-Authenticate"] = 'Bearer realm="api"'
        return Response(error_body(UNAUTHENTICATED_MESSAGE, "unauthenticated"), status=401, headers=headers)
    if isinstance(exc, drf_exceptions.PermissionDenied):
        return Response(error_body(Forbidden.message, "forbidden"), status=403)
    if isinstance(exc, drf_exceptions.NotFound):
        return Response(error_body("Not found.", "not_found"), status=404)
    if isinstance(exc, drf_exceptions.ParseError):
        return Response(error_body("The request body is not valid JSON.", "invalid_request"), status=400)
    if isinstance(exc, drf_exceptions.ValidationError):
        details = _validation_details(exc.detail)
        return Response(error_body(_first_message(details), "invalid_request", details), status=400)
    if isinstance(exc, drf_exceptions.MethodNotAllowed):
        return Response(error_body("Method not allowed.", "method_not_allowed"), status=405)
    if isinstance(exc, drf_exceptions.UnsupportedMediaType):
        return Response(
            error_body("Send the body as application/json.", "unsupported_media_type"),
            status=415,
        )
    if isinstance(exc, drf_exceptions.NotAcceptable):
        return Response(error_body("Not acceptable.", "not_acceptable"), status=406)
    if isinstance(exc, drf_exceptions.Throttled):
        # Whole seconds, rounded up: "0" would invite an immediate retry that fails again.
        retry_after = max(1, math.ceil(exc.wait or 1))
        headers["Retry-After"] = str(retry_after)
        body = error_body("Too many requests.", "throttled", {"retry_after": retry_after})
        return Response(body, status=429, headers=headers)
    logger.warning("unmapped API exception %s", type(exc).__name__)
    return Response(error_body("The request failed.", "invalid_request"), status=exc.status_code)
