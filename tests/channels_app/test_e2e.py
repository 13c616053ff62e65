"""End to end: a live server, a real Celery worker, fake Telegram/Slack APIs and a real local
A2A agent on 127.0.0.1. One worker serves the whole module (it only needs the test database,
the test broker and the fake platform's URL)."""

from __future__ import annotations

import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from channels_app import ingest
from channels_app.models import ChannelMessage
from tests.channels_app.helpers import (
    SLACK_TOKEN,
    TELEGRAM_SECRET,
    TELEGRAM_TOKEN,
    slack_channel,
    slack_headers,
    slack_message_event,
    telegram_channel,
    telegram_update,
)
from tests.support.factories import bearer, make_workspace, make_workspace_token
from tests.support.fake_http import FakeHttpServer, FakeResponse, json_response
from tests.support.worker import run_worker, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

SEND_PATH = f"/bot{TELEGRAM_TOKEN}/sendMessage"


@pytest.fixture(scope="module")
def platform():
    with FakeHttpServer() as server:
        yield server


@pytest.fixture(scope="module")
def worker(django_db_setup, django_db_blocker, platform):
    env = {
        "TELEGRAM_API_BASE_URL": platform.url,
        "SLACK_API_BASE_URL": platform.url,
        "CHANNEL_SEND_BACKOFF_SECONDS": "0.2",
        "CHANNEL_SEND_BACKOFF_MAX_SECONDS": "0.5",
    }
    with django_db_blocker.unblock(), run_worker(env=env, concurrency=4) as process:
        yield process


@pytest.fixture
def fake(platform, worker, settings):
    """The module's fake platform, emptied for this test; settings point the web side at it too."""
    platform.routes.clear()
    platform.prefix_routes.clear()
    with platform.lock:
        platform.requests.clear()
    settings.TELEGRAM_API_BASE_URL = platform.url
    settings.SLACK_API_BASE_URL = platform.url
    return platform


@pytest.fixture
def agent_workspace(db, echo_agent):
    return make_workspace("agent-ws", url=echo_agent.url)


def _sent(fake: FakeHttpServer, path: str) -> list:
    with fake.lock:
        return [r for r in fake.requests if r.path == path]


def _post_update(live_server, update: dict, secret: str = TELEGRAM_SECRET) -> requests.Response:
    return requests.post(
        f"{live_server.url}/webhooks/telegram",
        data=json.dumps(update),
        headers={"Content-Type": "application/json", "X-Telegram-Bot-Api-Secret-Token": secret},
        timeout=10,
    )


def test_telegram_round_trip(live_server, fake, agent_workspace, echo_agent):
    fake.route("POST", SEND_PATH, json_response({"ok": True, "result": {"message_id": 9}}))
    channel = telegram_channel(agent_workspace)
    response = _post_update(live_server, telegram_update(1, text="hello agent", chat_id=4242))
    assert response.status_code == 200
    sent = wait_for(lambda: _sent(fake, SEND_PATH), message="sendMessage")
    assert sent[0].json() == {"chat_id": "4242", "text": "hello agent"}
    assert [m["parts"][0]["text"] for m in echo_agent.received] == ["hello agent"]
    inbound = wait_for(
        lambda: ChannelMessage.objects.filter(direction="inbound", status="delivered").first(),
        message="delivered",
    )
    assert inbound.channel_id == channel.pk
    reply = ChannelMessage.objects.get(direction="outbound")
    assert (reply.status, reply.chat_id, reply.attempts) == ("sent", "4242", 1)


def test_three_updates_in_a_row_are_all_answered(live_server, fake, agent_workspace, echo_agent, monkeypatch):
    """The first update takes the full path and the web process remembers the route; the next two
    are stored by the remembered route's one statement. Their tasks leave through the inbound
    batcher and the Redis frames; the real worker answers all three."""
    remembered_stores = []
    original = ingest.store_verified_update

    def spy(**kwargs):
        stored = original(**kwargs)
        remembered_stores.append(stored is not None)
        return stored

    monkeypatch.setattr(ingest, "store_verified_update", spy)
    fake.route("POST", SEND_PATH, json_response({"ok": True, "result": {}}))
    channel = telegram_channel(agent_workspace)
    texts = ["first of three", "second of three", "third of three"]
    for update_id, text in enumerate(texts, start=40):
        response = _post_update(live_server, telegram_update(update_id, text=text, chat_id=4343))
        assert response.status_code == 200 and response.json() == {"ok": True}
    assert remembered_stores == [False, True, True]
    assert ingest.verified_routes.get(ingest.VerifiedRoutes.key(TELEGRAM_SECRET, None)) == channel.pk
    wait_for(lambda: len(_sent(fake, SEND_PATH)) >= 3, message="three replies")
    wait_for(
        lambda: ChannelMessage.objects.filter(direction="inbound", status="delivered").count() == 3,
        message="three delivered",
    )
    time.sleep(0.5)  # give a duplicate reply, if any, the chance to show up
    sent = _sent(fake, SEND_PATH)
    assert sorted(r.json()["text"] for r in sent) == sorted(texts)
    assert {r.json()["chat_id"] for r in sent} == {"4343"}
    assert sorted(m["parts"][0]["text"] for m in echo_agent.received) == sorted(texts)
    assert ChannelMessage.objects.filter(direction="inbound").count() == 3


def test_slack_round_trip(live_server, fake, agent_workspace, echo_agent):
    fake.route("POST", "/chat.postMessage", json_response({"ok": True, "ts": "2.2"}))
    slack_channel(agent_workspace, channel_id="C0ROUND")
    body = slack_message_event("EvRound", text="hi from slack", channel="C0ROUND", user="U9")
    response = requests.post(
        f"{live_server.url}/webhooks/slack",
        data=body,
        headers={
            "Content-Type": "application/json",
            **{k[5:].replace("_", "-"): v for k, v in slack_headers(body).items()},
        },
        timeout=10,
    )
    assert response.status_code == 200, response.text
    sent = wait_for(lambda: _sent(fake, "/chat.postMessage"), message="chat.postMessage")
    payload = sent[0].json()
    assert payload["channel"] == "C0ROUND" and payload["text"] == "hi from slack"
    assert sent[0].headers["Authorization"] == f"Bearer {SLACK_TOKEN}"
    assert echo_agent.received[0]["parts"][0]["text"] == "hi from slack"


def test_webhook_answers_before_the_agent_does(live_server, fake):
    release = threading.Event()
    reached = threading.Event()

    def blocked_agent(request):
        reached.set()
        release.wait(30)
        message_id = request.json()["params"]["message"]["messageId"]
        reply = {
            "jsonrpc": "2.0",
            "id": request.json()["id"],
            "result": {
                "kind": "message",
                "role": "agent",
                "messageId": message_id,
                "parts": [{"kind": "text", "text": "late"}],
            },
        }
        return FakeResponse(200, json.dumps(reply).encode(), {"Content-Type": "application/json"})

    fake.route("POST", "/agent", blocked_agent)
    fake.route("POST", SEND_PATH, json_response({"ok": True, "result": {}}))
    workspace = make_workspace("slow", url=f"{fake.url}/agent")
    telegram_channel(workspace)
    try:
        response = _post_update(live_server, telegram_update(3, text="are you there"))
        assert response.status_code == 200
        # The HTTP answer is already here; the agent has not answered (it cannot: it is blocked).
        assert not release.is_set()
        assert reached.wait(20), "the worker never called the agent"
        assert ChannelMessage.objects.get().status == "received"
    finally:
        release.set()
    sent = wait_for(lambda: _sent(fake, SEND_PATH), message="reply after release")
    assert sent[0].json()["text"] == "late"


def test_duplicates_sequential_and_concurrent_give_one_agent_request(
    live_server, fake, agent_workspace, echo_agent
):
    fake.route("POST", SEND_PATH, json_response({"ok": True, "result": {}}))
    telegram_channel(agent_workspace)
    first = telegram_update(10, text="first")
    for _ in range(3):
        assert _post_update(live_server, first).status_code == 200
    second = telegram_update(11, text="second")
    with ThreadPoolExecutor(max_workers=2) as pool:
        statuses = [r.status_code for r in pool.map(lambda _: _post_update(live_server, second), range(2))]
    assert statuses == [200, 200]
    wait_for(lambda: len(_sent(fake, SEND_PATH)) >= 2, message="two replies")
    time.sleep(0.5)  # give a duplicate, if any, the chance to show up
    assert sorted(m["parts"][0]["text"] for m in echo_agent.received) == ["first", "second"]
    assert ChannelMessage.objects.filter(direction="inbound").count() == 2
    assert len(_sent(fake, SEND_PATH)) == 2


def test_fan_out_reaches_two_workspaces(live_server, fake, echo_agent):
    fake.route("POST", SEND_PATH, json_response({"ok": True, "result": {}}))
    first = make_workspace("one", url=echo_agent.url)
    second = make_workspace("two", url=echo_agent.url)
    telegram_channel(first, chat_ids=["42"])
    telegram_channel(second, chat_ids=["42"], webhook_secret="second-workspace-secret")
    assert _post_update(live_server, telegram_update(20, text="to both", chat_id=42)).status_code == 200
    wait_for(lambda: len(_sent(fake, SEND_PATH)) == 2, message="a reply from each workspace")
    assert len(echo_agent.received) == 2
    channels = {m["metadata"]["channel_id"] for m in echo_agent.received}
    assert len(channels) == 2


def test_allowlist_stranger_is_ignored_without_agent_request(live_server, fake, agent_workspace, echo_agent):
    telegram_channel(agent_workspace, allowlist=["7"])
    assert _post_update(live_server, telegram_update(30, user_id=999, chat_id=999)).status_code == 200
    message = wait_for(
        lambda: ChannelMessage.objects.filter(status="ignored").first(), message="ignored message"
    )
    assert message.error == "sender not in allowlist"
    assert echo_agent.received == [] and _sent(fake, SEND_PATH) == []


def test_rate_limited_send_waits_retry_after(live_server, fake, agent_workspace):
    times: list[float] = []
    answers = iter(
        [
            json_response({"ok": False, "error_code": 429, "parameters": {"retry_after": 2}}, status=429),
            json_response({"ok": True, "result": {}}),
        ]
    )

    def handler(request):
        times.append(time.monotonic())
        return next(answers)(request)

    fake.route("POST", SEND_PATH, handler)
    channel = telegram_channel(agent_workspace, chat_ids=["42"])
    token = make_workspace_token(agent_workspace)
    response = requests.post(
        f"{live_server.url}/workspaces/{agent_workspace.id}/channels/{channel.id}/send",
        json={"text": "rate me"},
        headers={"Authorization": bearer(token)["HTTP_AUTHORIZATION"]},
        timeout=10,
    )
    assert response.status_code == 202 and response.json()["status"] == "queued"
    message = wait_for(
        lambda: ChannelMessage.objects.filter(pk=response.json()["id"], status="sent").first(),
        timeout=20,
        message="sent after the wait",
    )
    assert message.attempts == 2 and len(times) == 2
    assert times[1] - times[0] >= 2.0


def test_5xx_storm_fails_after_five_attempts(live_server, fake, agent_workspace):
    fake.route("POST", SEND_PATH, lambda request: FakeResponse(500, b"oops"))
    channel = telegram_channel(agent_workspace, chat_ids=["42"])
    from django.db import transaction

    from channels_app.services import channel_send

    with transaction.atomic():
        message = channel_send(channel=channel, text="storm")
    failed = wait_for(
        lambda: ChannelMessage.objects.filter(pk=message.pk, status="failed").first(),
        timeout=20,
        message="failed",
    )
    assert failed.attempts == 5 and len(_sent(fake, SEND_PATH)) == 5
    channel.refresh_from_db()
    assert channel.last_error == "telegram: server error (HTTP 500)"
