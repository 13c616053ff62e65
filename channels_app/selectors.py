"""Channel reads: lists, lookups, public config for export, and inbound candidates."""

from __future__ import annotations

import json
from typing import Any
from uuid import UUID

from django.db import connections, router
from django.db.models import QuerySet

from channels_app.adapters import get_adapter
from channels_app.adapters.base import credential_digests
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


WEBHOOK_MAX_VERIFICATIONS = 3
"""The most credentials an inbound request that names no channel is verified against, whatever
the number of channels (docs/decisions.md, "Bounded verification")."""
_CANDIDATE_ROWS = 20  # rows read to find that many distinct credentials


class InboundChannel:
    """What the webhook path needs of a channel, read straight from a cursor row.

    Building full `Channel` models (every field converted, the secrets decrypted for every row
    of the fan-out pool) cost more than the query itself on the hottest path of the service.
    The secrets are decrypted only when `config` is asked for, i.e. for the channels actually
    verified against.
    """

    __slots__ = (
        "_sealed",
        "credential_key",
        "enabled",
        "lookup_key",
        "pk",
        "platform",
        "public_config",
        "workspace_id",
    )
    COLUMNS = "id, workspace_id, platform, enabled, credential_key, lookup_key, public_config, secret_config"

    def __init__(self, row: tuple[Any, ...]) -> None:
        (
            pk,
            workspace_id,
            self.platform,
            enabled,
            self.credential_key,
            self.lookup_key,
            public,
            self._sealed,
        ) = row
        self.pk = pk if isinstance(pk, UUID) else UUID(str(pk))
        self.workspace_id = workspace_id if isinstance(workspace_id, UUID) else UUID(str(workspace_id))
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


# Keyed channels first, then those with no routing key, each cut at a few rows. `{marks}` as above.
_KEYED_LOOKUP = (
    "SELECT {columns} FROM ("
    "SELECT * FROM (SELECT *, 0 AS route_rank FROM {table} WHERE platform = %s AND enabled "
    "AND lookup_key IN ({marks}) ORDER BY created_at, id LIMIT %s) AS keyed UNION ALL "
    "SELECT * FROM (SELECT *, 1 AS route_rank FROM {table} WHERE platform = %s AND enabled "
    "AND lookup_key = '' ORDER BY created_at, id LIMIT %s) AS unkeyed"
    ") AS candidates ORDER BY route_rank, created_at, id"
)


def _inbound_rows(sql: str, params: list[Any]) -> list[InboundChannel]:
    table = Channel._meta.db_table
    with connections[router.db_for_read(Channel)].cursor() as cursor:
        cursor.execute(sql.format(columns=InboundChannel.COLUMNS, table=table), params)
        return [InboundChannel(row) for row in cursor.fetchall()]


def _distinct_credentials(rows: list[InboundChannel]) -> list[InboundChannel]:
    """The first channel of each credential, in order, at most WEBHOOK_MAX_VERIFICATIONS."""
    seen: set[str] = set()
    candidates = []
    for channel in rows:
        key = channel.credential_key or str(channel.pk)
        if key not in seen:
            seen.add(key)
            candidates.append(channel)
    return candidates[:WEBHOOK_MAX_VERIFICATIONS]


def webhook_channels(
    *, platform: str, route_key: str, channel_id: str | None
) -> tuple[list[InboundChannel], list[InboundChannel] | None]:
    """The channels an inbound request may belong to (to be verified in turn, first match wins),
    and, when the same query can give it, the pool of enabled channels sharing their credentials
    (for fan-out; None: ask `credential_group` once one has verified).

    The `channel` query parameter names one directly. Without it, `route_key` (what the adapter
    read from the request: Telegram's secret header, Slack's app id, Discord's application id,
    Lark's token) selects the channels whose `lookup_key` is its keyed hash, then those with no
    routing key; either way at most WEBHOOK_MAX_VERIFICATIONS distinct credentials, oldest first.
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
    # Under SECRET_KEY and its fallbacks: channels stored before a rotation are still found.
    digests = credential_digests(platform, route_key) if route_key else ()
    marks = ", ".join(["%s"] * len(digests))  # placeholders only: the values are parameters
    if platform == "telegram":
        if not digests:
            return [], []
        rows = _inbound_rows(
            _TELEGRAM_LOOKUP.replace("{marks}", marks),
            [platform, *digests, platform, *digests],
        )
        return _distinct_credentials([c for c in rows if c.lookup_key in digests]), rows
    # Each branch is an index range scan on (platform, lookup_key, created_at) cut at a few rows;
    # the keyed channels come first. (Nested SELECTs: SQLite takes no LIMIT in a UNION member.)
    if digests:
        rows = _inbound_rows(
            _KEYED_LOOKUP.replace("{marks}", marks),
            [platform, *digests, _CANDIDATE_ROWS, platform, _CANDIDATE_ROWS],
        )
    else:
        rows = _inbound_rows(
            "SELECT {columns} FROM {table} WHERE platform = %s AND enabled ORDER BY created_at, id LIMIT %s",
            [platform, _CANDIDATE_ROWS],
        )
    return _distinct_credentials(rows), None


def credential_group(*, channel: InboundChannel) -> list[InboundChannel]:
    """`channel` and the enabled channels of every workspace sharing its credential."""
    if not channel.credential_key:
        return [channel]
    return _inbound_rows(
        "SELECT {columns} FROM {table} WHERE platform = %s AND (id = %s OR "
        "(enabled AND credential_key = %s)) ORDER BY created_at, id",
        [
            channel.platform,
            Channel._meta.pk.get_db_prep_value(channel.pk, connections[router.db_for_read(Channel)]),
            channel.credential_key,
        ],
    )


def _shares_credential(adapter: Any, channel: InboundChannel, other: InboundChannel) -> bool:
    """Whether `other` is in `channel`'s fan-out group: same platform and credential, enabled,
    and, when the credential is public (Discord's application id), the same workspace."""
    return (
        other.pk != channel.pk
        and other.enabled
        and other.platform == channel.platform
        and bool(channel.credential_key)
        and other.credential_key == channel.credential_key
        and (adapter.credential_is_secret or other.workspace_id == channel.workspace_id)
    )


def public_credential_shared_across_workspaces(
    *, channel: InboundChannel, pool: list[InboundChannel]
) -> bool:
    """Whether an enabled channel of another workspace holds `channel`'s public credential: the
    request cannot then say which tenant it is for unless it names its channel (data saved
    before one workspace owned each Discord application)."""
    adapter = get_adapter(channel.platform)
    assert adapter is not None
    if adapter.credential_is_secret or not channel.credential_key:
        return False
    return any(
        c.enabled
        and c.platform == channel.platform
        and c.credential_key == channel.credential_key
        and c.workspace_id != channel.workspace_id
        for c in pool
    )


def fanout_targets(
    *, channel: InboundChannel, chat_id: str, pool: list[InboundChannel]
) -> list[InboundChannel]:
    """Every enabled channel of `pool` in `channel`'s fan-out group (a shared secret credential,
    or a shared public one within the workspace) whose chat filter takes `chat_id` (an empty
    filter takes every chat); `channel` itself first when enabled."""
    adapter = get_adapter(channel.platform)
    assert adapter is not None
    group: list[InboundChannel] = [channel] if channel.enabled else []
    group += [c for c in pool if _shares_credential(adapter, channel, c)]
    return [c for c in group if adapter.chat_matches(c.public_config, chat_id)]
