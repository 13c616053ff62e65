from django.apps import AppConfig


class ObservabilityConfig(AppConfig):
    """Prometheus metrics: the instruments other apps update, and the `/metrics` endpoint."""

    name = "observability"
    verbose_name = "Observability"
