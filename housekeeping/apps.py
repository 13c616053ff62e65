from django.apps import AppConfig


class HousekeepingConfig(AppConfig):
    """Retention: prunes finished history (runs, messages, jobs, approvals) in small batches."""

    name = "housekeeping"
    verbose_name = "Housekeeping"
