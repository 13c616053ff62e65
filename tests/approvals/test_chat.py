"""Approvals in chat: posted with buttons to the channels that ask for them, decided by a press
of an approver (exactly once), refused for anyone else, and the posted message edited to show
the outcome whoever decided it."""

from __future__ import annotations

import json
import re
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from urllib.parse import urlencode

import pytest
from celery import current_app
from django.db import connection
from django.test import Client
from django.utils import timezone

from access.principal import Principal
from approvals import chat, services
from approvals.models import APPROVAL_CHAT, Approval, ApprovalChatPost, ApprovalEvent
from channels_app.models import ChannelMessage
from channels_app.services import InvalidConfig, channel_create, message_send_attempt
from common.outbox import BROKER_ERRORS, pending_count, relay_kind, relay_pass
from tests.approvals.conftest import a2a_ok, make_approval
from tests.channels_app.helpers import (
    RFC8032_PUBLIC,
    SLACK_SIGNING_SECRET,
    SLACK_TOKEN,
    TELEGRAM_SECRET,
    TELEGRAM_TOKEN,
    BrokerQueue,
    discord_headers,
    post_telegram,
    rfc8032_key,
    slack_headers,
)
from tests.support.factories import make_workspace
from tests.support.fake_http import json_response
from tests.support.worker import CLOSED_BROKER_URL, CaptureTasks

APP_ID = "123456789012345678"
TOKEN_DATA = re.compile(r"^ap:[A-Za-z0-9_-]{24}:(a\d*|r)$")


@pytest.fixture
def platforms(fake_http, settings):
    settings.TELEGRAM_API_BASE_URL = fake_http.url
    settings.SLACK_API_BASE_URL = fake_http.url
    settings.DISCORD_WEBHOOK_BASE_URL = f"{fake_http.url}/api/webhooks/"
    ok = json_response({"ok": True, "result": {"message_id": 77}})
    fake_http.route("POST", f"/bot{TELEGRAM_TOKEN}/sendMessage", ok)
    fake_http.route("POST", f"/bot{TELEGRAM_TOKEN}/editMessageText", ok)
    fake_http.route(
        "POST", "/chat.postMessage", json_response({"ok": True, "channel": "C111", "ts": "111.222"})
    )
    fake_http.route("POST", "/chat.update", json_response({"ok": True}))
    fake_http.route("POST", "/chat.postEphemeral", json_response({"ok": True}))
    fake_http.route("POST", f"/api/webhooks/{APP_ID}/tok", json_response({"id": "9001"}))
    fake_http.route("PATCH", f"/api/webhooks/{APP_ID}/tok/messages/9001", json_response({"id": "9001"}))
    fake_http.route("POST", "/agent", a2a_ok)
    return fake_http


def requests_to(fake, suffix: str, method: str = "POST") -> list:
    with fake.lock:
        return [r for r in fake.requests if r.path.endswith(suffix) and r.method == method]


@pytest.fixture
def channels(workspace, platforms):
    workspace.url = f"{platforms.url}/agent"
    workspace.save()
    telegram = channel_create(
        workspace=workspace,
        platform="telegram",
        config={
            "bot_token": TELEGRAM_TOKEN,
            "webhook_secret": TELEGRAM_SECRET,
            "chat_ids": ["42"],
            "approvals": True,
            "approvers": ["7", 8],
        },
    )
    slack = channel_create(
        workspace=workspace,
        platform="slack",
        config={
            "bot_token": SLACK_TOKEN,
            "signing_secret": SLACK_SIGNING_SECRET,
            "channel_id": "C111",
            "approvals": True,
            "approvers": ["U1"],
        },
    )
    discord = channel_create(
        workspace=workspace,
        platform="discord",
        config={
            "webhook_url": f"{platforms.url}/api/webhooks/{APP_ID}/tok",
            "application_id": APP_ID,
            "public_key": RFC8032_PUBLIC,
            "approvals": True,
            "approvers": ["555"],
        },
    )
    quiet = channel_create(
        workspace=workspace,
        platform="slack",
        config={"bot_token": SLACK_TOKEN, "signing_secret": "another-signing-secret", "channel_id": "C999"},
    )
    return {"telegram": telegram, "slack": slack, "discord": discord, "quiet": quiet}


def sync_posts() -> int:
    """Run the due chat-post jobs (and only those) here, as the relay and a worker would; the
    number of attempts run."""
    eager = current_app.conf.task_always_eager
    current_app.conf.task_always_eager = True
    ran = 0
    try:
        while published := relay_kind(APPROVAL_CHAT):
            ran += published
    finally:
        current_app.conf.task_always_eager = eager
    return ran


def edits(fake) -> int:
    """Edit calls made, all platforms."""
    return sum(
        len(requests_to(fake, suffix, method))
        for suffix, method in (
            ("/editMessageText", "POST"),
            ("/chat.update", "POST"),
            ("/messages/9001", "PATCH"),
        )
    )


def posted(approval: Approval, fake) -> dict[str, str]:
    """Post the approval; the button data of each platform's first button, by platform."""
    assert sync_posts() == 3
    telegram = requests_to(fake, "/sendMessage")[-1].json()
    slack = requests_to(fake, "/chat.postMessage")[-1].json()
    discord = requests_to(fake, f"/api/webhooks/{APP_ID}/tok")[-1].json()
    return {
        "telegram": telegram["reply_markup"]["inline_keyboard"][0][0]["callback_data"],
        "telegram_reject": telegram["reply_markup"]["inline_keyboard"][-1][0]["callback_data"],
        "slack": slack["blocks"][1]["elements"][0]["value"],
        "discord": discord["components"][0]["components"][0]["custom_id"],
    }


def telegram_press(client, data: str, user_id: int = 7, update_id: int = 1000, secret: str = TELEGRAM_SECRET):
    update = {
        "update_id": update_id,
        "callback_query": {
            "id": f"cb{update_id}",
            "from": {"id": user_id, "is_bot": False, "first_name": "Ann"},
            "message": {"message_id": 77, "chat": {"id": 42, "type": "private"}},
            "data": data,
        },
    }
    return post_telegram(client, update, secret=secret)


def slack_press(client, value: str, user: str = "U1", secret: str = SLACK_SIGNING_SECRET):
    payload = {
        "type": "block_actions",
        "user": {"id": user, "username": "ann"},
        "channel": {"id": "C111"},
        "container": {"message_ts": "111.222"},
        "actions": [{"action_id": "approval_a0", "value": value, "action_ts": "1.2"}],
    }
    body = urlencode({"payload": json.dumps(payload)}).encode()
    return client.post(
        "/webhooks/slack",
        data=body,
        content_type="application/x-www-form-urlencoded",
        **slack_headers(body, secret=secret),
    )


def discord_press(client, custom_id: str, user: str = "555", key=None):
    body = json.dumps(
        {
            "type": 3,
            "id": "987654321",
            "application_id": APP_ID,
            "channel_id": "333333",
            "token": "interaction-token-123",
            "member": {"user": {"id": user}},
            "data": {"custom_id": custom_id, "component_type": 2},
        }
    ).encode()
    return client.post(
        "/webhooks/discord",
        data=body,
        content_type="application/json",
        **discord_headers(key or rfc8032_key(), body),
    )


@pytest.mark.django_db
def test_approval_is_posted_with_buttons_to_each_channel_that_asks(workspace, channels, platforms):
    approval = make_approval(workspace, options=["now", "tonight"], description="ship v2")
    data = posted(approval, platforms)
    telegram = requests_to(platforms, "/sendMessage")[-1].json()
    assert telegram["chat_id"] == "42"
    assert telegram["text"].startswith(
        "Approval requested: deploy to production\nship v2\nOptions: now, tonight"
    )
    assert "Expires: " in telegram["text"]
    labels = [row[0]["text"] for row in telegram["reply_markup"]["inline_keyboard"]]
    assert labels == ["Approve: now", "Approve: tonight", "Reject"]
    for value in (data["telegram"], data["slack"], data["discord"]):
        assert TOKEN_DATA.match(value) and str(approval.pk) not in value and len(value) <= 64
    # One token per post, stored only as a hash.
    assert (
        len({data["telegram"].split(":")[1], data["slack"].split(":")[1], data["discord"].split(":")[1]}) == 3
    )
    hashes = set(ApprovalChatPost.objects.values_list("token_hash", flat=True))
    assert data["telegram"].split(":")[1] not in hashes and len(hashes) == 3
    discord = requests_to(platforms, f"/api/webhooks/{APP_ID}/tok")[-1]
    assert discord.query == {"wait": ["true"]}
    # The channel without `approvals` got nothing; the jobs are done, and running a post's body
    # again (a stale or duplicate run) posts nothing new.
    assert all(r.json()["channel"] == "C111" for r in requests_to(platforms, "/chat.postMessage"))
    assert sync_posts() == 0
    for post in ApprovalChatPost.objects.all():
        chat.approval_chat_post_sync(post_id=post.pk)
    assert (
        len(requests_to(platforms, "/sendMessage")) == len(requests_to(platforms, "/chat.postMessage")) == 1
    )
    assert set(ApprovalChatPost.objects.values_list("token_hash", flat=True)) == hashes


@pytest.mark.django_db
def test_approval_settings_are_validated(workspace):
    with pytest.raises(InvalidConfig):  # approvals need a chat to post to
        channel_create(
            workspace=workspace,
            platform="telegram",
            config={"bot_token": TELEGRAM_TOKEN, "approvals": True},
        )
    with pytest.raises(InvalidConfig):
        channel_create(
            workspace=workspace,
            platform="telegram",
            config={"bot_token": TELEGRAM_TOKEN, "chat_ids": ["1"], "approvals": "yes"},
        )
    with pytest.raises(InvalidConfig):  # at most 100 approvers
        channel_create(
            workspace=workspace,
            platform="telegram",
            config={
                "bot_token": TELEGRAM_TOKEN,
                "chat_ids": ["1"],
                "approvers": [str(i) for i in range(101)],
            },
        )
    ok = channel_create(
        workspace=workspace,
        platform="telegram",
        config={"bot_token": TELEGRAM_TOKEN, "chat_ids": ["1"], "approvers": [str(i) for i in range(100)]},
    )
    assert len(ok.public_config["approvers"]) == 100
    with pytest.raises(InvalidConfig):  # Lark has no buttons
        channel_create(
            workspace=workspace,
            platform="lark",
            config={"verification_token": "t", "approvals": True},
        )


@pytest.mark.django_db
def test_telegram_press_by_an_approver_decides_and_edits(client, workspace, channels, platforms):
    approval = make_approval(workspace, options=["now", "tonight"])
    data = posted(approval, platforms)
    response = telegram_press(client, data["telegram"])
    assert response.status_code == 200
    assert response.json() == {
        "method": "answerCallbackQuery",
        "callback_query_id": "cb1000",
        "text": "Approved.",
        "show_alert": False,
    }
    approval.refresh_from_db()
    assert (approval.status, approval.decided_by, approval.decision_option) == (
        "approved",
        "telegram:7",
        "now",
    )
    assert sync_posts() == 3
    assert edits(platforms) == 3
    edit = requests_to(platforms, "/editMessageText")[-1].json()
    assert edit["message_id"] == 77 and edit["reply_markup"] == {"inline_keyboard": []}
    assert edit["text"].endswith("Approved by telegram:7 (option: now).")
    slack_edit = requests_to(platforms, "/chat.update")[-1].json()
    assert (slack_edit["channel"], slack_edit["ts"], len(slack_edit["blocks"])) == ("C111", "111.222", 1)
    discord_edit = requests_to(platforms, "/messages/9001", method="PATCH")[-1].json()
    assert discord_edit["components"] == [] and "Approved by telegram:7" in discord_edit["content"]
    assert sync_posts() == 0  # edited once
    for post in ApprovalChatPost.objects.all():
        chat.approval_chat_post_sync(post_id=post.pk)
    assert edits(platforms) == 3
    # A second press, even by another approver: already decided.
    again = telegram_press(client, data["telegram_reject"], user_id=8, update_id=1001)
    assert again.json()["text"] == "Already decided by telegram:7 (approved)." and again.json()["show_alert"]
    approval.refresh_from_db()
    assert approval.status == "approved"


@pytest.mark.django_db
def test_a_non_approver_is_refused_privately_and_nothing_changes(client, workspace, channels, platforms):
    approval = make_approval(workspace, options=["now"])
    data = posted(approval, platforms)
    response = telegram_press(client, data["telegram"], user_id=666)
    assert response.json()["show_alert"] is True
    assert response.json()["text"] == "You are not allowed to decide this approval."
    refused = discord_press(client, data["discord"], user="1234567")
    assert refused.json() == {
        "type": 4,
        "data": {"content": "You are not allowed to decide this approval.", "flags": 64},
    }
    assert slack_press(client, data["slack"], user="U666").status_code == 200
    ephemeral = ChannelMessage.objects.get(meta__ephemeral_user="U666")
    assert ephemeral.text == "You are not allowed to decide this approval."
    message_send_attempt(message_id=ephemeral.pk)
    sent = requests_to(platforms, "/chat.postEphemeral")[-1].json()
    assert sent == {"channel": "C111", "user": "U666", "text": "You are not allowed to decide this approval."}
    approval.refresh_from_db()
    assert approval.status == "pending" and not ApprovalEvent.objects.filter(kind="decided").exists()


@pytest.mark.django_db
def test_slack_and_discord_presses_decide(client, workspace, channels, platforms):
    first = make_approval(workspace)
    data = posted(first, platforms)
    assert slack_press(client, data["slack"]).status_code == 200
    first.refresh_from_db()
    assert (first.status, first.decided_by) == ("approved", "slack:U1")
    assert sync_posts() == 3  # the first approval's messages edited
    second = make_approval(workspace, action="rotate keys")
    data = posted(second, platforms)
    response = discord_press(client, data["discord"].replace(":a", ":r"))
    assert response.json() == {"type": 4, "data": {"content": "Rejected.", "flags": 64}}
    second.refresh_from_db()
    assert (second.status, second.decided_by) == ("rejected", "discord:555")


@pytest.mark.django_db
def test_forged_or_unsigned_presses_are_401(client, workspace, channels, platforms):
    approval = make_approval(workspace)
    data = posted(approval, platforms)
    assert telegram_press(client, data["telegram"], secret="wrong-secret").status_code == 401
    assert telegram_press(client, data["telegram"], secret=None).status_code == 401
    assert slack_press(client, data["slack"], secret="not-the-signing-secret").status_code == 401
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    assert discord_press(client, data["discord"], key=Ed25519PrivateKey.generate()).status_code == 401
    approval.refresh_from_db()
    assert approval.status == "pending"


@pytest.mark.django_db
def test_a_guessed_or_foreign_token_decides_nothing(client, workspace, channels, platforms):
    approval = make_approval(workspace)
    data = posted(approval, platforms)
    # A post of another workspace's channel (another bot) cannot be pressed through this bot.
    other = make_workspace("other-ws")
    other_approval = make_approval(other)
    ApprovalChatPost.objects.create(
        approval=other_approval, channel=channels["quiet"], token_hash=chat._hash("x" * 24)
    )
    for value in (f"ap:{'x' * 24}:a", f"ap:{approval.pk}:a", "ap::a", "garbage"):
        answer = telegram_press(client, value, update_id=2000 + len(value)).json()
        assert answer["text"] == "This approval is not known here."
    bad_code = data["telegram"].rsplit(":", 1)[0] + ":a9"
    assert telegram_press(client, bad_code, update_id=3000).json()["text"] == "This button is not valid."
    approval.refresh_from_db()
    other_approval.refresh_from_db()
    assert approval.status == other_approval.status == "pending"


@pytest.mark.django_db
def test_a_press_after_expiry_shows_expired(client, workspace, channels, platforms):
    approval = make_approval(workspace)
    data = posted(approval, platforms)
    Approval.objects.filter(pk=approval.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    answer = telegram_press(client, data["telegram"]).json()
    assert answer["text"] == "This approval expired."
    assert sync_posts() == 3 and edits(platforms) == 3
    assert (
        requests_to(platforms, "/editMessageText")[-1].json()["text"].endswith("Expired without a decision.")
    )
    approval.refresh_from_db()
    assert approval.decided_by is None


@pytest.mark.django_db
def test_a_decision_made_elsewhere_edits_the_chat_message(workspace, channels, platforms):
    approval = make_approval(workspace)
    posted(approval, platforms)
    services.approval_decide(
        approval=approval, decision="reject", actor=Principal(kind="admin_token", name="root")
    )
    assert sync_posts() == 3 and edits(platforms) == 3
    assert requests_to(platforms, "/editMessageText")[-1].json()["text"].endswith("Rejected by root.")


@pytest.mark.django_db
def test_approval_created_after_decision_is_posted_without_buttons(workspace, channels, platforms):
    approval = make_approval(workspace)
    services.approval_decide(
        approval=approval, decision="approve", actor=Principal(kind="admin_token", name="root")
    )
    assert sync_posts() == 3
    sent = requests_to(platforms, "/sendMessage")[-1].json()
    assert sent["reply_markup"] == {"inline_keyboard": []} and sent["text"].endswith("Approved by root.")
    assert edits(platforms) == 0  # posted showing the outcome: nothing to edit


@pytest.mark.django_db(transaction=True)
def test_fifty_concurrent_presses_make_one_decision_and_one_notification(
    workspace, channels, platforms, settings
):
    queue = BrokerQueue(settings.CELERY_BROKER_URL)
    queue.redis.delete(*[q.name for q in settings.CELERY_TASK_QUEUES])
    approval = make_approval(workspace)
    assert queue.messages() == []  # the create wrote rows and published nothing
    data = posted(approval, platforms)
    start = threading.Barrier(50)

    def press(n: int) -> dict:
        try:
            start.wait()
            return telegram_press(
                Client(), data["telegram"], user_id=7 if n % 2 else 8, update_id=5000 + n
            ).json()
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=50) as pool:
        answers = list(pool.map(press, range(50)))
    approval.refresh_from_db()
    texts = sorted(answer["text"] for answer in answers)
    assert texts.count("Approved.") == 1
    assert texts.count(f"Already decided by {approval.decided_by} (approved).") == 49
    assert ApprovalEvent.objects.filter(approval=approval, kind="decided").count() == 1
    assert relay_pass() == 4  # the agent's notice and the three posts, from the rows
    assert relay_pass() == 0  # published once per attempt
    messages = queue.messages()
    tasks = [message["headers"]["task"] for message in messages]
    assert sorted(tasks) == ["approvals.notify_agent", "outbox.run_rows"]
    (rows,) = [message["args"] for message in messages if message["headers"]["task"] == "outbox.run_rows"]
    assert rows[0] == "approvals.chat" and sorted(pk for pk, _ in rows[1]) == sorted(
        str(pk) for pk in ApprovalChatPost.objects.values_list("pk", flat=True)
    )
    for _ in range(3):  # however often the notification runs, the agent hears it once
        services.approval_notify(approval_id=approval.pk)
    assert len(requests_to(platforms, "/agent")) == 1
    for _ in range(3):  # however often the posts' message is delivered, each is edited once
        current_app.tasks["outbox.run_rows"].run(*rows)
    assert edits(platforms) == 3 and len(requests_to(platforms, "/editMessageText")) == 1
    assert ApprovalChatPost.objects.filter(relay_due_at__isnull=False).count() == 0
    queue.redis.delete(*[q.name for q in settings.CELERY_TASK_QUEUES])


def due_posts() -> set[tuple[str, str]]:
    """(approval id, platform) of every chat post due now."""
    rows = ApprovalChatPost.objects.filter(relay_due_at__lte=timezone.now())
    return {(str(a), p) for a, p in rows.values_list("approval_id", "channel__platform")}


@pytest.mark.django_db
def test_create_writes_the_posts_and_every_outcome_makes_them_due(workspace, channels, platforms):
    """Nothing is published by a request or a service: they write rows, the relay publishes."""
    approval = make_approval(workspace)
    ours = {(str(approval.pk), platform) for platform in ("telegram", "slack", "discord")}
    assert due_posts() == ours  # one per channel that takes approvals (not "quiet")
    assert pending_count()["approvals.chat"] == 3
    sync_posts()
    assert due_posts() == set()
    services.approval_decide(
        approval=approval, decision="approve", actor=Principal(kind="admin_token", name="root")
    )
    assert due_posts() == ours
    sync_posts()
    other = make_approval(workspace, expires_in_seconds=1)
    sync_posts()
    Approval.objects.filter(pk=other.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert services.approval_expire_due() == 1
    assert due_posts() == {(str(other.pk), platform) for platform in ("telegram", "slack", "discord")}
    assert sync_posts() == 3
    assert (
        requests_to(platforms, "/editMessageText")[-1].json()["text"].endswith("Expired without a decision.")
    )


@pytest.mark.django_db
def test_posts_wait_through_a_broker_outage(workspace, channels, platforms):
    """A broker down when the approval is created loses nothing: the rows stay due and are
    published, once per attempt, when it is back."""
    approval = make_approval(workspace)
    with current_app.connection_for_write(url=CLOSED_BROKER_URL) as dead, pytest.raises(BROKER_ERRORS):
        relay_kind(APPROVAL_CHAT, producer=current_app.amqp.Producer(dead))
    assert ApprovalChatPost.objects.filter(relay_due_at__isnull=False, publish_attempt=0).count() == 3
    with CaptureTasks() as sent:
        assert relay_kind(APPROVAL_CHAT) == 3
        assert relay_kind(APPROVAL_CHAT) == 0
    assert [(name, args[0]) for name, args in sent] == [("outbox.run_rows", "approvals.chat")]
    assert sorted(attempt for _, attempt in sent[0][1][1]) == [1, 1, 1]
    assert ApprovalChatPost.objects.filter(approval=approval, publish_attempt=1).count() == 3


@pytest.mark.django_db
def test_a_duplicate_message_posts_once(workspace, channels, platforms):
    from approvals import tasks

    make_approval(workspace)
    with CaptureTasks():
        relay_kind(APPROVAL_CHAT)
    for post in ApprovalChatPost.objects.all():
        tasks.sync_chat_post(str(post.pk), 1)
        tasks.sync_chat_post(str(post.pk), 1)  # delivered twice
        tasks.sync_chat_post(str(post.pk), 0)  # an older attempt
    assert len(requests_to(platforms, "/sendMessage")) == 1
    assert len(requests_to(platforms, "/chat.postMessage")) == 1
    assert len(requests_to(platforms, f"/api/webhooks/{APP_ID}/tok")) == 1


@pytest.mark.django_db
def test_a_transient_failure_is_retried_then_given_up(workspace, channels, platforms, settings):
    settings.APPROVAL_NOTIFY_RETRY_SECONDS = 0
    platforms.route("POST", f"/bot{TELEGRAM_TOKEN}/sendMessage", json_response({"ok": False}, status=502))
    make_approval(workspace)
    telegram = ApprovalChatPost.objects.get(channel=channels["telegram"])
    sync_posts()
    telegram.refresh_from_db()
    assert len(requests_to(platforms, "/sendMessage")) == 1 + chat.CHAT_POST_MAX_RETRIES
    assert telegram.failed_at is not None and telegram.relay_due_at is None
    assert "HTTP 502" in telegram.error and telegram.platform_message_id == ""
    # The others were posted; a decision edits those and leaves the given-up post alone.
    approval = telegram.approval
    services.approval_decide(
        approval=approval, decision="approve", actor=Principal(kind="admin_token", name="root")
    )
    assert sync_posts() == 2 and edits(platforms) == 2
    assert len(requests_to(platforms, "/sendMessage")) == 1 + chat.CHAT_POST_MAX_RETRIES


@pytest.mark.django_db
def test_a_failed_edit_is_retried_and_shown_once(workspace, channels, platforms, settings):
    settings.APPROVAL_NOTIFY_RETRY_SECONDS = 60
    approval = make_approval(workspace)
    posted(approval, platforms)
    platforms.route("POST", f"/bot{TELEGRAM_TOKEN}/editMessageText", json_response({"ok": False}, status=429))
    services.approval_decide(
        approval=approval, decision="reject", actor=Principal(kind="admin_token", name="root")
    )
    before = timezone.now()
    assert sync_posts() == 3
    telegram = ApprovalChatPost.objects.get(channel=channels["telegram"])
    assert telegram.shown_status == "pending" and telegram.tries == 1 and telegram.failed_at is None
    assert telegram.relay_due_at > before + timedelta(seconds=50)  # after the backoff
    ok = json_response({"ok": True, "result": {"message_id": 77}})
    platforms.route("POST", f"/bot{TELEGRAM_TOKEN}/editMessageText", ok)
    ApprovalChatPost.objects.filter(pk=telegram.pk).update(relay_due_at=timezone.now())
    assert sync_posts() == 1
    telegram.refresh_from_db()
    assert (telegram.shown_status, telegram.tries, telegram.error, telegram.relay_due_at) == (
        "rejected",
        0,
        "",
        None,
    )


@pytest.mark.django_db
def test_a_refused_post_is_given_up_at_once(workspace, channels, platforms):
    platforms.route("POST", "/chat.postMessage", json_response({"ok": False, "error": "channel_not_found"}))
    make_approval(workspace)
    sync_posts()
    slack = ApprovalChatPost.objects.get(channel=channels["slack"])
    assert slack.failed_at is not None and slack.tries == 1 and slack.error
    assert len(requests_to(platforms, "/chat.postMessage")) == 1


@pytest.mark.django_db
def test_the_former_tasks_make_the_posts_due(workspace, channels, platforms):
    """Messages queued before the upgrade still lead to the post and the edit."""
    from approvals import tasks

    approval = make_approval(workspace)
    ApprovalChatPost.objects.filter(approval=approval, channel=channels["slack"]).delete()
    ApprovalChatPost.objects.update(relay_due_at=None)
    assert tasks.post_to_chats(str(approval.pk)) == 1  # the missing post
    assert sync_posts() == 3
    Approval.objects.filter(pk=approval.pk).update(status="approved", decided_by="root")
    assert tasks.refresh_chats(str(approval.pk)) == 3
    assert sync_posts() == 3 and edits(platforms) == 3
