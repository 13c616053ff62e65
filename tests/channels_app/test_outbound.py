"""Outbound sends: queueing, splitting at platform limits, retries and permanent failures, the
synchronous test endpoint and the message log — against fake platform servers on 127.0.0.1."""

from __future__ import annotations

import pytest

from channels_app import services
from channels_app.models import Channel, ChannelMessage
from channels_app.services import channel_create
from tests.channels_app.helpers import SLACK_TOKEN, TELEGRAM_TOKEN, slack_channel, telegram_channel
from tests.support.fake_http import FakeResponse, json_response

pytestmark = pytest.mark.django_db

SEND_PATH = f"/bot{TELEGRAM_TOKEN}/sendMessage"
TG_OK = json_response({"ok": True, "result": {"message_id": 1}})


@pytest.fixture
def platforms(settings, fake_http):
    settings.TELEGRAM_API_BASE_URL = fake_http.url
    settings.SLACK_API_BASE_URL = fake_http.url
    settings.DISCORD_WEBHOOK_BASE_URL = f"{fake_http.url}/api/webhooks/"
    settings.LARK_WEBHOOK_BASE_URLS = [f"{fake_http.url}/open-apis/bot/v2/hook/"]
    return fake_http


def _send(as_agent, channel, payload):
    return as_agent.post(
        f"/workspaces/{channel.workspace_id}/channels/{channel.id}/send", payload, format="json"
    )


def _run(message_id) -> list[float]:
    """Drive attempts like the task does, collecting the delays it would wait."""
    delays = []
    while (delay := services.message_send_attempt(message_id=message_id)) is not None:
        delays.append(delay)
    return delays


def test_send_is_queued_then_sent(as_agent, workspace, platforms, run_jobs):
    platforms.route("POST", SEND_PATH, TG_OK)
    channel = telegram_channel(workspace, chat_ids=["42", "43"])
    response = _send(as_agent, channel, {"text": "hello"})
    assert response.status_code == 202, response.json()
    body = response.json()
    assert body["direction"] == "outbound" and body["status"] == "queued"
    assert body["chat_id"] == "42" and body["attempts"] == 0 and body["text"] == "hello"
    assert platforms.requests == []  # stored only: the relay publishes the send task
    assert run_jobs() == 1
    message = ChannelMessage.objects.get(pk=body["id"])
    assert (message.status, message.attempts, message.error) == ("sent", 1, "")
    assert platforms.requests[0].json() == {"chat_id": "42", "text": "hello"}
    channel.refresh_from_db()
    assert channel.message_count == 1 and channel.last_message_at is not None
    # An explicit chat id wins over the default one.
    other = _send(as_agent, channel, {"text": "hi", "chat_id": "-100777"}).json()
    _run(other["id"])
    assert platforms.requests[-1].json()["chat_id"] == "-100777"


def test_send_validation(as_agent, workspace, platforms):
    channel = telegram_channel(workspace)  # no chat_ids: a chat id is needed
    response = _send(as_agent, channel, {"text": "hi"})
    assert response.status_code == 400 and "chat_id" in response.json()["details"]
    assert _send(as_agent, channel, {"text": "   ", "chat_id": "1"}).status_code == 400
    assert _send(as_agent, channel, {"text": "x" * 40_000, "chat_id": "1"}).status_code == 202
    response = _send(as_agent, channel, {"text": "x" * 40_001, "chat_id": "1"})
    assert response.status_code == 400 and response.json()["code"] == "invalid_request"
    assert _send(as_agent, channel, {"text": "x", "status": "sent"}).json()["code"] == "unknown_field"


def test_telegram_splits_at_4096(workspace, platforms):
    platforms.route("POST", SEND_PATH, TG_OK)
    channel = telegram_channel(workspace, chat_ids=["42"])
    text = "x" * 10_000
    message = services.channel_send(channel=channel, text=text)
    _run(message.pk)
    sent = [r.json()["text"] for r in platforms.requests]
    assert [len(part) for part in sent] == [4096, 4096, 1808]
    assert "".join(sent) == text


def test_split_prefers_word_boundaries_and_keeps_the_text(workspace, platforms):
    platforms.route("POST", SEND_PATH, TG_OK)
    channel = telegram_channel(workspace, chat_ids=["42"])
    text = " ".join(f"word{i}" for i in range(2000))  # ~ 13,000 characters
    _run(services.channel_send(channel=channel, text=text).pk)
    sent = [r.json()["text"] for r in platforms.requests]
    assert len(text) == 16_889 and len(sent) == 5
    assert all(len(part) <= 4096 for part in sent)
    assert "".join(sent) == text
    assert all(part.endswith(" ") for part in sent[:-1])


def test_slack_splits_into_3000_character_blocks(workspace, platforms):
    platforms.route("POST", "/chat.postMessage", json_response({"ok": True, "ts": "1.2"}))
    channel = slack_channel(workspace, channel_id="C0001")
    text = "y" * 10_000
    _run(services.channel_send(channel=channel, text=text).pk)
    assert len(platforms.requests) == 1
    request = platforms.requests[0]
    assert request.headers["Authorization"] == f"Bearer {SLACK_TOKEN}"
    payload = request.json()
    blocks = [b["text"]["text"] for b in payload["blocks"]]
    assert [len(b) for b in blocks] == [3000, 3000, 3000, 1000]
    assert "".join(blocks) == text and payload["channel"] == "C0001"


def test_discord_splits_at_2000(workspace, platforms):
    platforms.route_prefix("POST", "/api/webhooks/", lambda request: FakeResponse(204))
    channel = channel_create(
        workspace=workspace, platform="discord", config={"webhook_url": f"{platforms.url}/api/webhooks/1/tok"}
    )
    text = "z" * 10_000
    _run(services.channel_send(channel=channel, text=text).pk)
    sent = [r.json()["content"] for r in platforms.requests]
    assert [len(part) for part in sent] == [2000] * 5 and "".join(sent) == text
    assert {r.path for r in platforms.requests} == {"/api/webhooks/1/tok"}


def test_lark_send_is_signed(workspace, platforms):
    platforms.route_prefix("POST", "/open-apis/bot/v2/hook/", json_response({"code": 0, "msg": "success"}))
    channel = channel_create(
        workspace=workspace,
        platform="lark",
        config={"webhook_url": f"{platforms.url}/open-apis/bot/v2/hook/abc", "sign_secret": "lark-sign"},
    )
    message = services.channel_send(channel=channel, text="hello lark")
    _run(message.pk)
    payload = platforms.requests[0].json()
    assert payload["msg_type"] == "text" and payload["content"] == {"text": "hello lark"}
    import base64
    import hashlib
    import hmac

    key = f"{payload['timestamp']}\nlark-sign".encode()
    assert payload["sign"] == base64.b64encode(hmac.new(key, b"", hashlib.sha256).digest()).decode()
    assert ChannelMessage.objects.get(pk=message.pk).status == "sent"


def test_revoked_token_fails_at_once_and_sets_last_error(workspace, platforms):
    platforms.route(
        "POST",
        SEND_PATH,
        json_response(
            {"ok": False, "error_code": 401, "description": "Unauthorized: token revoked"}, status=401
        ),
    )
    channel = telegram_channel(workspace, chat_ids=["42"])
    message = services.channel_send(channel=channel, text="hi")
    assert _run(message.pk) == []
    message.refresh_from_db()
    assert (message.status, message.attempts) == ("failed", 1)
    assert len(platforms.requests) == 1
    channel.refresh_from_db()
    assert channel.last_error == message.error == "telegram: credentials refused (HTTP 401)"


def test_unknown_chat_is_permanent(workspace, platforms):
    platforms.route(
        "POST",
        SEND_PATH,
        json_response({"ok": False, "error_code": 400, "description": "chat not found"}, status=400),
    )
    channel = telegram_channel(workspace, chat_ids=["42"])
    message = services.channel_send(channel=channel, text="hi")
    assert _run(message.pk) == []
    assert ChannelMessage.objects.get(pk=message.pk).status == "failed"
    assert len(platforms.requests) == 1


def test_5xx_storm_backs_off_capped_then_fails(workspace, platforms, settings):
    settings.CHANNEL_SEND_BACKOFF_SECONDS = 1
    settings.CHANNEL_SEND_BACKOFF_MAX_SECONDS = 4
    platforms.route("POST", SEND_PATH, lambda request: FakeResponse(502, b"bad gateway"))
    channel = telegram_channel(workspace, chat_ids=["42"])
    message = services.channel_send(channel=channel, text="hi")
    assert _run(message.pk) == [1, 2, 4, 4]
    message.refresh_from_db()
    assert (message.status, message.attempts) == ("failed", 5)
    assert len(platforms.requests) == 5
    channel.refresh_from_db()
    assert channel.last_error == "telegram: server error (HTTP 502)"


def test_rate_limit_waits_what_the_platform_says(workspace, platforms):
    answers = iter(
        [
            json_response({"ok": False, "error_code": 429, "parameters": {"retry_after": 2}}, status=429),
            TG_OK,
        ]
    )
    platforms.route("POST", SEND_PATH, lambda request: next(answers)(request))
    channel = telegram_channel(workspace, chat_ids=["42"])
    message = services.channel_send(channel=channel, text="hi")
    assert _run(message.pk) == [2.0]
    message.refresh_from_db()
    assert (message.status, message.attempts) == ("sent", 2)


def test_retry_after_header_and_discord_body(workspace, platforms):
    answers = iter(
        [
            json_response({"message": "rate limited", "retry_after": 0.5}, status=429),
            lambda request: FakeResponse(429, b"", {"Retry-After": "3"}),
            lambda request: FakeResponse(204),
        ]
    )
    platforms.route_prefix("POST", "/api/webhooks/", lambda request: next(answers)(request))
    channel = channel_create(
        workspace=workspace, platform="discord", config={"webhook_url": f"{platforms.url}/api/webhooks/1/tok"}
    )
    message = services.channel_send(channel=channel, text="hi")
    assert _run(message.pk) == [0.5, 3.0]
    assert ChannelMessage.objects.get(pk=message.pk).status == "sent"


def test_transient_failure_midway_does_not_resend_sent_parts(workspace, platforms):
    answers = iter([TG_OK, lambda request: FakeResponse(503), TG_OK, TG_OK])
    platforms.route("POST", SEND_PATH, lambda request: next(answers)(request))
    channel = telegram_channel(workspace, chat_ids=["42"])
    text = "a" * 4096 + "b" * 4096 + "c" * 10
    message = services.channel_send(channel=channel, text=text)
    assert len(_run(message.pk)) == 1
    sent = [r.json()["text"] for r in platforms.requests]
    assert [s[0] for s in sent] == ["a", "b", "b", "c"]
    assert ChannelMessage.objects.get(pk=message.pk).parts_sent == 3


def test_test_endpoint(as_agent, workspace, platforms):
    channel = slack_channel(workspace, channel_id="C0001")
    url = f"/workspaces/{workspace.id}/channels/{channel.id}/test"
    platforms.route("POST", "/chat.postMessage", json_response({"ok": True}))
    response = as_agent.post(url, {}, format="json")
    assert response.status_code == 200 and response.json() == {"ok": True}
    assert platforms.requests[-1].json()["channel"] == "C0001"
    platforms.route("POST", "/chat.postMessage", json_response({"ok": False, "error": "channel_not_found"}))
    response = as_agent.post(url, {"chat_id": "C0002"}, format="json")
    assert response.status_code == 502
    assert response.json()["code"] == "platform_error"
    assert "channel_not_found" in response.json()["error"]
    assert SLACK_TOKEN not in response.content.decode()
    assert platforms.requests[-1].json()["channel"] == "C0002"
    # The test message never enters the log or the retry machinery.
    assert not ChannelMessage.objects.exists()


def test_message_log_filters_and_query_count(as_agent, workspace, platforms, django_assert_num_queries):
    channel = telegram_channel(workspace, chat_ids=["42"])
    services.channel_send(channel=channel, text="one")
    url = f"/workspaces/{workspace.id}/channels/{channel.id}/messages"
    as_agent.get(url)
    with django_assert_num_queries(4) as first:
        assert len(as_agent.get(url).json()) == 1
    for i in range(6):
        services.channel_send(channel=channel, text=f"more {i}")
    with django_assert_num_queries(len(first.captured_queries)):
        body = as_agent.get(url).json()
    assert len(body) == 7 and body[0]["text"] == "more 5"
    assert set(body[0]) == {
        "id",
        "direction",
        "chat_id",
        "sender_id",
        "text",
        "status",
        "error",
        "attempts",
        "a2a_protocol",
        "created_at",
    }
    assert body[0]["a2a_protocol"] == ""  # outbound: no A2A request behind it
    assert len(as_agent.get(url, {"direction": "outbound", "status": "queued"}).json()) == 7
    assert as_agent.get(url, {"direction": "inbound"}).json() == []
    response = as_agent.get(url, {"status": "bogus"})
    assert response.status_code == 400 and response.json()["code"] == "invalid_parameter"
    response = as_agent.get(url, {"limit": 2})
    assert len(response.json()) == 2 and 'rel="next"' in response["Link"]


def test_send_on_a_channel_whose_platform_is_down_retries(workspace, settings):
    from tests.support.fake_http import free_port

    settings.TELEGRAM_API_BASE_URL = f"http://127.0.0.1:{free_port()}"
    settings.CHANNEL_SEND_BACKOFF_SECONDS = 0
    channel = telegram_channel(workspace, chat_ids=["42"])
    message = services.channel_send(channel=channel, text="hi")
    assert _run(message.pk) == [0, 0, 0, 0]
    message.refresh_from_db()
    assert message.status == "failed" and message.error == "telegram: connection refused"
    assert Channel.objects.get(pk=channel.pk).last_error == "telegram: connection refused"


def test_slack_ratelimited_is_transient_and_channel_not_found_permanent(workspace, platforms):
    answers = iter(
        [
            json_response({"ok": False, "error": "ratelimited"}, headers={"Retry-After": "1"}),
            json_response({"ok": False, "error": "channel_not_found"}),
        ]
    )
    platforms.route("POST", "/chat.postMessage", lambda request: next(answers)(request))
    channel = slack_channel(workspace, channel_id="C0001")
    message = services.channel_send(channel=channel, text="hi")
    assert _run(message.pk) == [1.0]
    message.refresh_from_db()
    assert (message.status, message.attempts, message.error) == ("failed", 2, "slack: channel_not_found")
    assert Channel.objects.get(pk=channel.pk).last_error == "slack: channel_not_found"


def test_lark_error_codes(workspace, platforms):
    answers = iter(
        [
            json_response({"code": 11232, "msg": "frequency limited"}),
            json_response({"code": 19021, "msg": "sign match fail or timestamp is not within one hour"}),
        ]
    )
    platforms.route_prefix("POST", "/open-apis/bot/v2/hook/", lambda request: next(answers)(request))
    channel = channel_create(
        workspace=workspace,
        platform="lark",
        config={"webhook_url": f"{platforms.url}/open-apis/bot/v2/hook/abc"},
    )
    message = services.channel_send(channel=channel, text="hi")
    delays = _run(message.pk)
    assert len(delays) == 1
    message.refresh_from_db()
    assert (message.status, message.error) == ("failed", "lark: request refused (code 19021)")
    assert "sign match" not in message.error


def test_failed_send_is_logged_at_warning_with_its_reason(workspace, platforms, settings, caplog):
    """Through the task, which itself ends normally: the failure must still show in the logs."""
    from channels_app.models import ChannelMessage
    from channels_app.tasks import send_message

    settings.CHANNEL_SEND_BACKOFF_SECONDS = 1
    platforms.route(
        "POST",
        SEND_PATH,
        json_response({"ok": False, "error_code": 400, "description": "chat not found"}, status=400),
    )
    channel = telegram_channel(workspace, chat_ids=["42"])
    message = services.channel_send(channel=channel, text="hi")
    ChannelMessage.objects.filter(pk=message.pk).update(publish_attempt=1)  # as the relay does
    with caplog.at_level("INFO", logger="channels_app.services"):
        send_message.run(str(message.pk), 1)
    failures = [r for r in caplog.records if r.name == "channels_app.services" and r.levelname == "WARNING"]
    assert len(failures) == 1
    text = failures[0].getMessage()
    assert str(message.pk) in text and str(channel.pk) in text and "failed after 1 attempt(s)" in text
    message.refresh_from_db()
    assert message.status == "failed" and text.endswith(f": {message.error}") and message.error
    assert TELEGRAM_TOKEN not in text

    caplog.clear()
    platforms.route("POST", SEND_PATH, lambda request: FakeResponse(502, b"secret upstream text"))
    again = services.channel_send(channel=channel, text="hi")
    with caplog.at_level("INFO", logger="channels_app.services"):
        delay = services.message_send_attempt(message_id=again.pk)
    assert delay == 1
    [retry] = [r for r in caplog.records if r.levelname == "WARNING"]
    assert "attempt 1 of 5, retrying in 1 s: telegram: server error (HTTP 502)" in retry.getMessage()
    assert "secret upstream text" not in retry.getMessage()
