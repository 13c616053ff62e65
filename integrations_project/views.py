"""Site-wide error handlers: JSON in the API's error shape, HTML for the admin console."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.views import defaults
from django.views.decorators.csrf import csrf_exempt

from common.errors import error_response


def _is_console(request: HttpRequest) -> bool:
    return request.path.startswith("/admin/") and not request.path.startswith("/admin/workspaces/")


def not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    if _is_console(request):
        return defaults.page_not_found(request, exception)
    return error_response("Not found.", "not_found", 404)


def server_error(request: HttpRequest) -> HttpResponse:
    if _is_console(request):
        return defaults.server_error(request)
    return error_response("The server failed to handle the request.", "internal_error", 500)


def bad_request(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    if _is_console(request):
        return defaults.bad_request(request, exception)
    return error_response("Bad request.", "invalid_request", 400)


def permission_denied(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    if _is_console(request):
        return defaults.permission_denied(request, exception)
    return error_response("You do not have permission to perform this action.", "forbidden", 403)


@csrf_exempt  # it never changes anything; a POST gets the JSON 405 below, not a CSRF page
def index(request: HttpRequest) -> HttpResponse:
    """Where things are, for a person who opens the root URL."""
    from django.http import JsonResponse

    if request.method not in ("GET", "HEAD"):
        response = error_response("Method not allowed.", "method_not_allowed", 405)
        response["Allow"] = "GET, HEAD"
        return response

    return JsonResponse(
        {
            "service": "integrations-api",
            "docs": request.build_absolute_uri("/api/docs/"),
            "schema": request.build_absolute_uri("/api/schema/"),
            "admin": request.build_absolute_uri("/admin/"),
            "health": request.build_absolute_uri("/health"),
        }
    )
