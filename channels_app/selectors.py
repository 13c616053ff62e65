"""Channel reads: lists, lookups, public config for export, and inbound candidates."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from uuid import UUID

from django.db.models import QuerySet

from channels_app.adapters import get_adapter
from channels_app.adapters.base import credential_digest
from channels_app.models import Channel, ChannelMessage
from common.errors import NotFound
from workspaces.models import Workspace


def channel_list(*, workspace: Workspace) -> QuerySet[Channel]:
    return Channel.objects.filter(workspace=workspace)


def channel_get(*, workspace: Workspace, channel_id: UUID | str) -> Channel:
    """A channel of this workspace; another workspace's channel is a 404 like a missing one."""
    channel = Channel.objects.filter(workspace=workspace, pk=channel_id).first()
    if channel is None:
        raise NotFound("Channel not found.")
    return channel


def channel_public_config(*, channel: Channel) -> dict[str, Any]:
    """The config without any secret field (bundle export: secrets never leave the service)."""
    adapter = get_adapter(channel.platform)
    secret_keys = adapter.secret_keys() if adapter else frozenset()
    return {k: v for k, v in channel.public_config.items() if k not in secret_keys}


def message_list(*, channel: Channel) -> QuerySet[ChannelMessage]:
    return ChannelMessage.objects.filter(channel=channel)


def _parse_uuid(value: str) -> UUID | None:
    try:
        return UUID(value)
    except (ValueError, TypeError, AttributeError):
        return None


def webhook_candidates(*, platform: str, headers: Mapping[str, str], channel_id: str | None) -> list[Channel]:
    """Channels an inbound request may belong to, to be verified in turn (first match wins).

    The `channel` query parameter names one directly. Without it: telegram's secret header
    selects by its keyed hash; discord, slack and lark try each enabled channel of the platform,
    one per distinct credential, since only verification can tell them apart.
    """
    if channel_id is not None:
        pk = _parse_uuid(channel_id)
        return list(Channel.objects.filter(pk=pk, platform=platform)) if pk else []
    queryset = Channel.objects.filter(platform=platform, enabled=True).order_by("created_at", "id")
    if platform == "telegram":
        secret = headers.get("X-Telegram-Bot-Api-Secret-Token") or ""
        if not secret:
            return []
        return list(queryset.filter(lookup_key=credential_digest(platform, secret)))
    seen: set[str] = set()
    candidates = []
    for channel in queryset:
        key = channel.lookup_key or channel.credential_key or str(channel.pk)
        if key not in seen:
            seen.add(key)
            candidates.append(channel)
    return candidates


def fanout_targets(*, channel: Channel, chat_id: str) -> list[Channel]:
    """Every enabled channel sharing `channel`'s credentials whose chat filter takes `chat_id`."""
    adapter = get_adapter(channel.platform)
    assert adapter is not None
    group: list[Channel] = [channel] if channel.enabled else []
    if channel.credential_key:
        group += list(
            Channel.objects.filter(
                platform=channel.platform, credential_key=channel.credential_key, enabled=True
            )
            .exclude(pk=channel.pk)
            .order_by("created_at", "id")
        )
    return [c for c in group if adapter.chat_matches(c.public_config, chat_id)]
