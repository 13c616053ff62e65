from django.apps import AppConfig


class AccessConfig(AppConfig):
    """Who may call what: the `Principal`, the permission classes and the workspace-scoped view base.

    Below `tokens` and `workspaces` (both import it, it imports neither), so the two never import
    each other. No models.
    """

    name = "access"
