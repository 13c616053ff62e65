"""Plugin files belong to their workspace: remove them once a workspace deletion commits."""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.db.models.signals import post_delete
from django.dispatch import receiver

from common.fetch import remove_tree
from plugins_app.selectors import plugin_storage_path
from workspaces.models import Workspace


@receiver(post_delete, sender=Workspace, dispatch_uid="plugins_app.workspace_files")
def remove_workspace_plugin_files(sender: type[Workspace], instance: Workspace, **kwargs: Any) -> None:
    path = plugin_storage_path(workspace_id=instance.pk)
    transaction.on_commit(lambda: remove_tree(path))
