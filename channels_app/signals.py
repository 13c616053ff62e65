"""A workspace deletion takes its channels with it: unregister their Telegram webhooks too
(queued after the commit, see `services.unregister_after_delete`).

`DELETE /workspaces/:id` removes the channels by database cascade, which never reaches
`channel_delete`; without this the bot would keep posting to the URL of a channel that is gone.
Runs for every workspace of a `?cascade=true` subtree (Django sends the signal per row).
"""

from __future__ import annotations

from typing import Any

from django.db.models.signals import pre_delete
from django.dispatch import receiver

from channels_app.models import Channel
from channels_app.services import unregister_after_delete
from workspaces.models import Workspace


@receiver(pre_delete, sender=Workspace, dispatch_uid="channels_app.workspace_webhooks")
def unregister_workspace_webhooks(sender: type[Workspace], instance: Workspace, **kwargs: Any) -> None:
    for channel in Channel.objects.filter(workspace_id=instance.pk, platform="telegram", enabled=True):
        unregister_after_delete(channel)
