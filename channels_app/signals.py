"""A workspace deletion takes its channels with it: run their adapters' `on_disable` too (e.g.
unregister a Telegram webhook; a job row in the deleting transaction, see
`services.disable_after_delete`).

`DELETE /workspaces/:id` removes the channels by database cascade, which never reaches
`channel_delete`; without this the bot would keep posting to the URL of a channel that is gone.
Runs for every workspace of a `?cascade=true` subtree (Django sends the signal per row).
"""

from __future__ import annotations

from typing import Any

from django.db.models.signals import pre_delete
from django.dispatch import receiver

from channels_app.adapters import ADAPTERS
from channels_app.models import Channel
from channels_app.services import disable_after_delete
from workspaces.models import Workspace


@receiver(pre_delete, sender=Workspace, dispatch_uid="channels_app.workspace_webhooks")
def unregister_workspace_webhooks(sender: type[Workspace], instance: Workspace, **kwargs: Any) -> None:
    hooked = [platform for platform, adapter in ADAPTERS.items() if adapter.hooks_active()]
    if not hooked:
        return
    for channel in Channel.objects.filter(workspace_id=instance.pk, platform__in=hooked, enabled=True):
        disable_after_delete(channel)
