from django.urls import re_path

from common.urls import api_route
from tokens.api import views

WS = "workspaces/<uuid:workspace_id>"

urlpatterns = [
    *api_route(f"{WS}/tokens", views.TokenListCreateView.as_view(), "workspace-token-list"),
    *api_route(f"{WS}/tokens/<uuid:token_id>", views.TokenDetailView.as_view(), "workspace-token-detail"),
]

# Declared before the admin console's URLs so its catch-all never shadows it.
admin_api_urlpatterns = [
    *api_route(f"admin/{WS}/tokens", views.AdminTokenMintView.as_view(), "admin-workspace-token-mint"),
    # A malformed id is the API's JSON 404, not the console's login redirect.
    re_path(r"^admin/workspaces/[^/]+/tokens/?$", views.malformed_workspace_id),
]
