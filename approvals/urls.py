from approvals.api import views
from common.urls import api_route

WS = "workspaces/<uuid:workspace_id>"

urlpatterns = [
    *api_route(f"{WS}/approvals", views.ApprovalListCreateView.as_view(), "approval-list"),
    *api_route(f"{WS}/approvals/<uuid:approval_id>", views.ApprovalDetailView.as_view(), "approval-detail"),
    *api_route(
        f"{WS}/approvals/<uuid:approval_id>/decide", views.ApprovalDecideView.as_view(), "approval-decide"
    ),
    *api_route("approvals/pending", views.PendingApprovalListView.as_view(), "approval-pending"),
]
