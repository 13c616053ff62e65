from django.apps import AppConfig


class WorkspacesConfig(AppConfig):
    """Workspaces (agents), their secrets and memory, heartbeats and the A2A client."""

    name = "workspaces"
