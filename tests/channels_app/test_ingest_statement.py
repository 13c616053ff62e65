"""How the remembered path's insert runs (channels_app.ingest._Insert): a libpq prepared
statement on the request's connection in autocommit and inside an open transaction, a plain
cursor when prepared statements are off or when psycopg still owes the transaction its BEGIN."""

from __future__ import annotations

import pytest
from django.db import connection, transaction

from channels_app import ingest
from channels_app.models import ChannelMessage
from tests.channels_app.helpers import TELEGRAM_SECRET, post_telegram, telegram_channel, telegram_update
from tests.support.factories import make_workspace


def _body(update_id: int) -> bytes:
    import json

    return json.dumps(telegram_update(update_id)).encode()


def _remember(client) -> None:
    """A first update through the full path, which remembers the header-only route."""
    channel = telegram_channel(make_workspace("ingest"))
    assert post_telegram(client, telegram_update(1)).json() == {"ok": True}
    assert ingest.verified_routes.get(ingest.VerifiedRoutes.key(TELEGRAM_SECRET, None)) == channel.pk


def _store(update_id: int):
    return ingest.store_verified_update(secret=TELEGRAM_SECRET, channel_param=None, body=_body(update_id))


def _prepared_names() -> set[str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT name FROM pg_prepared_statements")
        return {name for (name,) in cursor.fetchall()}


@pytest.mark.django_db
def test_inside_an_open_transaction_it_runs_as_a_prepared_statement(client):
    _remember(client)
    event, created = _store(2)
    assert event.event_id == "2" and len(created) == 1
    assert ingest._Insert.NAME.decode() in _prepared_names()
    assert ChannelMessage.objects.filter(pk=created[0], platform_event_id="2").exists()


@pytest.mark.django_db
def test_with_prepared_statements_off_it_runs_through_a_cursor(client, settings, monkeypatch):
    settings.DATABASE_PREPARED_STATEMENTS = False
    _remember(client)

    def refuse(*args, **kwargs):
        raise AssertionError("the libpq path ran although prepared statements are off")

    monkeypatch.setattr(ingest._Insert, "_check", staticmethod(refuse))
    _event, created = _store(2)
    assert ChannelMessage.objects.filter(pk=created[0], platform_event_id="2").exists()


@pytest.mark.django_db(transaction=True)
def test_in_autocommit_the_row_is_committed_by_the_statement(client):
    _remember(client)
    assert connection.get_autocommit()
    _event, created = _store(2)
    assert ChannelMessage.objects.filter(pk=created[0]).exists()


@pytest.mark.django_db(transaction=True)
def test_a_transaction_psycopg_has_not_begun_yet_keeps_the_row_inside_it(client):
    """`atomic()` turns autocommit off but psycopg sends BEGIN only with its next query: run
    through libpq at that moment, the insert would commit on its own and survive the rollback."""
    _remember(client)

    class Rollback(Exception):
        pass

    with pytest.raises(Rollback), transaction.atomic():
        assert connection.connection.pgconn.transaction_status == 0  # IDLE: no BEGIN sent yet
        _event, created = _store(2)
        assert ChannelMessage.objects.filter(pk=created[0]).exists()
        raise Rollback
    assert not ChannelMessage.objects.filter(platform_event_id="2").exists()
