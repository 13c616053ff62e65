from django.apps import AppConfig


class CommonConfig(AppConfig):
    """Shared API plumbing: errors, pagination, filters, safe HTTP, encryption. No models."""

    name = "common"

    def ready(self) -> None:
        from common import (
            checks,  # noqa: F401 - registers the checks
            schema,  # noqa: F401 - registers the OpenAPI serializer extension
        )
