from common.urls import api_route
from plugins_app.api import views

WS = "workspaces/<uuid:workspace_id>/plugins"

# `available` and `compatibility` come before `<name>` so they are never taken for a name.
urlpatterns = [
    *api_route("plugins", views.PluginRegistryView.as_view(), "plugin-registry"),
    *api_route("plugins/sources", views.PluginSourcesView.as_view(), "plugin-sources"),
    *api_route(WS, views.InstalledPluginListView.as_view(), "workspace-plugin-list"),
    *api_route(f"{WS}/available", views.PluginAvailableView.as_view(), "workspace-plugin-available"),
    *api_route(
        f"{WS}/compatibility", views.PluginCompatibilityView.as_view(), "workspace-plugin-compatibility"
    ),
    *api_route(f"{WS}/<str:name>", views.InstalledPluginDetailView.as_view(), "workspace-plugin-detail"),
    *api_route(f"{WS}/<str:name>/download", views.PluginDownloadView.as_view(), "workspace-plugin-download"),
]
