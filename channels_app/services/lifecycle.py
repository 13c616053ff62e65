"""Running the adapters' `on_enable` / `on_disable` hooks once a channel change is committed.

Only for adapters whose hooks are active (`ChannelAdapter.hooks_active`, e.g. Telegram with a
PUBLIC_BASE_URL: its webhook); for the others nothing is scheduled. A failed hook is written to
the channel's `last_error` and undoes nothing.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from django.db import transaction

from channels_app.adapters.base import SendError
from channels_app.models import Channel
from channels_app.services.base import LOGGER_NAME, adapter_for, inbound_url
from common.crypto import DecryptionError, decrypt, encrypt
from common.outbox import BROKER_ERRORS

logger = logging.getLogger(LOGGER_NAME)


def enable_on_commit(channel: Channel) -> None:
    if adapter_for(channel.platform).hooks_active():
        channel_id = channel.pk
        transaction.on_commit(lambda: channel_enable_hook(channel_id=channel_id))


def disable_on_commit(channel: Channel, config: dict[str, Any]) -> None:
    if adapter_for(channel.platform).hooks_active():
        channel_id, platform, credential_key = channel.pk, channel.platform, channel.credential_key
        transaction.on_commit(
            lambda: channel_disable_hook(
                channel_id=channel_id, platform=platform, credential_key=credential_key, config=config
            )
        )


def disable_after_delete(channel: Channel) -> None:
    """Once the deletion of an enabled channel is committed, queue its `on_disable`.

    In a task rather than in the request: nobody will read the channel's `last_error` any more,
    and a workspace subtree can hold many channels, each call up to 15 s. The config (a bot
    token) travels encrypted (the broker never holds a plaintext secret); the task decrypts it.
    """
    if not adapter_for(channel.platform).hooks_active():
        return
    from channels_app.tasks import delete_telegram_webhook

    args = (str(channel.pk), channel.credential_key, encrypt(json.dumps(channel.config)), channel.platform)

    def publish() -> None:
        try:
            delete_telegram_webhook.delay(*args)
        except BROKER_ERRORS:
            logger.warning("broker unavailable: %s of channel %s not queued", _disable_call(args[3]), args[0])

    transaction.on_commit(publish)


def _disable_call(platform: str) -> str:
    return adapter_for(platform).disable_call


def channel_disable_hook_sealed(
    *, channel_id: str, platform: str, credential_key: str, sealed_config: str
) -> None:
    """`channel_disable_hook` with the config as `disable_after_delete` sealed it."""
    try:
        config = json.loads(decrypt(sealed_config))
    except (DecryptionError, ValueError):
        logger.warning(
            "%s of channel %s skipped: its config cannot be read", _disable_call(platform), channel_id
        )
        return
    channel_disable_hook(
        channel_id=channel_id, platform=platform, credential_key=credential_key, config=config
    )


def channel_enable_hook(*, channel_id: Any) -> None:
    """The adapter's `on_enable` with the channel as committed; a failure goes to `last_error`."""
    channel = Channel.objects.filter(pk=channel_id).first()
    if channel is None:
        return
    adapter = adapter_for(channel.platform)
    failed = f"{adapter.enable_call} failed"
    try:
        adapter.on_enable(channel.config, inbound_url=inbound_url(channel=channel))
    except SendError as exc:
        Channel.objects.filter(pk=channel.pk).update(last_error=f"{failed}: {exc.reason}")
        return
    Channel.objects.filter(pk=channel.pk, last_error__startswith=failed).update(last_error="")


def channel_disable_hook(
    *, channel_id: Any, platform: str, credential_key: str, config: dict[str, Any]
) -> None:
    """The adapter's `on_disable`, unless another enabled channel still uses the same credential."""
    if (
        Channel.objects.filter(platform=platform, credential_key=credential_key, enabled=True)
        .exclude(pk=channel_id)
        .exists()
    ):
        return
    adapter = adapter_for(platform)
    try:
        adapter.on_disable(config)
    except SendError as exc:
        Channel.objects.filter(pk=channel_id).update(
            last_error=f"{adapter.disable_call} failed: {exc.reason}"
        )
