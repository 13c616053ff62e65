"""Conversations: one A2A contextId per chat (per Slack thread), recent history in
`metadata.history`, the commands the service answers itself, and Telegram "typing…"."""

from __future__ import annotations

import json
import threading

import pytest

from channels_app import services
from channels_app.models import ChannelMessage, Conversation
from tests.channels_app.helpers import (
    post_telegram,
    slack_channel,
    slack_headers,
    telegram_channel,
    telegram_update,
)
from tests.support.factories import make_workspace
from tests.support.fake_http import FakeResponse, json_response

pytestmark = pytest.mark.django_db


def agent_route(fake, *, context_id: str | None = None, delay: float = 0.0, reply: str = "ok"):
    """A fake A2A agent at `fake.url/agent`: answers every message; `context_id` when given."""

    def answer(request):
        body = request.json()
        result = {
            "kind": "message",
            "role": "agent",
            "messageId": "m",
            "parts": [{"kind": "text", "text": reply}],
        }
        if context_id:
            result["contextId"] = context_id
        payload = json.dumps({"jsonrpc": "2.0", "id": body["id"], "result": result}).encode()
        return FakeResponse(200, payload, {"Content-Type": "application/json"}, delay=delay)

    fake.route("POST", "/agent", answer)
    return f"{fake.url}/agent"


def agent_messages(fake) -> list[dict]:
    with fake.lock:
        return [r.json()["params"]["message"] for r in fake.requests if r.path == "/agent"]


@pytest.fixture
def chat(workspace, fake_http, settings):
    settings.TELEGRAM_API_BASE_URL = fake_http.url
    fake_http.prefix_routes.append(("POST", "/bot", json_response({"ok": True, "result": {"message_id": 1}})))
    workspace.url = agent_route(fake_http)
    workspace.save()
    return telegram_channel(workspace)


def say(client, channel, update_id: int, text: str, chat_id: int = 42) -> ChannelMessage:
    """Post a Telegram message, run the processing step, and mark the agent's reply sent."""
    assert post_telegram(client, telegram_update(update_id, text=text, chat_id=chat_id)).status_code == 200
    message = ChannelMessage.objects.get(channel=channel, platform_event_id=str(update_id))
    services.message_process_inbound(message_id=message.pk)
    for reply in ChannelMessage.objects.filter(reply_to=message):
        services.message_send_attempt(message_id=reply.pk)
    return message


def test_same_chat_same_context_with_history_other_chat_other_context(client, chat, fake_http):
    say(client, chat, 1, "my name is Ann")
    say(client, chat, 2, "what is my name?")
    say(client, chat, 3, "hello from elsewhere", chat_id=99)
    first, second, other = agent_messages(fake_http)
    assert first["contextId"] and first["contextId"] == second["contextId"]
    assert other["contextId"] != first["contextId"]
    assert first["metadata"]["history"] == []
    history = second["metadata"]["history"]
    assert [(h["role"], h["text"]) for h in history] == [("user", "my name is Ann"), ("agent", "ok")]
    assert all(h["at"].endswith("Z") for h in history)
    assert other["metadata"]["history"] == []


def test_history_is_bounded_at_the_setting(client, chat, fake_http, settings):
    settings.CHANNEL_HISTORY_MESSAGES = 3
    for n in range(1, 4):
        say(client, chat, n, f"m{n}")
    last = agent_messages(fake_http)[-1]["metadata"]["history"]
    # Limit 3: the three latest of m1, ok, m2, ok (oldest first).
    assert [h["text"] for h in last] == ["ok", "m2", "ok"]
    settings.CHANNEL_HISTORY_MESSAGES = 4
    say(client, chat, 4, "m4")
    assert [h["text"] for h in agent_messages(fake_http)[-1]["metadata"]["history"]] == [
        "m2",
        "ok",
        "m3",
        "ok",
    ]
    settings.CHANNEL_HISTORY_MESSAGES = 0
    say(client, chat, 5, "m5")
    assert agent_messages(fake_http)[-1]["metadata"]["history"] == []


def test_reset_starts_a_new_context_with_empty_history(client, chat, fake_http):
    say(client, chat, 1, "remember 7")
    say(client, chat, 2, "/reset@mybot")
    say(client, chat, 3, "what did I say?")
    before, after = agent_messages(fake_http)  # /reset never reached the agent
    assert after["contextId"] != before["contextId"]
    assert after["metadata"]["history"] == []
    answer = ChannelMessage.objects.get(reply_to__platform_event_id="2")
    assert answer.text.startswith("Started a new conversation") and answer.status == "sent"


def test_agent_context_id_is_adopted(client, workspace, fake_http, settings):
    settings.TELEGRAM_API_BASE_URL = fake_http.url
    fake_http.prefix_routes.append(("POST", "/bot", json_response({"ok": True, "result": {}})))
    workspace.url = agent_route(fake_http, context_id="agent-ctx-1")
    workspace.save()
    channel = telegram_channel(workspace)
    say(client, channel, 1, "one")
    say(client, channel, 2, "two")
    first, second = agent_messages(fake_http)
    assert first["contextId"] != "agent-ctx-1"  # ours, before the agent named it
    assert second["contextId"] == "agent-ctx-1"
    conversation = Conversation.objects.get(channel=channel)
    assert (conversation.context_id, conversation.message_count) == ("agent-ctx-1", 4)


def test_conversations_never_cross_channels_or_workspaces(client, chat, fake_http):
    other_ws = make_workspace("gamma", url=chat.workspace.url)
    other = telegram_channel(
        other_ws, bot_token="999:BBEhBP0av28P2aqsU4L5Zq9ZsS6IcX1Yw1E", webhook_secret="other-secret-1"
    )
    say(client, chat, 1, "secret of alpha")
    post = client.post(
        "/webhooks/telegram",
        data=json.dumps(telegram_update(2, text="hi from gamma")),
        content_type="application/json",
        HTTP_X_TELEGRAM_BOT_API_SECRET_TOKEN="other-secret-1",
    )
    assert post.status_code == 200
    message = ChannelMessage.objects.get(channel=other)
    services.message_process_inbound(message_id=message.pk)
    first, second = agent_messages(fake_http)
    assert second["contextId"] != first["contextId"] and second["metadata"]["history"] == []


def _slack_event(event_id: str, text: str, *, thread_ts: str | None = None, ts: str = "1.1") -> bytes:
    event = {"type": "message", "channel": "C111", "user": "U1", "text": text, "ts": ts}
    if thread_ts:
        event["thread_ts"] = thread_ts
    return json.dumps({"type": "event_callback", "event_id": event_id, "event": event}).encode()


def test_slack_thread_replies_share_the_thread_context(client, workspace, fake_http, settings):
    settings.SLACK_API_BASE_URL = fake_http.url
    fake_http.route("POST", "/chat.postMessage", json_response({"ok": True, "ts": "9.9"}))
    workspace.url = agent_route(fake_http)
    workspace.save()
    channel = slack_channel(workspace)
    for event_id, text, thread in (
        ("E1", "top level", None),
        ("E2", "in thread", "5.5"),
        ("E3", "again in thread", "5.5"),
        ("E4", "top again", None),
    ):
        body = _slack_event(event_id, text, thread_ts=thread)
        response = client.post(
            "/webhooks/slack", data=body, content_type="application/json", **slack_headers(body)
        )
        assert response.status_code == 200
        message = ChannelMessage.objects.get(channel=channel, platform_event_id=event_id)
        services.message_process_inbound(message_id=message.pk)
    top, thread1, thread2, top2 = agent_messages(fake_http)
    assert thread1["contextId"] == thread2["contextId"] != top["contextId"]
    assert top2["contextId"] == top["contextId"]
    assert [h["text"] for h in thread2["metadata"]["history"]] == ["in thread", "ok"]
    assert [h["text"] for h in top2["metadata"]["history"]] == ["top level", "ok"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "/start",
            "Connected to the agent of workspace “alpha”.\nChat id: 42\nYour messages here reach the agent.",
        ),
        ("/start@mybot", "Connected to the agent"),
        ("/help", "/reset: start a new conversation"),
        ("/help@my_bot", "/start: show whether this chat is connected"),
        ("/reset@mybot", "Started a new conversation"),
    ],
)
def test_telegram_commands_are_answered_by_the_service(client, chat, fake_http, text, expected):
    message = say(client, chat, 1, text)
    assert agent_messages(fake_http) == []
    answer = ChannelMessage.objects.get(reply_to=message)
    assert expected in answer.text and answer.meta["service"] == "command"
    sent = [r.json() for r in fake_http.requests if r.path.endswith("/sendMessage")]
    assert sent == [{"chat_id": "42", "text": answer.text}]
    message.refresh_from_db()
    assert message.status == "delivered"


def test_start_tells_a_stranger_the_chat_is_not_allowed(client, workspace, fake_http, settings):
    settings.TELEGRAM_API_BASE_URL = fake_http.url
    fake_http.prefix_routes.append(("POST", "/bot", json_response({"ok": True, "result": {}})))
    workspace.url = agent_route(fake_http)
    workspace.save()
    channel = telegram_channel(workspace, allowlist=["12345"])
    message = say(client, channel, 1, "/start")
    assert "not in the channel's allowlist" in ChannelMessage.objects.get(reply_to=message).text
    reset = say(client, channel, 2, "/reset")
    assert (
        ChannelMessage.objects.get(reply_to=reset).text
        == "This chat or sender is not in the channel's allowlist."
    )
    assert agent_messages(fake_http) == []


@pytest.mark.parametrize("text", ["/startle", "please /reset", "/resetting", "reset"])
def test_not_commands_go_to_the_agent(client, chat, fake_http, text):
    say(client, chat, 1, text)
    assert [m["parts"][0]["text"] for m in agent_messages(fake_http)] == [text]


def test_reset_text_on_slack(client, workspace, fake_http, settings):
    settings.SLACK_API_BASE_URL = fake_http.url
    fake_http.route("POST", "/chat.postMessage", json_response({"ok": True, "ts": "9.9"}))
    workspace.url = agent_route(fake_http)
    workspace.save()
    channel = slack_channel(workspace)
    bodies = [_slack_event("E1", "hello"), _slack_event("E2", "<@UBOT> reset"), _slack_event("E3", "again")]
    for body in bodies:
        client.post("/webhooks/slack", data=body, content_type="application/json", **slack_headers(body))
    for event_id in ("E1", "E2", "E3"):
        message = ChannelMessage.objects.get(channel=channel, platform_event_id=event_id)
        services.message_process_inbound(message_id=message.pk)
    first, second = agent_messages(fake_http)
    assert first["contextId"] != second["contextId"] and second["metadata"]["history"] == []
    form = b"command=%2Freset&text=&channel_id=C111&user_id=U1&trigger_id=T1"
    client.post(
        "/webhooks/slack", data=form, content_type="application/x-www-form-urlencoded", **slack_headers(form)
    )
    slash = ChannelMessage.objects.get(platform_event_id="T1")
    services.message_process_inbound(message_id=slash.pk)
    assert len(agent_messages(fake_http)) == 2
    assert ChannelMessage.objects.get(reply_to=slash).text.startswith("Started a new conversation")


def test_typing_is_sent_while_a_3s_agent_thinks_and_stops_after(client, workspace, fake_http, settings):
    settings.TELEGRAM_API_BASE_URL = fake_http.url
    fake_http.prefix_routes.append(("POST", "/bot", json_response({"ok": True, "result": {}})))
    workspace.url = agent_route(fake_http, delay=3.0)
    workspace.save()
    channel = telegram_channel(workspace)
    say(client, channel, 1, "think hard")
    with fake_http.lock:
        paths = [r.path.rsplit("/", 1)[-1] for r in fake_http.requests]
    actions = [r.json() for r in fake_http.requests if r.path.endswith("/sendChatAction")]
    assert actions and actions[0] == {"chat_id": "42", "action": "typing"}
    # Every chat action went before the reply, and none after it.
    assert "sendMessage" in paths and "sendChatAction" not in paths[paths.index("sendMessage") :]
    assert all(t.name != "telegram-typing" for t in threading.enumerate())  # stop() joined it


def test_conversation_list_endpoint(client, chat, as_agent, django_assert_num_queries):
    say(client, chat, 1, "first words")
    url = f"/workspaces/{chat.workspace_id}/channels/{chat.pk}/conversations"
    body = as_agent.get(url).json()
    conversation = Conversation.objects.get()
    assert body == [
        {
            "id": str(conversation.pk),
            "chat_id": "42",
            "thread_id": "",
            "context_id": conversation.context_id,
            "last_message": "ok",
            "last_message_at": body[0]["last_message_at"],
            "count": 2,
            "started_at": body[0]["started_at"],
            "created_at": body[0]["created_at"],
        }
    ]
    with django_assert_num_queries(4) as first:
        as_agent.get(url)
    queries = len(first.captured_queries)  # read now: the next requests reset the query log
    for chat_id in range(100, 106):
        say(client, chat, chat_id, "hello", chat_id=chat_id)
    with django_assert_num_queries(queries):
        assert len(as_agent.get(url).json()) == 7
    page = as_agent.get(url, {"limit": 2})
    assert len(page.json()) == 2 and 'rel="next"' in page["Link"]


def test_conversation_list_of_another_workspace_is_404(as_agent, other_workspace):
    theirs = slack_channel(other_workspace, channel_id="C777")
    response = as_agent.get(f"/workspaces/{other_workspace.pk}/channels/{theirs.pk}/conversations")
    assert response.status_code in (403, 404)


def test_console_shows_the_context_id_and_resets_it(client, chat, fake_http, django_user_model):
    say(client, chat, 1, "remember me")
    conversation = Conversation.objects.get()
    staff = django_user_model.objects.create_superuser("root", "root@example.test", "pw")
    console = type(client)()
    console.force_login(staff)
    page = console.get("/admin/channels_app/conversation/").content.decode()
    assert conversation.context_id in page
    response = console.post(
        "/admin/channels_app/conversation/",
        {"action": "reset_selected", "_selected_action": [str(conversation.pk)]},
    )
    assert response.status_code == 302
    conversation.refresh_from_db()
    old_context = agent_messages(fake_http)[0]["contextId"]
    assert conversation.context_id != old_context and conversation.message_count == 0
    say(client, chat, 2, "do you remember?")
    latest = agent_messages(fake_http)[-1]
    assert latest["contextId"] == conversation.context_id and latest["metadata"]["history"] == []


def test_an_agent_that_says_nothing_counts_one_message(client, workspace, fake_http, settings):
    settings.TELEGRAM_API_BASE_URL = fake_http.url
    fake_http.prefix_routes.append(("POST", "/bot", json_response({"ok": True, "result": {}})))
    workspace.url = agent_route(fake_http, reply="")
    workspace.save()
    channel = telegram_channel(workspace)
    say(client, channel, 1, "anyone there?")
    conversation = Conversation.objects.get(channel=channel)
    assert (conversation.message_count, conversation.last_message_text) == (1, "anyone there?")
