"""Channel reads: lists, lookups, public config for export, and inbound candidates."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any
from uuid import UUID

from django.db import connections, router
from django.db.models import QuerySet

from channels_app.adapters import get_adapter
from channels_app.adapters.base import credential_digests
from channels_app.adapters.telegram import SECRET_HEADER as TELEGRAM_SECRET_HEADER
from channels_app.models import Channel, ChannelMessage, Conversation
from common.crypto import decrypt
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


def channel_empty_secret_keys(*, channel: Channel) -> list[str]:
    """The secret fields of the channel's platform that hold no value (a bundle import leaves
    them empty; values the service generates itself, such as telegram's webhook secret, are set)."""
    adapter = get_adapter(channel.platform)
    if adapter is None:
        return []
    stored = channel.secrets
    return sorted(key for key in adapter.secret_keys() if not stored.get(key))


def message_list(*, channel: Channel) -> QuerySet[ChannelMessage]:
    return ChannelMessage.objects.filter(channel=channel)


def conversation_list(*, channel: Channel) -> QuerySet[Conversation]:
    """The channel's conversations, newest first; counters live on the row (one query a page)."""
    return Conversation.objects.filter(channel=channel).order_by("-created_at", "-id")


def _parse_uuid(value: str) -> UUID | None:
    try:
        return UUID(value)
    except (ValueError, TypeError, AttributeError):
        return None


class InboundChannel:
    """What the webhook path needs of a channel, read straight from a cursor row.

    Building full `Channel` models (every field converted, the secrets decrypted for every row
    of the fan-out pool) cost more than the query itself on the hottest path of the service.
    The secrets are decrypted only when `config` is asked for, i.e. for the channels actually
    verified against.
    """

    __slots__ = ("_sealed", "credential_key", "enabled", "lookup_key", "pk", "platform", "public_config")
    COLUMNS = "id, platform, enabled, credential_key, lookup_key, public_config, secret_config"

    def __init__(self, row: tuple[Any, ...]) -> None:
        pk, self.platform, enabled, self.credential_key, self.lookup_key, public, self._sealed = row
        self.pk = pk if isinstance(pk, UUID) else UUID(str(pk))
        self.enabled = bool(enabled)
        public = json.loads(public) if isinstance(public, (str, bytes)) else public
        self.public_config: dict[str, Any] = public if isinstance(public, dict) else {}

    @property
    def config(self) -> dict[str, Any]:
        """The full config, secrets in plaintext: for the adapter's verification only."""
        try:
            secrets = json.loads(decrypt(self._sealed) if self._sealed else "{}")
        except ValueError:
            secrets = {}
        return {**self.public_config, **(secrets if isinstance(secrets, dict) else {})}


# `{marks}`: one placeholder per digest (SECRET_KEY and each of SECRET_KEY_FALLBACKS).
_TELEGRAM_LOOKUP = (
    "SELECT {columns} FROM {table} WHERE platform = %s AND enabled AND (lookup_key IN ({marks}) OR "
    "(credential_key <> '' AND credential_key IN (SELECT credential_key FROM {table} "
    "WHERE platform = %s AND enabled AND lookup_key IN ({marks})))) ORDER BY created_at, id"
)


def _inbound_rows(sql: str, params: list[Any]) -> list[InboundChannel]:
    table = Channel._meta.db_table
    with connections[router.db_for_read(Channel)].cursor() as cursor:
        cursor.execute(sql.format(columns=InboundChannel.COLUMNS, table=table), params)
        return [InboundChannel(row) for row in cursor.fetchall()]


def webhook_channels(
    *, platform: str, headers: Mapping[str, str], channel_id: str | None
) -> tuple[list[InboundChannel], list[InboundChannel]]:
    """In one query: the channels an inbound request may belong to (to be verified in turn, first
    match wins), and the pool of enabled channels sharing their credentials (for fan-out).

    The `channel` query parameter names one directly. Without it: telegram's secret header
    selects by its keyed hash; discord, slack and lark try each enabled channel of the platform,
    one per distinct credential, since only verification can tell them apart.
    """
    # Written as one SQL statement per shape, the identifiers from the model's meta and every
    # value a bound parameter: they run on every webhook.
    if channel_id is not None:
        pk = _parse_uuid(channel_id)
        if pk is None:
            return [], []
        db_pk = Channel._meta.pk.get_db_prep_value(pk, connections[router.db_for_read(Channel)])
        rows = _inbound_rows(
            "SELECT {columns} FROM {table} WHERE platform = %s AND (id = %s OR "
            "(enabled AND credential_key <> '' AND credential_key = "
            "(SELECT credential_key FROM {table} WHERE id = %s))) ORDER BY created_at, id",
            [platform, db_pk, db_pk],
        )
        return [c for c in rows if c.pk == pk], rows
    if platform == "telegram":
        secret = headers.get(TELEGRAM_SECRET_HEADER) or ""
        if not secret:
            return [], []
        # Under SECRET_KEY and its fallbacks: channels stored before a rotation are still found.
        digests = credential_digests(platform, secret)
        marks = ", ".join(["%s"] * len(digests))  # placeholders only: the values are parameters
        rows = _inbound_rows(
            _TELEGRAM_LOOKUP.replace("{marks}", marks),
            [platform, *digests, platform, *digests],
        )
        return [c for c in rows if c.lookup_key in digests], rows
    rows = _inbound_rows(
        "SELECT {columns} FROM {table} WHERE platform = %s AND enabled ORDER BY created_at, id",
        [platform],
    )
    seen: set[str] = set()
    candidates = []
    for channel in rows:
        key = channel.credential_key or str(channel.pk)
        if key not in seen:
            seen.add(key)
            candidates.append(channel)
    return candidates, rows


def fanout_targets(
    *, channel: InboundChannel, chat_id: str, pool: list[InboundChannel]
) -> list[InboundChannel]:
    """Every enabled channel of `pool` sharing `channel`'s credentials whose chat filter takes
    `chat_id` (an empty filter takes every chat); `channel` itself first when enabled."""
    adapter = get_adapter(channel.platform)
    assert adapter is not None
    group: list[InboundChannel] = [channel] if channel.enabled else []
    if channel.credential_key:
        group += [
            c
            for c in pool
            if c.pk != channel.pk
            and c.enabled
            and c.platform == channel.platform
            and c.credential_key == channel.credential_key
        ]
    return [c for c in group if adapter.chat_matches(c.public_config, chat_id)]
