"""Inbound webhooks without a worker: de-duplication, fan-out, allowlist, body limit, and the
processing step (agent → reply) run in-process against a real local A2A agent."""

from __future__ import annotations

import json

import pytest

from channels_app import services
from channels_app.models import Channel, ChannelMessage
from tests.channels_app.helpers import (
    CLOSED_BROKER_URL,
    TELEGRAM_SECRET,
    post_telegram,
    slack_channel,
    slack_headers,
    slack_message_event,
    telegram_channel,
    telegram_update,
)
from tests.support.factories import make_workspace

pytestmark = pytest.mark.django_db


def test_same_update_three_times_is_stored_once(
    client, workspace, django_capture_on_commit_callbacks, handed_over
):
    channel = telegram_channel(workspace)
    update = telegram_update(500, text="once")
    for _ in range(3):
        with django_capture_on_commit_callbacks(execute=True):
            response = post_telegram(client, update)
        assert response.status_code == 200 and response.json() == {"ok": True}
    assert ChannelMessage.objects.filter(channel=channel).count() == 1
    message = ChannelMessage.objects.get()
    # One processing task, so one agent request.
    assert handed_over == [("channels.process_inbound", str(message.pk))]
    assert (message.status, message.text, message.chat_id, message.sender_id) == (
        "received",
        "once",
        "42",
        "7",
    )
    assert message.platform_event_id == "500"


def test_lower_update_id_is_still_accepted_once(client, workspace):
    telegram_channel(workspace)
    for update_id in (900, 100, 100, 901):
        assert post_telegram(client, telegram_update(update_id)).status_code == 200
    ids = sorted(ChannelMessage.objects.values_list("platform_event_id", flat=True))
    assert ids == ["100", "900", "901"]


def test_channel_parameter_and_header_lookup_agree(client, workspace):
    channel = telegram_channel(workspace)
    assert post_telegram(client, telegram_update(1), channel=channel).status_code == 200
    assert post_telegram(client, telegram_update(2)).status_code == 200
    assert ChannelMessage.objects.filter(channel=channel).count() == 2


def test_non_message_updates_are_200_ignored(client, workspace):
    telegram_channel(workspace)
    for update in (
        {"update_id": 5, "my_chat_member": {"chat": {"id": 1}}},
        {"update_id": 6, "message": {"chat": {"id": 1}, "from": {"id": 2}, "sticker": {}}},
        {"update_id": 7, "message": {"chat": {"id": 1}, "from": {"id": 2, "is_bot": True}, "text": "loop"}},
    ):
        response = post_telegram(client, update)
        assert response.status_code == 200 and response.json()["status"] == "ignored"
    assert not ChannelMessage.objects.exists()
    response = post_telegram(client, {"no": "update_id"})
    assert response.status_code == 400 and response.json()["code"] == "invalid_request"
    response = client.post(
        "/webhooks/telegram",
        data=b"\xff\xfe not json",
        content_type="application/json",
        HTTP_X_TELEGRAM_BOT_API_SECRET_TOKEN=TELEGRAM_SECRET,
    )
    assert response.status_code == 400


def test_chat_filter_and_disabled_channels(client, workspace):
    channel = telegram_channel(workspace, chat_ids=["42"])
    response = post_telegram(client, telegram_update(1, chat_id=99))
    assert response.status_code == 200 and response.json()["status"] == "ignored"
    assert not ChannelMessage.objects.exists()
    Channel.objects.filter(pk=channel.pk).update(enabled=False)
    # A disabled channel is not found by its header, and when named it verifies but stores nothing.
    assert post_telegram(client, telegram_update(2)).status_code == 401
    response = post_telegram(client, telegram_update(3), channel=channel)
    assert response.status_code == 200 and response.json()["status"] == "ignored"
    assert not ChannelMessage.objects.exists()


def test_fan_out_to_every_channel_bound_to_the_chat(
    client, workspace, django_capture_on_commit_callbacks, handed_over
):
    second_ws = make_workspace("second")
    third_ws = make_workspace("third")
    first = telegram_channel(workspace, chat_ids=["42"])
    # Same bot, different webhook secrets: only the credentials decide the group.
    second = telegram_channel(second_ws, chat_ids=["42", "43"], webhook_secret="another-secret-for-second")
    everything = telegram_channel(third_ws)
    elsewhere = telegram_channel(third_ws, chat_ids=["77"])
    with django_capture_on_commit_callbacks(execute=True):
        assert post_telegram(client, telegram_update(10, chat_id=42), channel=first).status_code == 200
    stored = {m.channel_id for m in ChannelMessage.objects.all()}
    assert stored == {first.pk, second.pk, everything.pk}
    assert elsewhere.pk not in stored
    assert sorted(handed_over) == sorted(
        ("channels.process_inbound", str(pk)) for pk in ChannelMessage.objects.values_list("pk", flat=True)
    )
    # The same update through another channel's URL is not stored again.
    post_telegram(client, telegram_update(10, chat_id=42), secret="another-secret-for-second", channel=second)
    assert ChannelMessage.objects.count() == 3


def test_slack_fan_out_and_dedupe(client, workspace, other_workspace):
    first = slack_channel(workspace, channel_id="C111")
    second = slack_channel(other_workspace)
    body = slack_message_event("Ev1", channel="C111")
    for _ in range(2):
        response = client.post(
            "/webhooks/slack", data=body, content_type="application/json", **slack_headers(body)
        )
        assert response.status_code == 200
    assert {m.channel_id for m in ChannelMessage.objects.all()} == {first.pk, second.pk}
    bot_echo = json.dumps(
        {
            "type": "event_callback",
            "event_id": "Ev2",
            "event": {"type": "message", "bot_id": "B1", "text": "x"},
        }
    ).encode()
    response = client.post(
        "/webhooks/slack", data=bot_echo, content_type="application/json", **slack_headers(bot_echo)
    )
    assert response.json()["status"] == "ignored"


def _padded_update(size: int) -> bytes:
    body = json.dumps(telegram_update(77)).encode()
    return body + b" " * (size - len(body))


def test_body_limit_edge(client, workspace):
    telegram_channel(workspace)
    limit = 1024 * 1024
    at_limit = _padded_update(limit)
    assert len(at_limit) == limit
    response = client.post(
        "/webhooks/telegram",
        data=at_limit,
        content_type="application/json",
        HTTP_X_TELEGRAM_BOT_API_SECRET_TOKEN=TELEGRAM_SECRET,
    )
    assert response.status_code == 200
    over = _padded_update(limit + 1)
    response = client.post(
        "/webhooks/telegram",
        data=over,
        content_type="application/json",
        HTTP_X_TELEGRAM_BOT_API_SECRET_TOKEN=TELEGRAM_SECRET,
    )
    assert response.status_code == 413 and response.json()["code"] == "payload_too_large"
    # Refused before verifying or parsing: even without a signature it is a 413, not a 401.
    response = client.post("/webhooks/slack", data=over, content_type="application/json")
    assert response.status_code == 413
    assert ChannelMessage.objects.count() == 1


# --- processing (the task body, in-process) -----------------------------------------------------------


def _received(client, workspace_channel, update):
    post_telegram(client, update)
    return ChannelMessage.objects.filter(channel=workspace_channel).order_by("-created_at").first()


def test_allowlist_blocks_a_stranger(client, workspace, echo_agent):
    workspace.url = echo_agent.url
    workspace.save()
    channel = telegram_channel(workspace, allowlist=["7"])
    stranger = _received(client, channel, telegram_update(1, user_id=666, chat_id=555))
    assert services.message_process_inbound(message_id=stranger.pk) is None
    stranger.refresh_from_db()
    assert stranger.status == "ignored" and stranger.error == "sender not in allowlist"
    assert echo_agent.received == []
    friend = _received(client, channel, telegram_update(2, user_id=7, text="let me in"))
    services.message_process_inbound(message_id=friend.pk)
    assert [m["parts"][0]["text"] for m in echo_agent.received] == ["let me in"]
    reply = ChannelMessage.objects.get(reply_to=friend)
    assert (reply.direction, reply.status, reply.chat_id, reply.text) == (
        "outbound",
        "queued",
        "42",
        "let me in",
    )
    # Processing again does not call the agent twice.
    services.message_process_inbound(message_id=friend.pk)
    assert len(echo_agent.received) == 1


def test_allowlist_by_chat_id(client, workspace, echo_agent):
    workspace.url = echo_agent.url
    workspace.save()
    channel = telegram_channel(workspace, allowlist=["-100"])
    message = _received(client, channel, telegram_update(1, user_id=1, chat_id=-100))
    services.message_process_inbound(message_id=message.pk)
    assert len(echo_agent.received) == 1
    metadata = echo_agent.received[0]["metadata"]
    assert metadata["channel_id"] == str(channel.pk) and metadata["chat_id"] == "-100"


def test_agent_failure_marks_the_message_failed(client, workspace):
    workspace.url = ""
    workspace.save()
    channel = telegram_channel(workspace)
    message = _received(client, channel, telegram_update(1))
    assert services.message_process_inbound(message_id=message.pk) is None
    message.refresh_from_db()
    assert message.status == "failed" and message.error == "workspace has no agent url"


def test_reply_outcome_decides_the_inbound_status(client, workspace, echo_agent, settings, fake_http):
    from tests.support.fake_http import json_response

    settings.TELEGRAM_API_BASE_URL = fake_http.url
    workspace.url = echo_agent.url
    workspace.save()
    channel = telegram_channel(workspace)
    fake_http.route(
        "POST", f"/bot{channel.config['bot_token']}/sendMessage", json_response({"ok": True, "result": {}})
    )
    message = _received(client, channel, telegram_update(1, text="ping"))
    services.message_process_inbound(message_id=message.pk)
    reply = ChannelMessage.objects.get(reply_to=message)
    services.message_send_attempt(message_id=reply.pk)
    message.refresh_from_db()
    assert message.status == "delivered"
    assert fake_http.requests[-1].json() == {"chat_id": "42", "text": "ping"}


def test_webhook_other_methods_are_405(client):
    response = client.get("/webhooks/telegram")
    assert response.status_code == 405
    assert response.json()["code"] == "method_not_allowed"


def test_broker_down_still_answers_200_and_the_relay_publishes_later(client, workspace, broker):
    """A real outage: the relay's producer points at a closed port. The webhook answers 200 with
    the row stored (it never touches the broker); the relay's pass fails and leaves the row due;
    once the broker is back the next pass publishes it, once."""
    from celery import current_app

    from common.outbox import BROKER_ERRORS, relay_pass

    channel = telegram_channel(workspace)
    assert post_telegram(client, telegram_update(1)).status_code == 200
    message = ChannelMessage.objects.get(channel=channel)
    assert (message.status, message.attempts, message.publish_attempt) == ("received", 0, 0)
    with current_app.connection_for_write(url=CLOSED_BROKER_URL) as dead, pytest.raises(BROKER_ERRORS):
        relay_pass(producer=current_app.amqp.Producer(dead))
    message.refresh_from_db()
    assert (message.publish_attempt, message.published_at) == (0, None)
    assert broker.messages() == []
    assert relay_pass() == 1
    assert relay_pass() == 0
    assert [(m["headers"]["task"], m["args"]) for m in broker.messages()] == [
        ("channels.process_inbound", [str(message.pk), 1])
    ]


def test_accepted_update_is_published_once_to_the_broker(client, workspace, broker):
    """The relay publishes the webhook's row as Celery's own message: one per accepted update,
    none for a duplicate, none again on the next pass."""
    from common.outbox import relay_pass

    channel = telegram_channel(workspace)
    for _ in range(2):
        assert post_telegram(client, telegram_update(77, text="hi")).status_code == 200
    assert relay_pass() == 1
    assert relay_pass() == 0
    message = ChannelMessage.objects.get(channel=channel)
    assert [(m["headers"]["task"], m["args"]) for m in broker.messages()] == [
        ("channels.process_inbound", [str(message.pk), 1])
    ]


def test_a_task_delivered_twice_runs_once(client, workspace, echo_agent):
    workspace.url = echo_agent.url
    workspace.save()
    channel = telegram_channel(workspace)
    post_telegram(client, telegram_update(1))
    message = ChannelMessage.objects.get(channel=channel)
    stale_copy = ChannelMessage.objects.get(pk=message.pk)
    services.message_process_inbound(message_id=message.pk)
    assert len(echo_agent.received) == 1
    # A run that read the row before the first one claimed it cannot claim it again.
    assert services.message_claim(stale_copy) is False
    ChannelMessage.objects.filter(pk=message.pk).update(status="received")
    ChannelMessage.objects.filter(reply_to=message).delete()
    assert services.message_claim(stale_copy) is False
