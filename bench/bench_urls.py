"""The service's own URLs plus `POST /bench/bare`: a Django view that only answers 200, for the
side-by-side baseline of bench/webhooks.py (same server, same middleware)."""

from django.http import HttpRequest, JsonResponse
from django.urls import path
from django.views.decorators.csrf import csrf_exempt

from integrations_project.urls import urlpatterns as service_urlpatterns


@csrf_exempt
def bare(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"ok": True})


urlpatterns = [path("bench/bare", bare), *service_urlpatterns]
