"""Running the adapters' `on_enable` / `on_disable` hooks once a channel change is committed.

Only for adapters whose hooks are active (`ChannelAdapter.hooks_active`, e.g. Telegram with a
PUBLIC_BASE_URL: its webhook); for the others nothing is scheduled. A failed hook is written to
the channel's `last_error` and undoes nothing; a deleted channel's hook is a `ChannelCleanup`
job, retried after transient failures.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from django.db import transaction
from django.utils import timezone

from channels_app.adapters.base import SendError
from channels_app.models import Channel, ChannelCleanup
from channels_app.services.base import LOGGER_NAME, adapter_for, inbound_url
from common.crypto import DecryptionError, decrypt, encrypt

logger = logging.getLogger(LOGGER_NAME)
# Transient failures of a deleted channel's `on_disable` retried before it is given up.
CLEANUP_MAX_RETRIES = 5


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
    """In the deleting transaction: a `ChannelCleanup` row for the channel's `on_disable` (the
    relay publishes its task after commit).

    In a task rather than in the request: nobody will read the channel's `last_error` any more,
    and a workspace subtree can hold many channels, each call up to 15 s. The config (a bot
    token) is stored sealed (encrypted), and no message ever carries it.
    """
    if not adapter_for(channel.platform).hooks_active():
        return
    channel_cleanup_create(
        channel_id=channel.pk,
        platform=channel.platform,
        credential_key=channel.credential_key,
        sealed_config=encrypt(json.dumps(channel.config)),
    )


def channel_cleanup_create(
    *, channel_id: Any, platform: str, credential_key: str, sealed_config: str
) -> None:
    """A due `ChannelCleanup` row (its INSERT wakes the relay)."""
    ChannelCleanup.objects.create(
        channel_id=channel_id, platform=platform, credential_key=credential_key, sealed_config=sealed_config
    )


def _disable_call(platform: str) -> str:
    return adapter_for(platform).disable_call


class CleanupNotDone(Exception):
    """A transient failure of a deleted channel's `on_disable`: tried again after a backoff."""

    def __init__(self, tries: int) -> None:
        super().__init__(tries)
        self.tries = tries


def channel_cleanup_run(*, cleanup_id: Any) -> None:
    """The body of a `ChannelCleanup` job: the adapter's `on_disable` with the sealed config,
    unless another enabled channel still uses the credential; then the row is deleted. Raises
    `CleanupNotDone` after a transient failure with tries left; a permanent failure, or the last
    try, is logged and recorded on the row (config dropped), which ends the job."""
    cleanup = ChannelCleanup.objects.filter(pk=cleanup_id).first()
    if cleanup is None:
        return
    call = _disable_call(cleanup.platform)
    try:
        config = json.loads(decrypt(cleanup.sealed_config))
    except (DecryptionError, ValueError):
        logger.warning("%s of channel %s skipped: its config cannot be read", call, cleanup.channel_id)
        cleanup.delete()
        return
    shared = (
        Channel.objects.filter(platform=cleanup.platform, credential_key=cleanup.credential_key, enabled=True)
        .exclude(pk=cleanup.channel_id)
        .exists()
    )
    if not shared:
        try:
            adapter_for(cleanup.platform).on_disable(config)
        except SendError as exc:
            _cleanup_failed(cleanup, call, exc)
            return
    cleanup.delete()


def _cleanup_failed(cleanup: ChannelCleanup, call: str, exc: SendError) -> None:
    tries = cleanup.tries + 1
    reason = exc.reason[:300]
    if exc.transient and tries <= CLEANUP_MAX_RETRIES:
        ChannelCleanup.objects.filter(pk=cleanup.pk).update(tries=tries, error=reason)
        raise CleanupNotDone(tries)
    ChannelCleanup.objects.filter(pk=cleanup.pk).update(
        tries=tries, error=reason, failed_at=timezone.now(), sealed_config=""
    )
    logger.warning("%s of deleted channel %s given up: %s", call, cleanup.channel_id, reason)


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
