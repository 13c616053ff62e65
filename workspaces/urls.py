from common.urls import api_route
from workspaces.api import views

WS = "workspaces/<uuid:workspace_id>"

urlpatterns = [
    *api_route("workspaces", views.WorkspaceListCreateView.as_view(), "workspace-list"),
    *api_route(WS, views.WorkspaceDetailView.as_view(), "workspace-detail"),
    *api_route(f"{WS}/heartbeat", views.HeartbeatView.as_view(), "workspace-heartbeat"),
    *api_route(f"{WS}/secrets", views.SecretListView.as_view(), "workspace-secret-list"),
    *api_route(f"{WS}/secrets/<str:key>", views.SecretDetailView.as_view(), "workspace-secret-detail"),
    *api_route(f"{WS}/memory", views.MemoryListView.as_view(), "workspace-memory-list"),
    *api_route(f"{WS}/memory/<str:key>", views.MemoryDetailView.as_view(), "workspace-memory-detail"),
]
