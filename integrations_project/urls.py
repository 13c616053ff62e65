"""Root URLs. API routes sit at the root of the site (no prefix), with and without a slash."""

from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from channels_app.urls import webhook_urlpatterns
from common.urls import api_route
from integrations_project.health import HealthView
from integrations_project.views import index
from observability.views import metrics_view
from tokens.urls import admin_api_urlpatterns

admin.site.site_header = "Integrations API console"
admin.site.site_title = "Integrations API"
admin.site.index_title = "Operations"

urlpatterns = [
    *webhook_urlpatterns,  # the hottest route first (see channels_app/urls.py)
    *admin_api_urlpatterns,
    path("admin/", admin.site.urls),
    path("", index, name="index"),
    *api_route("health", HealthView.as_view(), "health"),
    *api_route("metrics", metrics_view, "metrics"),
    *api_route("api/schema", SpectacularAPIView.as_view(), "schema"),
    *api_route("api/docs", SpectacularSwaggerView.as_view(url_name="schema"), "swagger-ui"),
    path("", include("workspaces.urls")),
    path("", include("tokens.urls")),
    path("", include("templates_app.urls")),
    path("", include("approvals.urls")),
    path("", include("plugins_app.urls")),
    path("", include("channels_app.urls")),
    path("", include("schedules.urls")),
]

handler400 = "integrations_project.views.bad_request"
handler403 = "integrations_project.views.permission_denied"
handler404 = "integrations_project.views.not_found"
handler500 = "integrations_project.views.server_error"
