from common.urls import api_route
from schedules.api import views

BASE = "workspaces/<uuid:workspace_id>/schedules"
ONE = f"{BASE}/<uuid:schedule_id>"

urlpatterns = [
    *api_route(BASE, views.ScheduleListCreateView.as_view(), "schedule-list"),
    *api_route(f"{BASE}/preview", views.SchedulePreviewView.as_view(), "schedule-preview"),
    *api_route(ONE, views.ScheduleDetailView.as_view(), "schedule-detail"),
    *api_route(f"{ONE}/run", views.ScheduleRunNowView.as_view(), "schedule-run-now"),
    *api_route(f"{ONE}/history", views.ScheduleHistoryView.as_view(), "schedule-history"),
]
