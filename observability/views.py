"""`GET /metrics`: the Prometheus text exposition, for a scraper holding METRICS_TOKEN or on loopback.

A plain Django view (no DRF negotiation: the body is text, not JSON); refusals use the API's
error shape.
"""

from __future__ import annotations

import hmac
import ipaddress

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest, multiprocess

from common.errors import UNAUTHENTICATED_MESSAGE, error_response
from observability.collector import StateCollector

# A loopback peer that forwards for someone else is a proxy: its client is not local.
PROXY_HEADERS = ("HTTP_X_FORWARDED_FOR", "HTTP_FORWARDED", "HTTP_X_REAL_IP")
BEARER = "bearer "


def _is_loopback(address: str) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    mapped = getattr(ip, "ipv4_mapped", None)  # ::ffff:127.0.0.1 from a dual-stack socket
    return (mapped or ip).is_loopback


def metrics_refusal(request: HttpRequest) -> HttpResponse | None:
    """None when the request may scrape; else the 401/403 answer.

    With METRICS_TOKEN: `Authorization: Bearer <token>`, compared in constant time. Without it:
    only a direct loopback client (REMOTE_ADDR, and no proxy forwarding headers).
    """
    expected = settings.METRICS_TOKEN
    if expected:
        header = request.META.get("HTTP_AUTHORIZATION", "")
        given = header[len(BEARER) :].strip() if header[: len(BEARER)].lower() == BEARER else ""
        if given and hmac.compare_digest(given.encode(), expected.encode()):
            return None
        response = error_response(UNAUTHENTICATED_MESSAGE, "unauthenticated", 401)
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    local = _is_loopback(request.META.get("REMOTE_ADDR", ""))
    if local and not any(request.META.get(name) for name in PROXY_HEADERS):
        return None
    return error_response(
        "Metrics are served to loopback clients only unless METRICS_TOKEN is set.", "forbidden", 403
    )


def metrics_exposition() -> bytes:
    """Every process's counters and histograms (summed from the multiprocess directory) plus
    the levels read now from the database and the broker."""
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=str(settings.PROMETHEUS_MULTIPROC_DIR))
    registry.register(StateCollector())
    return generate_latest(registry)


@csrf_exempt  # read-only; a POST gets the JSON 405 below, not a CSRF page
def metrics_view(request: HttpRequest) -> HttpResponse:
    if request.method not in ("GET", "HEAD"):
        response = error_response("Method not allowed.", "method_not_allowed", 405)
        response["Allow"] = "GET, HEAD"
        return response
    refusal = metrics_refusal(request)
    if refusal is not None:
        return refusal
    return HttpResponse(metrics_exposition(), content_type=CONTENT_TYPE_LATEST)
