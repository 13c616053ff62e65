"""Remembered webhook routes (channels_app.ingest): once the full path has verified a Telegram
secret header, later updates with it are stored by one prepared statement that re-checks the
current rows. These tests show which path ran by counting queries (the remembered path is
exactly one) and that it stores what the full path stores, and nothing the full path refuses."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from channels_app import ingest, services
from channels_app.adapters.base import credential_digest
from channels_app.models import ChannelMessage
from tests.channels_app.helpers import TELEGRAM_SECRET, post_telegram, telegram_channel, telegram_update
from tests.support.factories import bearer, make_workspace, make_workspace_token

pytestmark = pytest.mark.django_db

OTHER_TOKEN = "654321:BBEhBP0av28P2aqsU4L5Zq9ZsS6IcX1Yw2F"
NEW_SECRET = "a-brand-new-webhook-secret_42"
IGNORED = {"ok": True, "status": "ignored"}
ERROR_KEYS = {"error", "code", "details"}


def _key(channel: Any, param: bool, secret: str = TELEGRAM_SECRET) -> ingest.RouteKey:
    return ingest.VerifiedRoutes.key(secret, str(channel.pk) if param else None)


def _post(client, update: dict[str, Any], channel: Any, *, param: bool, secret: str = TELEGRAM_SECRET):
    """Post `update` with `secret`, naming `channel` in `?channel=` when `param`; the response
    and the number of queries the request made."""
    with CaptureQueriesContext(connection) as queries:
        response = post_telegram(client, update, secret=secret, channel=channel if param else None)
    return response, len(queries)


def _post_raw(client, body: bytes, channel: Any, *, param: bool, secret: str = TELEGRAM_SECRET):
    url = "/webhooks/telegram" + (f"?channel={channel.pk}" if param else "")
    with CaptureQueriesContext(connection) as queries:
        response = client.post(
            url, data=body, content_type="application/json", HTTP_X_TELEGRAM_BOT_API_SECRET_TOKEN=secret
        )
    return response, len(queries)


def _copies(update_id: int) -> set[Any]:
    """The channels holding a copy of the update with this id."""
    return set(
        ChannelMessage.objects.filter(platform_event_id=str(update_id), direction="inbound").values_list(
            "channel_id", flat=True
        )
    )


def _assert_error(response, status: int = 400, code: str = "invalid_request") -> None:
    assert response.status_code == status, response.content[:300]
    body = response.json()
    assert body["code"] == code and set(body) <= ERROR_KEYS


param_ids = pytest.mark.parametrize("param", [True, False], ids=["channel-param", "header-only"])


# --- the remembered path stores what the full path stores -------------------------------------------


@param_ids
@pytest.mark.parametrize("own_filter", [["42"], [], ["99"]], ids=["own-42", "own-empty", "own-99"])
@pytest.mark.parametrize("with_everything", [True, False], ids=["everything", "no-everything"])
@pytest.mark.parametrize("chat", [42, 77, 5])
def test_remembered_route_stores_the_copies_the_full_path_stores(
    client, workspace, settings, param, own_filter, with_everything, chat
):
    second, third = make_workspace("second"), make_workspace("third")
    own = telegram_channel(workspace, chat_ids=own_filter)
    takes_42_43 = telegram_channel(second, chat_ids=["42", "43"], webhook_secret="sibling-secret-42")
    takes_77 = telegram_channel(third, chat_ids=["77"], webhook_secret="sibling-secret-77")
    disabled = telegram_channel(second, webhook_secret="sibling-secret-off", enabled=False)
    # Another bot whose webhook secret happens to be the same: never part of this bot's fan-out.
    other_bot = telegram_channel(third, bot_token=OTHER_TOKEN)
    everything = telegram_channel(third, webhook_secret="sibling-secret-all") if with_everything else None

    # The oracle, written out: enabled channels of the same bot whose filter takes the chat.
    expected = set()
    if not own_filter or str(chat) in own_filter:
        expected.add(own.pk)
    if chat in (42, 43):
        expected.add(takes_42_43.pk)
    if chat == 77:
        expected.add(takes_77.pk)
    if everything is not None:
        expected.add(everything.pk)
    answer = {"ok": True} if expected else IGNORED

    first, _ = _post(client, telegram_update(1, chat_id=chat), own, param=param)
    assert ingest.verified_routes.get(_key(own, param)) == own.pk
    remembered, remembered_queries = _post(client, telegram_update(2, chat_id=chat), own, param=param)
    settings.CHANNEL_VERIFIED_ROUTE_SECONDS = 0
    ingest.verified_routes.clear()
    full, full_queries = _post(client, telegram_update(3, chat_id=chat), own, param=param)
    assert ingest.verified_routes.get(_key(own, param)) is None

    for response in (first, remembered, full):
        assert response.status_code == 200 and response.json() == answer
    assert _copies(1) == _copies(2) == _copies(3) == expected
    assert disabled.pk not in expected and other_bot.pk not in expected
    if expected:
        assert remembered_queries == 1  # the one prepared statement, nothing else
        assert full_queries == 2  # the candidate lookup, then the insert
    else:
        assert remembered_queries > 1  # stored nothing, so the full path answered


def test_remembered_rows_equal_full_path_rows_column_by_column(client, workspace, settings):
    channel = telegram_channel(workspace)

    def update(update_id: int) -> dict[str, Any]:
        body = telegram_update(update_id, text="same text ✓", chat_id=-100123, user_id=99)
        body["message"]["message_id"] = 555
        return body

    post_telegram(client, update(1))
    response, queries = _post(client, update(2), channel, param=False)
    assert response.status_code == 200 and queries == 1
    settings.CHANNEL_VERIFIED_ROUTE_SECONDS = 0
    ingest.verified_routes.clear()
    response, queries = _post(client, update(3), channel, param=False)
    assert response.status_code == 200 and queries == 2
    columns = [
        "channel_id",
        "direction",
        "chat_id",
        "sender_id",
        "text",
        "status",
        "error",
        "attempts",
        "parts_sent",
        "reply_to_id",
        "meta",
        "a2a_protocol",  # the remembered path's INSERT leaves it to the column's default
    ]
    rows = {
        m.platform_event_id: {c: getattr(m, c) for c in columns}
        for m in ChannelMessage.objects.filter(platform_event_id__in=["2", "3"])
    }
    assert rows["2"] == rows["3"]
    assert rows["2"]["text"] == "same text ✓" and rows["2"]["meta"] == {"message_id": 555}
    assert (rows["2"]["chat_id"], rows["2"]["sender_id"], rows["2"]["status"]) == (
        "-100123",
        "99",
        "received",
    )
    remembered = ChannelMessage.objects.get(platform_event_id="2")
    assert remembered.created_at == remembered.updated_at and remembered.created_at is not None


# --- the database's current state decides -------------------------------------------------------


@pytest.fixture
def remembered(client, workspace):
    """A channel and a sibling on the same bot (another workspace, chat 42 only), after one
    update through the full path has made the route remembered; returns (channel, sibling)."""

    def remember(param: bool):
        channel = telegram_channel(workspace)
        sibling = telegram_channel(
            make_workspace("sibling"), chat_ids=["42"], webhook_secret="sibling-secret"
        )
        response, _ = _post(client, telegram_update(1, chat_id=42), channel, param=param)
        assert response.status_code == 200 and _copies(1) == {channel.pk, sibling.pk}
        assert ingest.verified_routes.get(_key(channel, param)) == channel.pk
        # Proof the route is live: the next update takes the one statement.
        response, queries = _post(client, telegram_update(2, chat_id=42), channel, param=param)
        assert response.json() == {"ok": True} and queries == 1
        return channel, sibling

    return remember


@param_ids
def test_disabled_after_remembering_stores_nothing(client, remembered, param):
    channel, _ = remembered(param)
    services.channel_update(channel=channel, data={"enabled": False})
    response, _ = _post(client, telegram_update(3, chat_id=42), channel, param=param)
    if param:  # named, it verifies but stores nothing
        assert response.status_code == 200 and response.json() == IGNORED
    else:  # a disabled channel is not found by its header
        _assert_error(response, 401, "invalid_signature")
    assert _copies(3) == set()
    assert ingest.verified_routes.get(_key(channel, param)) is None


@param_ids
@pytest.mark.parametrize("how", ["service", "api"])
def test_changed_secret_after_remembering(client, api, workspace, remembered, param, how):
    channel, sibling = remembered(param)
    if how == "service":
        services.channel_update(channel=channel, data={"config": {"webhook_secret": NEW_SECRET}})
    else:
        api.credentials(**bearer(make_workspace_token(workspace, role="operator")))
        response = api.patch(
            f"/workspaces/{workspace.id}/channels/{channel.pk}",
            {"config": {"webhook_secret": NEW_SECRET}},
            format="json",
        )
        assert response.status_code == 200, response.content
    response, _ = _post(client, telegram_update(3, chat_id=42), channel, param=param)
    _assert_error(response, 401, "invalid_signature")
    assert _copies(3) == set()
    assert ingest.verified_routes.get(_key(channel, param)) is None
    # The new secret works, through the full path first and then remembered.
    response, _ = _post(client, telegram_update(4, chat_id=42), channel, param=param, secret=NEW_SECRET)
    assert response.json() == {"ok": True} and _copies(4) == {channel.pk, sibling.pk}
    response, queries = _post(client, telegram_update(5, chat_id=42), channel, param=param, secret=NEW_SECRET)
    assert response.json() == {"ok": True} and queries == 1 and _copies(5) == {channel.pk, sibling.pk}
    # The old secret was never admitted again.
    assert _copies(3) == set()


@param_ids
def test_deleted_after_remembering_is_401(client, remembered, param):
    channel, _ = remembered(param)
    services.channel_delete(channel=channel)
    response, _ = _post(client, telegram_update(3, chat_id=42), channel, param=param)
    _assert_error(response, 401, "invalid_signature")
    assert _copies(3) == set()
    assert ingest.verified_routes.get(_key(channel, param)) is None


@param_ids
def test_chat_filter_changed_after_remembering(client, remembered, param):
    channel, sibling = remembered(param)
    # Chat 43: only the channel itself took it (the sibling serves chat 42 only).
    response, queries = _post(client, telegram_update(3, chat_id=43), channel, param=param)
    assert response.json() == {"ok": True} and queries == 1 and _copies(3) == {channel.pk}
    services.channel_update(channel=channel, data={"config": {"chat_ids": ["99"]}})
    response, _ = _post(client, telegram_update(4, chat_id=43), channel, param=param)
    assert response.status_code == 200 and response.json() == IGNORED
    assert _copies(4) == set()
    # Chat 42 still reaches the sibling, which takes it, and no longer the channel.
    response, _ = _post(client, telegram_update(5, chat_id=42), channel, param=param)
    assert response.json() == {"ok": True} and _copies(5) == {sibling.pk}


@param_ids
def test_a_new_channel_on_the_bot_gets_its_copy_at_once(client, remembered, param):
    channel, sibling = remembered(param)
    newcomer = telegram_channel(make_workspace("newcomer"), webhook_secret="newcomer-secret")
    response, queries = _post(client, telegram_update(3, chat_id=42), channel, param=param)
    assert response.json() == {"ok": True} and queries == 1
    assert _copies(3) == {channel.pk, sibling.pk, newcomer.pk}


@param_ids
def test_duplicate_through_a_remembered_route_is_stored_once(
    client, remembered, param, django_capture_on_commit_callbacks, handed_over
):
    channel, sibling = remembered(param)
    update = telegram_update(3, chat_id=42)
    with django_capture_on_commit_callbacks(execute=True):
        response, queries = _post(client, update, channel, param=param)
    assert response.json() == {"ok": True} and queries == 1
    handed = list(handed_over)
    for _ in range(2):
        with django_capture_on_commit_callbacks(execute=True):
            response, _ = _post(client, update, channel, param=param)
        assert response.status_code == 200 and response.json() == {"ok": True}
    assert ChannelMessage.objects.filter(platform_event_id="3").count() == 2
    assert _copies(3) == {channel.pk, sibling.pk}
    assert handed_over == handed  # nothing new to process
    # The route still works afterwards.
    response, queries = _post(client, telegram_update(4, chat_id=42), channel, param=param)
    assert response.json() == {"ok": True} and queries == 1


# --- bodies ---------------------------------------------------------------------------------------


@pytest.fixture(params=["remembered", "full"])
def route(request, client, workspace, settings):
    """A channel whose route is remembered (first update already stored), or with the memo off."""
    if request.param == "full":
        settings.CHANNEL_VERIFIED_ROUTE_SECONDS = 0
    channel = telegram_channel(workspace)
    assert post_telegram(client, telegram_update(1)).status_code == 200
    remembered = ingest.verified_routes.get(_key(channel, False))
    assert remembered == (channel.pk if request.param == "remembered" else None)
    return channel


@pytest.mark.parametrize(
    "body",
    [
        b"{not json",
        b"\xff\xfe not json",
        b"",
        b"[]",
        b'{"update_id": "1", "message": {"chat": {"id": 1}, "text": "x"}}',
        b'{"message": {"chat": {"id": 1}, "text": "x"}}',
    ],
    ids=["broken", "not-utf8", "empty", "array", "string-update-id", "no-update-id"],
)
def test_unreadable_body_is_400_in_the_error_shape(client, route, body):
    response, _ = _post_raw(client, body, route, param=False)
    _assert_error(response, 400, "invalid_request")
    assert ChannelMessage.objects.count() == 1


@pytest.mark.parametrize(
    "body",
    [
        "[" * 100000,
        '{"a": ' * 100000,
        '{"update_id": 2, "message": ' + "[" * 100000,
        '{"update_id": 2, "message": {"chat": {"id": 42}, "text": ' + "[" * 50000 + "]" * 50000 + "}}",
    ],
    ids=["array", "object", "inside-message", "balanced-text"],
)
def test_deeply_nested_body_is_4xx_never_500(client, route, body):
    response, _ = _post_raw(client, body.encode(), route, param=False)
    assert 400 <= response.status_code < 500, response.content[:300]
    assert set(response.json()) <= ERROR_KEYS
    assert ChannelMessage.objects.count() == 1


def test_nul_and_lone_surrogate_in_text_are_stored_cleaned(client, route):
    update = telegram_update(2, text="a\u0000b\ud800c")
    body = json.dumps(update).encode()  # JSON escapes: \u0000 and \ud800
    assert b"\\u0000" in body and b"\\ud800" in body
    response, queries = _post_raw(client, body, route, param=False)
    assert response.status_code == 200 and response.json() == {"ok": True}
    assert queries == (1 if ingest.verified_routes.get(_key(route, False)) else 2)
    message = ChannelMessage.objects.get(platform_event_id="2")
    assert message.text == "ab?c"
    assert "\x00" not in message.text and "\ud800" not in message.text


@pytest.mark.parametrize("field", ["sender", "chat", "update_id"])
@pytest.mark.parametrize("character", ["\u0000", "\ud800"], ids=["nul", "lone-surrogate"])
def test_an_id_holding_an_unstorable_character_is_not_routed(client, route, field, character):
    """Cleaning such an id could name another chat ("4\\x002" would become "42"): the event is
    answered "ignored" and nothing is stored, on both paths."""
    update = telegram_update(2)
    if field == "sender":
        update["message"]["from"]["id"] = f"7{character}7"
    elif field == "chat":
        update["message"]["chat"]["id"] = f"4{character}2"
    else:
        update["update_id"] = f"2{character}"
    response, _ = _post_raw(client, json.dumps(update).encode(), route, param=False)
    assert response.status_code in (200, 400)
    if field != "update_id":  # a non-integer update_id is not a Telegram update at all
        assert response.json() == IGNORED
    assert not ChannelMessage.objects.filter(platform_event_id__startswith="2").exists()


@pytest.mark.parametrize(
    "message_id",
    ["a\u0000b", "\ud800", "\udc00x\ud800", {"nested": "\u0000"}],
    ids=["nul", "lone-high-surrogate", "lone-surrogates", "nul-in-object"],
)
def test_hostile_message_id_never_gives_a_500(client, route, message_id):
    """`message_id` goes to the row's `meta` as it came: PostgreSQL's jsonb refuses \\u0000 and
    lone surrogates, so it must be cleaned (or the update refused), never a server error."""
    update = telegram_update(2)
    update["message"]["message_id"] = message_id
    response, _ = _post_raw(client, json.dumps(update).encode(), route, param=False)
    assert response.status_code < 500, response.content[:300]


# --- what is remembered, and for which request --------------------------------------------------


def test_zero_seconds_turns_the_memo_off(client, workspace, settings):
    settings.CHANNEL_VERIFIED_ROUTE_SECONDS = 0
    channel = telegram_channel(workspace)
    for update_id, param in ((1, False), (2, True), (3, False), (4, True)):
        response, queries = _post(client, telegram_update(update_id), channel, param=param)
        assert response.json() == {"ok": True} and queries == 2
    assert ingest.verified_routes.get(_key(channel, False)) is None
    assert ingest.verified_routes.get(_key(channel, True)) is None
    assert not ingest.verified_routes._entries


@param_ids
def test_a_wrong_secret_is_never_remembered(client, workspace, param):
    channel = telegram_channel(workspace)
    # Another channel's secret on the same bot does not verify for this channel either.
    telegram_channel(make_workspace("sibling"), webhook_secret="sibling-secret")
    for update_id, secret in enumerate(["wrong-secret", "wrong-secret", TELEGRAM_SECRET[:-1], "x"], start=1):
        response, _ = _post(client, telegram_update(update_id), channel, param=param, secret=secret)
        _assert_error(response, 401, "invalid_signature")
        assert not ingest.verified_routes._entries
    if param:
        response, _ = _post(client, telegram_update(9), channel, param=True, secret="sibling-secret")
        _assert_error(response, 401, "invalid_signature")
        assert not ingest.verified_routes._entries
    assert not ChannelMessage.objects.exists()


def test_a_route_remembered_for_one_channel_param_serves_no_other(client, workspace):
    channel = telegram_channel(workspace)
    sibling = telegram_channel(make_workspace("sibling"), webhook_secret="sibling-secret")
    assert post_telegram(client, telegram_update(1), channel=channel).json() == {"ok": True}
    assert ingest.verified_routes.get(_key(channel, True)) == channel.pk
    # The channel's secret named with the sibling's id: the sibling's secret differs, so 401.
    response, _ = _post(client, telegram_update(2), sibling, param=True)
    _assert_error(response, 401, "invalid_signature")
    assert _copies(2) == set()
    # Nor is the header-only route remembered by a request that named the channel.
    assert ingest.verified_routes.get(_key(channel, False)) is None


def test_an_empty_channel_param_is_answered_as_the_full_path_answers(client, workspace):
    channel = telegram_channel(workspace)
    # The full path on `?channel=` (empty): no channel has that id.
    response, _ = _post_raw(client, json.dumps(telegram_update(1)).encode(), channel, param=False)
    assert response.json() == {"ok": True}  # header-only: stored and remembered
    ingest.verified_routes.clear()
    full = client.post(
        "/webhooks/telegram?channel=",
        data=json.dumps(telegram_update(2)),
        content_type="application/json",
        HTTP_X_TELEGRAM_BOT_API_SECRET_TOKEN=TELEGRAM_SECRET,
    )
    _assert_error(full, 401, "invalid_signature")
    # Remember the header-only route again, then the same empty parameter.
    assert post_telegram(client, telegram_update(3)).json() == {"ok": True}
    assert ingest.verified_routes.get(_key(channel, False)) == channel.pk
    remembered = client.post(
        "/webhooks/telegram?channel=",
        data=json.dumps(telegram_update(4)),
        content_type="application/json",
        HTTP_X_TELEGRAM_BOT_API_SECRET_TOKEN=TELEGRAM_SECRET,
    )
    assert _copies(4) == set()
    _assert_error(remembered, 401, "invalid_signature")


def test_chat_filter_sees_the_same_chat_id_on_both_paths(client, workspace, settings):
    channel = telegram_channel(workspace, chat_ids=["42"])
    assert post_telegram(client, telegram_update(1, chat_id=42)).json() == {"ok": True}
    assert ingest.verified_routes.get(_key(channel, False)) == channel.pk

    def odd_chat(update_id: int) -> bytes:
        update = telegram_update(update_id)
        update["message"]["chat"]["id"] = "4\u00002"
        return json.dumps(update).encode()

    remembered, _ = _post_raw(client, odd_chat(2), channel, param=False)
    settings.CHANNEL_VERIFIED_ROUTE_SECONDS = 0
    ingest.verified_routes.clear()
    full, _ = _post_raw(client, odd_chat(3), channel, param=False)
    assert full.json() == IGNORED  # the full path: '4\x002' is not '42'
    assert (remembered.json(), _copies(2)) == (full.json(), _copies(3))


# --- handing over -----------------------------------------------------------------------------------


@param_ids
def test_handed_over_ids_are_the_stored_rows_on_both_paths(
    client, workspace, param, django_capture_on_commit_callbacks, handed_over
):
    channel = telegram_channel(workspace)
    telegram_channel(make_workspace("sibling"), chat_ids=["42"], webhook_secret="sibling-secret")
    telegram_channel(make_workspace("everything"), webhook_secret="everything-secret")
    seen = 0
    for update_id, expected_queries in ((1, 2), (2, 1), (3, 1)):
        with django_capture_on_commit_callbacks(execute=True):
            response, queries = _post(client, telegram_update(update_id, chat_id=42), channel, param=param)
        assert response.json() == {"ok": True} and queries == expected_queries
        rows = ChannelMessage.objects.filter(platform_event_id=str(update_id)).values_list("pk", flat=True)
        new = handed_over[seen:]
        seen = len(handed_over)
        assert len(new) == 3
        assert sorted(new) == sorted(("channels.process_inbound", str(pk)) for pk in rows)


# --- VerifiedRoutes ---------------------------------------------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def ttl(settings) -> float:
    settings.CHANNEL_VERIFIED_ROUTE_SECONDS = 10
    return 10.0


def _uuid(n: int):
    import uuid

    return uuid.UUID(int=n)


def test_routes_expire_after_the_ttl(clock, ttl):
    routes = ingest.VerifiedRoutes(clock=clock)
    key = routes.key("secret-a", None)
    routes.remember(key, _uuid(1))
    clock.now += ttl - 0.001
    assert routes.get(key) == _uuid(1)
    clock.now += 0.001
    assert routes.get(key) is None
    assert key not in routes._entries  # dropped, not just hidden
    # Remembering again starts a new lifetime.
    routes.remember(key, _uuid(2))
    clock.now += ttl / 2
    assert routes.get(key) == _uuid(2)


def test_zero_ttl_remembers_nothing(clock, settings):
    settings.CHANNEL_VERIFIED_ROUTE_SECONDS = 0
    routes = ingest.VerifiedRoutes(clock=clock)
    routes.remember(routes.key("secret-a", None), _uuid(1))
    assert routes.get(routes.key("secret-a", None)) is None and not routes._entries


def test_oldest_routes_go_first_beyond_max_entries(clock, ttl):
    routes = ingest.VerifiedRoutes(max_entries=2, clock=clock)
    a, b, c = (routes.key(f"secret-{name}", None) for name in "abc")
    routes.remember(a, _uuid(1))
    clock.now += 1
    routes.remember(b, _uuid(2))
    clock.now += 1
    routes.remember(c, _uuid(3))
    assert (routes.get(a), routes.get(b), routes.get(c)) == (None, _uuid(2), _uuid(3))
    # Remembering a key again makes it the newest.
    routes.remember(b, _uuid(4))
    routes.remember(a, _uuid(5))
    assert (routes.get(a), routes.get(b), routes.get(c)) == (_uuid(5), _uuid(4), None)
    assert len(routes._entries) == 2


def test_forget_and_clear(clock, ttl):
    routes = ingest.VerifiedRoutes(clock=clock)
    a, b = routes.key("secret-a", None), routes.key("secret-a", "some-channel")
    assert a != b
    routes.remember(a, _uuid(1))
    routes.remember(b, _uuid(2))
    routes.forget(a)
    routes.forget(a)  # forgetting twice is fine
    assert (routes.get(a), routes.get(b)) == (None, _uuid(2))
    routes.clear()
    assert routes.get(b) is None and not routes._entries


def test_keys_never_hold_the_secret(clock, ttl):
    routes = ingest.VerifiedRoutes(clock=clock)
    secret = TELEGRAM_SECRET
    key = routes.key(secret, "channel-id")
    assert key == (credential_digest("telegram", secret), "channel-id")
    routes.remember(key, _uuid(1))
    stored = repr(routes._entries)
    assert secret not in stored and secret.encode().hex() not in stored
    assert all(secret not in part for part in key)
    assert routes.key("other-secret", "channel-id") != key
    # No parameter and an empty one are different requests (the full path refuses the latter).
    assert routes.key(secret, None) != routes.key(secret, "") != key


def test_the_process_memo_holds_no_secret_after_a_request(client, workspace):
    channel = telegram_channel(workspace)
    post_telegram(client, telegram_update(1), channel=channel)
    post_telegram(client, telegram_update(2))
    entries = repr(ingest.verified_routes._entries)
    assert len(ingest.verified_routes._entries) == 2
    assert TELEGRAM_SECRET not in entries
