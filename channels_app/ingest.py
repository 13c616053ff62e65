"""The inbound hot path: Telegram updates from a secret this process has already verified.

The full path (`services.webhook_receive`) reads the candidate channels, verifies, parses, works
out the fan-out and inserts: two round trips to the database on every update, and on a busy bot
the lookup gives the same answer each time. So once the full path has verified a secret header
(for a `channel` query parameter, or without one), the process remembers which channel it
proved (`VerifiedRoutes`: a keyed hash of the secret, never the secret). The next update with
that header is parsed and stored by one prepared PostgreSQL statement that checks everything
again against the current rows: the remembered channel still has that secret and is enabled,
and the copies go to the enabled channels sharing its bot whose chat filter takes the chat. So
a remembered route can only save the lookup; it can never admit an update the database would
refuse. When the statement stores nothing (a changed channel, a duplicate, a chat no channel
takes), the caller runs the full path, which answers as it always does.

PostgreSQL only; with SQLite every update takes the full path.
"""

from __future__ import annotations

import dataclasses
import json
import re
import threading
import time
import uuid
import weakref
from collections.abc import Callable, Mapping, Sequence
from typing import Any
from uuid import UUID

import psycopg
from cachetools import TLRUCache
from django.conf import settings
from django.db import connections, router
from django.utils import timezone
from psycopg import pq

from channels_app.adapters import get_adapter
from channels_app.adapters.base import InboundEvent, credential_digest
from channels_app.adapters.telegram import SECRET_HEADER, TelegramAdapter
from channels_app.models import Channel, ChannelMessage, Direction, MessageStatus
from common.storable import storable_json, storable_text

RouteKey = tuple[str, str | None]
PARSE_ERRORS = (ValueError, TypeError, KeyError, AttributeError, UnicodeDecodeError, RecursionError)
"""What an adapter's `parse` raises on a body it cannot read (deep nesting included)."""

_COLUMNS = (
    "id",
    "channel_id",
    "direction",
    "chat_id",
    "sender_id",
    "text",
    "status",
    "error",
    "attempts",
    "parts_sent",
    "platform_event_id",
    "reply_to_id",
    "meta",
    "created_at",
    "updated_at",
    # The outbox (common.outbox): due for the relay at once, never published yet.
    "relay_due_at",
    "published_at",
    "publish_attempt",
    "run_attempt",
)


def storable_event(event: InboundEvent) -> InboundEvent | None:
    """`event` as the columns take it, applied right after parsing so that routing (the chat
    filter) and storage see the same values on both paths: no NUL or lone surrogate (PostgreSQL
    refuses both in text and jsonb) in the text or `meta`, ids cut to their 200 characters.
    None when an id itself holds such a character: cleaning it could name another chat, so the
    event is not routed (no platform sends such ids)."""
    ids = (event.chat_id[:200], event.sender_id[:200], event.event_id[:200])
    if any(storable_text(value) != value for value in ids):
        return None
    return dataclasses.replace(
        event,
        chat_id=ids[0],
        sender_id=ids[1],
        event_id=ids[2],
        text=storable_text(event.text),
        meta=storable_json(event.meta),
    )


def store_event(channel_ids: Sequence[Any], event: InboundEvent) -> list[str]:
    """Insert one `received` row per target channel, skipping (channel, event id) pairs already
    stored; return the ids of the new rows (the full path, on every database). `event` comes
    from `storable_event`.

    One statement, INSERT … ON CONFLICT DO NOTHING RETURNING id, in autocommit: the ids returned
    are the new rows, and a concurrent duplicate waits on the unique index and inserts nothing.
    Written by hand (no model instances, values adapted by the backend's own helpers for the
    UUID, JSON and datetime columns).
    """
    meta = ChannelMessage._meta
    connection = connections[router.db_for_write(ChannelMessage)]
    ops = connection.ops
    uuid_field, json_field = meta.pk, meta.get_field("meta")
    now = ops.adapt_datetimefield_value(timezone.now())
    event_meta = json_field.get_db_prep_save(event.meta, connection)
    params: list[Any] = []
    for channel_id in channel_ids:
        params += [
            uuid_field.get_db_prep_value(uuid.uuid4(), connection),
            uuid_field.get_db_prep_value(channel_id, connection),
            Direction.INBOUND.value,
            event.chat_id,
            event.sender_id,
            event.text,
            MessageStatus.RECEIVED.value,
            "",
            0,
            0,
            event.event_id,
            None,
            event_meta,
            now,
            now,
            now,
            None,
            0,
            0,
        ]
    quote = ops.quote_name
    placeholders = "(" + ", ".join(["%s"] * len(_COLUMNS)) + ")"
    # Identifiers are constants and the model's table name; every value is a bound parameter.
    sql = (
        f"INSERT INTO {quote(meta.db_table)} ({', '.join(map(quote, _COLUMNS))}) "  # noqa: S608
        f"VALUES {', '.join([placeholders] * len(channel_ids))} "
        f"ON CONFLICT DO NOTHING RETURNING {quote(meta.pk.column)}"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return [str(uuid_field.to_python(value)) for (value,) in cursor.fetchall()]


class VerifiedRoutes:
    """Which channel a secret header was last proved to belong to, per web process.

    Entries expire after `CHANNEL_VERIFIED_ROUTE_SECONDS` (0 turns the memo off), read when each
    entry is stored, and the least recently used go first beyond `max_entries` (cachetools'
    TLRUCache). Only the full path adds entries, after a successful verification, so unverified
    headers never take room. The cache is not thread-safe by itself (a read reorders it), hence
    the lock.
    """

    def __init__(self, *, max_entries: int = 1024, clock: Callable[[], float] = time.monotonic) -> None:
        self.max_entries = max_entries
        self._entries: TLRUCache[RouteKey, UUID] = TLRUCache(
            maxsize=max_entries, ttu=_route_expiry, timer=clock
        )
        self._lock = threading.Lock()

    @staticmethod
    def key(secret: str, channel_param: str | None) -> RouteKey:
        return credential_digest(TelegramAdapter.platform, secret), channel_param

    def get(self, key: RouteKey) -> UUID | None:
        with self._lock:  # an expired entry reads as missing (and is dropped on the next write)
            return self._entries.get(key)

    def remember(self, key: RouteKey, channel_id: UUID) -> None:
        if settings.CHANNEL_VERIFIED_ROUTE_SECONDS <= 0:
            return
        with self._lock:
            self._entries[key] = channel_id

    def forget(self, key: RouteKey) -> None:
        with self._lock:
            self._entries.pop(key, None)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


def _route_expiry(_key: RouteKey, _channel_id: UUID, now: float) -> float:
    return now + settings.CHANNEL_VERIFIED_ROUTE_SECONDS


verified_routes = VerifiedRoutes()
_TELEGRAM = get_adapter(TelegramAdapter.platform)


class _Insert:
    """The insert, written from the models' metadata (every value a bound parameter), run as a
    libpq prepared statement on Django's connection.

    Through psycopg's cursor the round trip costs twice the Python time of the libpq call, on
    the request every update makes; so the statement is prepared once per physical connection
    (`_prepared` forgets connections that are gone) and executed with `exec_prepared`, under
    psycopg's connection lock, Django's error wrapping and query log. Two cases go through a
    plain psycopg cursor instead: `DATABASE_PREPARED_STATEMENTS` off (a pooler that cannot keep
    prepared statements), and a transaction psycopg has yet to open (only psycopg issues the
    BEGIN it owes; the webhook itself runs in autocommit).
    """

    NAME = b"channels_ingest_telegram_v2"

    def __init__(self) -> None:
        self._sql: str | None = None
        self._numbered: bytes = b""
        self._order: list[str] = []
        self._prepared: weakref.WeakKeyDictionary[Any, bool] = weakref.WeakKeyDictionary()

    @property
    def sql(self) -> str:
        """With named placeholders (`%(name)s`), as psycopg's cursors take it."""
        if self._sql is None:
            quote = connections[router.db_for_write(ChannelMessage)].ops.quote_name
            message, channel = ChannelMessage._meta, Channel._meta
            chat_filter = TelegramAdapter.chat_filter_sql(config="c.public_config", chat="%(chat)s::text")
            sql = (
                f"INSERT INTO {quote(message.db_table)} ({', '.join(map(quote, _COLUMNS))}) "  # noqa: S608
                "SELECT gen_random_uuid(), c.id, %(direction)s::text, %(chat)s::text, %(sender)s::text, "
                "%(text)s::text, %(status)s::text, '', 0, 0, %(event)s::text, NULL, %(meta)s::jsonb, "
                "%(now)s::timestamptz, %(now)s::timestamptz, %(now)s::timestamptz, NULL, 0, 0 "
                f"FROM {quote(channel.db_table)} AS m JOIN {quote(channel.db_table)} AS c "
                "ON c.platform = m.platform AND c.enabled "
                "AND (c.id = m.id OR (m.credential_key <> '' AND c.credential_key = m.credential_key)) "
                "WHERE m.id = %(channel)s::uuid AND m.platform = %(platform)s::text AND m.enabled "
                "AND m.lookup_key = %(digest)s::text "
                f"AND {chat_filter} "  # the adapter's chat filter, as `chat_matches` applies it
                "ON CONFLICT DO NOTHING RETURNING id"
            )
            order: list[str] = []

            def number(match: re.Match[str]) -> str:
                if match.group(1) not in order:
                    order.append(match.group(1))
                return f"${order.index(match.group(1)) + 1}"

            # `_sql` last: another thread seeing it set must find the numbered form ready (it
            # would otherwise prepare an empty statement on its connection).
            self._numbered = re.sub(r"%\((\w+)\)s", number, sql).encode()
            self._order = order
            self._sql = sql
        return self._sql

    def run(self, connection: Any, params: dict[str, str]) -> list[str]:
        """Execute with `params` (all text); the ids of the new rows."""
        sql = self.sql
        connection.ensure_connection()
        connection.validate_no_broken_transaction()
        raw = connection.connection
        pgconn = raw.pgconn
        if not settings.DATABASE_PREPARED_STATEMENTS or (
            not raw.autocommit and pgconn.transaction_status == pq.TransactionStatus.IDLE
        ):
            with connection.cursor() as cursor:
                cursor.execute(sql, params)
                return [str(row[0]) for row in cursor.fetchall()]
        values = [params[name].encode() for name in self._order]
        started = time.monotonic()
        with connection.wrap_database_errors, raw.lock:
            if pgconn not in self._prepared:
                self._check(raw, pgconn.prepare(self.NAME, self._numbered), pq.ExecStatus.COMMAND_OK)
                self._prepared[pgconn] = True
            result = pgconn.exec_prepared(self.NAME, values)
            self._check(raw, result, pq.ExecStatus.TUPLES_OK)
        if connection.queries_logged:
            connection.queries_log.append({"sql": sql, "time": f"{time.monotonic() - started:.3f}"})
        return [result.get_value(row, 0).decode() for row in range(result.ntuples)]

    @staticmethod
    def _check(raw: Any, result: Any, expected: Any) -> None:
        if result.status != expected:
            raise psycopg.errors.error_from_result(result, encoding=raw.info.encoding)


_insert = _Insert()


def route_secret(*, platform: str, headers: Mapping[str, str]) -> str:
    """The secret header this path routes by; "" for a platform it does not serve (only
    Telegram's requests carry their channel's secret as a header)."""
    if platform != TelegramAdapter.platform:
        return ""
    return headers.get(SECRET_HEADER) or ""


def store_verified_update(
    *, secret: str, channel_param: str | None, body: bytes
) -> tuple[InboundEvent, list[str]] | None:
    """Store a Telegram update through a remembered route: the event and the new message ids,
    or None when the full path must handle the request (nothing remembered, not PostgreSQL,
    not a routable message, or nothing stored)."""
    if not secret:
        return None
    connection = connections[router.db_for_write(ChannelMessage)]
    if connection.vendor != "postgresql":
        return None
    key = VerifiedRoutes.key(secret, channel_param)
    channel_id = verified_routes.get(key)
    if channel_id is None:
        return None
    try:
        event = _TELEGRAM.parse({}, True, _TELEGRAM.request(body, {}))
    except PARSE_ERRORS:
        return None  # the full path answers bad input
    if event.kind != "message":
        return None
    event = storable_event(event)
    if event is None:
        return None  # the full path answers "ignored"
    params = {
        "direction": Direction.INBOUND.value,
        "status": MessageStatus.RECEIVED.value,
        "chat": event.chat_id,
        "sender": event.sender_id,
        "text": event.text,
        "event": event.event_id,
        "meta": json.dumps(event.meta),
        "now": timezone.now().isoformat(),
        "channel": str(channel_id),
        "platform": TelegramAdapter.platform,
        "digest": key[0],
    }
    created = _insert.run(connection, params)
    if not created:
        verified_routes.forget(key)
        return None
    return event, created
