from django.apps import AppConfig


class TemplatesAppConfig(AppConfig):
    """Workspace templates, org.yaml import, bundles (export/import) and their jobs."""

    name = "templates_app"
    verbose_name = "Templates and bundles"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from templates_app import checks  # noqa: F401 - registers the check
        from templates_app.app_sections import register_app_sections

        register_app_sections()
