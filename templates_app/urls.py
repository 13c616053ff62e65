from common.urls import api_route
from templates_app.api import views

urlpatterns = [
    *api_route("templates", views.TemplateListView.as_view(), "template-list"),
    *api_route("templates/import", views.TemplateImportView.as_view(), "template-import"),
    *api_route(
        "templates/imports/<uuid:job_id>", views.TemplateImportJobView.as_view(), "template-import-job"
    ),
    *api_route("org/templates", views.OrgTemplateListView.as_view(), "org-template-list"),
    *api_route("org/import", views.OrgImportView.as_view(), "org-import"),
    *api_route("bundles/export/<uuid:workspace_id>", views.BundleExportView.as_view(), "bundle-export"),
    *api_route("bundles/import", views.BundleImportView.as_view(), "bundle-import"),
]
