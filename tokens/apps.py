from django.apps import AppConfig


class TokensConfig(AppConfig):
    """Workspace and admin bearer tokens, and the DRF authentication classes that turn them into principals."""

    name = "tokens"

    def ready(self) -> None:
        from tokens import schema  # noqa: F401 - registers the OpenAPI auth extensions
