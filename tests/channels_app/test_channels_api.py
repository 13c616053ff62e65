"""Channel CRUD, config validation, secret masking, webhook registration, discovery (SPEC §5)."""

from __future__ import annotations

import json
import logging

import pytest
from django.contrib.auth.models import User
from django.db import connection

from channels_app import selectors, services
from channels_app.models import Channel, ChannelCleanup
from channels_app.services import lifecycle
from common.errors import ApplicationError
from common.outbox import BROKER_ERRORS, relay_pass
from tests.channels_app.helpers import SLACK_TOKEN, TELEGRAM_SECRET, TELEGRAM_TOKEN, telegram_channel
from tests.support.factories import bearer, make_workspace, make_workspace_token
from tests.support.fake_http import json_response
from tests.support.worker import CLOSED_BROKER_URL, CaptureTasks, run_due_jobs

pytestmark = pytest.mark.django_db

TG_CONFIG = {"bot_token": TELEGRAM_TOKEN, "chat_ids": ["42", -100123], "webhook_secret": TELEGRAM_SECRET}
CHANNEL_FIELDS = {
    "id",
    "workspace_id",
    "platform",
    "name",
    "config",
    "allowlist",
    "enabled",
    "last_message_at",
    "message_count",
    "last_error",
    "created_at",
    "updated_at",
    "inbound_url",
}


def _url(workspace, suffix: str = "") -> str:
    return f"/workspaces/{workspace.id}/channels{suffix}"


def test_create_telegram_channel_masks_secrets(as_agent, workspace, settings):
    settings.PUBLIC_BASE_URL = ""
    response = as_agent.post(_url(workspace), {"platform": "telegram", "config": TG_CONFIG, "name": "bot"})
    assert response.status_code == 201, response.json()
    body = response.json()
    assert set(body) == CHANNEL_FIELDS
    assert body["config"] == {
        "bot_token": "1234…Yw1E",
        "chat_ids": ["42", "-100123"],
        "webhook_secret": "s3cr…6789",
    }
    assert body["inbound_url"] == f"http://testserver/webhooks/telegram?channel={body['id']}"
    assert body["allowlist"] == [] and body["enabled"] is True and body["message_count"] == 0
    raw = json.dumps(body)
    assert TELEGRAM_TOKEN not in raw and TELEGRAM_SECRET not in raw
    # Encrypted at rest: the stored column holds neither secret.
    with connection.cursor() as cursor:
        cursor.execute("SELECT secret_config, public_config::text FROM channels_app_channel")
        stored_secret, stored_public = cursor.fetchone()
    assert TELEGRAM_TOKEN not in stored_secret and TELEGRAM_SECRET not in stored_secret
    assert TELEGRAM_TOKEN not in stored_public
    channel = Channel.objects.get()
    assert channel.config["bot_token"] == TELEGRAM_TOKEN


def test_webhook_secret_is_generated_and_short_secrets_fully_masked(as_agent, workspace):
    config = {"bot_token": TELEGRAM_TOKEN}
    body = as_agent.post(_url(workspace), {"platform": "telegram", "config": config}).json()
    channel = Channel.objects.get(pk=body["id"])
    assert len(channel.config["webhook_secret"]) >= 32
    assert body["config"]["webhook_secret"] == services.mask_secret(channel.config["webhook_secret"])
    assert services.mask_secret("short-1234") == "********"
    assert services.mask_secret("exactly12chr") == "exac…2chr"
    assert services.mask_secret("") == ""


def test_inbound_url_uses_public_base_url(as_agent, workspace, settings, fake_http):
    settings.PUBLIC_BASE_URL = "https://integrations.example.test"
    settings.TELEGRAM_API_BASE_URL = fake_http.url
    fake_http.route("POST", f"/bot{TELEGRAM_TOKEN}/setWebhook", json_response({"ok": True, "result": True}))
    body = as_agent.post(
        _url(workspace),
        {"platform": "slack", "config": {"bot_token": SLACK_TOKEN, "signing_secret": "x" * 32}},
    ).json()
    assert body["inbound_url"] == f"https://integrations.example.test/webhooks/slack?channel={body['id']}"


@pytest.mark.parametrize(
    ("platform", "config", "field"),
    [
        ("telegram", {}, "bot_token"),
        ("telegram", {"bot_token": "not-a-token"}, "bot_token"),
        ("telegram", {"bot_token": TELEGRAM_TOKEN, "chat_ids": "42"}, "chat_ids"),
        ("telegram", {"bot_token": TELEGRAM_TOKEN, "chat_ids": [{"id": 1}]}, "chat_ids"),
        ("telegram", {"bot_token": TELEGRAM_TOKEN, "webhook_secret": "has spaces"}, "webhook_secret"),
        ("telegram", {"bot_token": TELEGRAM_TOKEN, "surprise": 1}, "surprise"),
        ("slack", {"bot_token": "xoxp-user-token", "signing_secret": "abc"}, "bot_token"),
        ("slack", {"bot_token": SLACK_TOKEN}, "signing_secret"),
        ("slack", {"bot_token": SLACK_TOKEN, "signing_secret": "s", "channel_id": "#general"}, "channel_id"),
        ("discord", {}, "webhook_url"),
        ("discord", {"webhook_url": "https://evil.example/api/webhooks/1/a"}, "webhook_url"),
        ("discord", {"application_id": "123456789"}, "public_key"),
        ("discord", {"application_id": "123456789", "public_key": "xyz"}, "public_key"),
        ("lark", {}, "webhook_url"),
        ("lark", {"webhook_url": "https://open.feishu.cn/other/path"}, "webhook_url"),
        ("lark", {"encrypt_key": "k"}, "verification_token"),
    ],
)
def test_invalid_config_is_400(as_agent, workspace, platform, config, field):
    response = as_agent.post(_url(workspace), {"platform": platform, "config": config})
    assert response.status_code == 400, response.json()
    body = response.json()
    assert body["code"] == "invalid_config"
    assert field in body["details"]["config"]


def test_valid_configs_of_every_platform(as_agent, workspace):
    configs = {
        "discord": {"webhook_url": "https://discord.com/api/webhooks/123/abcdef"},
        "lark": {"webhook_url": "https://open.larksuite.com/open-apis/bot/v2/hook/abc", "sign_secret": "sss"},
        "slack": {"bot_token": SLACK_TOKEN, "signing_secret": "sig", "channel_id": "C0123456789"},
    }
    for platform, config in configs.items():
        response = as_agent.post(_url(workspace), {"platform": platform, "config": config})
        assert response.status_code == 201, (platform, response.json())


def test_request_shape_errors(as_agent, workspace):
    response = as_agent.post(_url(workspace), {"platform": "irc", "config": {}})
    assert response.status_code == 400 and response.json()["code"] == "invalid_request"
    response = as_agent.post(_url(workspace), {"platform": "telegram", "config": [], "id": "x"})
    assert response.status_code == 400 and response.json()["code"] == "unknown_field"
    response = as_agent.post(_url(workspace), {"platform": "telegram", "config": "x"})
    assert response.status_code == 400 and response.json()["code"] == "invalid_request"
    response = as_agent.post(
        _url(workspace),
        {"platform": "telegram", "config": {"bot_token": TELEGRAM_TOKEN}, "allowlist": [{"a": 1}]},
    )
    assert response.status_code == 400 and response.json()["code"] == "invalid_request"


def test_disabled_channel_may_have_empty_secrets_but_enabling_needs_them(as_agent, workspace):
    response = as_agent.post(
        _url(workspace), {"platform": "slack", "config": {"channel_id": "C1"}, "enabled": False}
    )
    assert response.status_code == 201, response.json()
    channel_id = response.json()["id"]
    response = as_agent.patch(_url(workspace, f"/{channel_id}"), {"enabled": True})
    assert response.status_code == 400 and response.json()["code"] == "invalid_config"
    response = as_agent.patch(
        _url(workspace, f"/{channel_id}"),
        {"enabled": True, "config": {"bot_token": SLACK_TOKEN, "signing_secret": "sig-secret-value"}},
    )
    assert response.status_code == 200, response.json()
    assert response.json()["config"] == {
        "channel_id": "C1",
        "bot_token": "xoxb…mnop",
        "signing_secret": "sig-…alue",
    }


def test_patch_merges_config_and_keeps_masked_secrets(as_agent, workspace):
    created = as_agent.post(_url(workspace), {"platform": "telegram", "config": TG_CONFIG}).json()
    url = _url(workspace, f"/{created['id']}")
    # Send the masked values back with a change elsewhere: secrets are kept.
    response = as_agent.patch(url, {"config": {**created["config"], "chat_ids": ["7"]}, "name": "renamed"})
    assert response.status_code == 200, response.json()
    channel = Channel.objects.get(pk=created["id"])
    assert channel.config == {
        "bot_token": TELEGRAM_TOKEN,
        "chat_ids": ["7"],
        "webhook_secret": TELEGRAM_SECRET,
    }
    assert channel.name == "renamed"
    # One key only: the others stay.
    new_token = "999999:ZZEhBP0av28P2aqsU4L5Zq9ZsS6IcX1Yw9Q"
    response = as_agent.patch(url, {"config": {"bot_token": new_token}})
    assert response.json()["config"]["bot_token"] == "9999…Yw9Q"
    channel.refresh_from_db()
    assert channel.config["webhook_secret"] == TELEGRAM_SECRET and channel.config["chat_ids"] == ["7"]
    # null removes a key; allowlist and enabled are replaced.
    response = as_agent.patch(url, {"config": {"chat_ids": None}, "allowlist": ["7", 8], "enabled": False})
    assert response.json()["config"] == {"bot_token": "9999…Yw9Q", "webhook_secret": "s3cr…6789"}
    assert response.json()["allowlist"] == ["7", "8"] and response.json()["enabled"] is False
    # Re-validated after merging.
    response = as_agent.patch(url, {"config": {"bot_token": "broken"}})
    assert response.status_code == 400 and response.json()["code"] == "invalid_config"
    response = as_agent.patch(url, {"workspace_id": str(workspace.id)})
    assert response.status_code == 400 and response.json()["code"] == "unknown_field"


def test_get_list_delete(as_agent, workspace):
    first = telegram_channel(workspace)
    second = telegram_channel(workspace, chat_ids=["1"])
    response = as_agent.get(_url(workspace))
    assert response.status_code == 200
    assert [c["id"] for c in response.json()] == [str(second.id), str(first.id)]
    assert as_agent.get(_url(workspace, f"/{first.id}")).json()["id"] == str(first.id)
    assert as_agent.delete(_url(workspace, f"/{first.id}/")).status_code == 204
    assert as_agent.get(_url(workspace, f"/{first.id}")).status_code == 404
    assert as_agent.get(_url(workspace, "/not-a-uuid")).status_code == 404


def test_list_query_count_is_constant(api, workspace, django_assert_num_queries):
    token = make_workspace_token(workspace)
    api.credentials(**bearer(token))
    telegram_channel(workspace)
    api.get(_url(workspace))  # warm up
    with django_assert_num_queries(3) as one:
        assert len(api.get(_url(workspace)).json()) == 1
    for _ in range(5):
        telegram_channel(workspace)
    with django_assert_num_queries(len(one.captured_queries)):
        assert len(api.get(_url(workspace)).json()) == 6


def test_cross_workspace_access_is_404(api, workspace, other_workspace):
    channel = telegram_channel(other_workspace)
    admin_like = make_workspace_token(workspace)
    api.credentials(**bearer(admin_like))
    base = f"/workspaces/{workspace.id}/channels/{channel.id}"
    assert api.get(base).status_code == 404
    assert api.patch(base, {"name": "x"}, format="json").status_code == 404
    assert api.post(f"{base}/send", {"text": "hi"}, format="json").status_code == 404
    assert api.post(f"{base}/test", {}, format="json").status_code == 404
    assert api.get(f"{base}/messages").status_code == 404
    assert api.delete(base).status_code == 404
    for response in (api.get(base), api.get(f"{base}/messages")):
        assert response.json()["code"] == "not_found"
    assert Channel.objects.filter(pk=channel.pk).exists()
    # The other workspace's own path with this token is a 403.
    assert api.get(f"/workspaces/{other_workspace.id}/channels/{channel.id}").status_code == 403


def test_channel_routes_need_auth(api, workspace):
    assert api.get(_url(workspace)).status_code == 401


def test_adapters_are_public_and_come_from_the_classes(api):
    response = api.get("/channels/adapters")
    assert response.status_code == 200
    body = {item["platform"]: item for item in response.json()}
    assert list(body) == ["telegram", "slack", "discord", "lark"]
    telegram = {f["key"]: f for f in body["telegram"]["config_schema"]}
    assert telegram["bot_token"] == {
        "key": "bot_token",
        "label": "Bot token",
        "type": "string",
        "required": True,
        "secret": True,
        "help": telegram["bot_token"]["help"],
    }
    assert telegram["chat_ids"]["type"] == "list" and not telegram["chat_ids"]["secret"]
    assert telegram["webhook_secret"]["secret"] is True
    assert {f["key"] for f in body["slack"]["config_schema"]} == {
        "bot_token",
        "signing_secret",
        "app_id",
        "channel_id",
        "approvals",
        "approvers",
    }
    assert telegram["approvals"]["type"] == "bool" and telegram["approvers"]["type"] == "list"
    assert {f["key"] for f in body["discord"]["config_schema"]} == {
        "webhook_url",
        "application_id",
        "public_key",
        "approvals",
        "approvers",
    }
    assert {f["key"] for f in body["lark"]["config_schema"]} == {
        "webhook_url",
        "sign_secret",
        "verification_token",
        "encrypt_key",
    }
    assert body["telegram"]["supports"] == {"inbound": True, "outbound": True, "discover": True}
    assert body["discord"]["supports"]["discover"] is False


# --- Telegram webhook registration ----------------------------------------------------------------


@pytest.fixture
def eager_tasks(monkeypatch):
    """Tasks run in the publishing process (Celery's eager mode), so a test sees their effect."""
    from integrations_project.celery import app

    monkeypatch.setattr(app.conf, "task_always_eager", True)


def test_telegram_webhook_registered_on_create_and_removed_on_disable_and_delete(
    as_agent, workspace, settings, fake_http, django_capture_on_commit_callbacks, eager_tasks
):
    settings.PUBLIC_BASE_URL = "https://hooks.example.test"
    settings.TELEGRAM_API_BASE_URL = fake_http.url
    fake_http.route("POST", f"/bot{TELEGRAM_TOKEN}/setWebhook", json_response({"ok": True, "result": True}))
    fake_http.route(
        "POST", f"/bot{TELEGRAM_TOKEN}/deleteWebhook", json_response({"ok": True, "result": True})
    )
    with django_capture_on_commit_callbacks(execute=True):
        created = as_agent.post(_url(workspace), {"platform": "telegram", "config": TG_CONFIG}).json()
    assert [r.path.rsplit("/", 1)[1] for r in fake_http.requests] == ["setWebhook"]
    assert fake_http.requests[0].json() == {
        "url": f"https://hooks.example.test/webhooks/telegram?channel={created['id']}",
        "secret_token": TELEGRAM_SECRET,
    }
    url = _url(workspace, f"/{created['id']}")
    with django_capture_on_commit_callbacks(execute=True):
        as_agent.patch(url, {"enabled": False})
    with django_capture_on_commit_callbacks(execute=True):
        as_agent.patch(url, {"enabled": True})
    with django_capture_on_commit_callbacks(execute=True):
        as_agent.delete(url)
    run_due_jobs()  # the deletion's clean-up job
    assert [r.path.rsplit("/", 1)[1] for r in fake_http.requests] == [
        "setWebhook",
        "deleteWebhook",
        "setWebhook",
        "deleteWebhook",
    ]
    assert not ChannelCleanup.objects.exists()


def test_deletes_store_a_cleanup_job_with_the_bot_token_encrypted(
    as_agent, workspace, settings, fake_http, django_capture_on_commit_callbacks, broker
):
    """The DELETE does not wait for Telegram: it writes a clean-up row holding the config only
    encrypted; the relay publishes its task (the message holds the row id only), which calls
    deleteWebhook once however often the message is delivered, and deletes the row."""
    from channels_app import tasks

    settings.PUBLIC_BASE_URL = "https://hooks.example.test"
    settings.TELEGRAM_API_BASE_URL = fake_http.url
    fake_http.route("POST", f"/bot{TELEGRAM_TOKEN}/setWebhook", json_response({"ok": True, "result": True}))
    fake_http.route(
        "POST", f"/bot{TELEGRAM_TOKEN}/deleteWebhook", json_response({"ok": True, "result": True})
    )
    with django_capture_on_commit_callbacks(execute=True):
        created = as_agent.post(_url(workspace), {"platform": "telegram", "config": TG_CONFIG}).json()
    with django_capture_on_commit_callbacks(execute=True):
        assert as_agent.delete(_url(workspace, f"/{created['id']}")).status_code == 204
    assert [r.path.rsplit("/", 1)[1] for r in fake_http.requests] == ["setWebhook"]  # not yet
    assert broker.messages() == []  # the request published nothing
    cleanup = ChannelCleanup.objects.get()
    assert (str(cleanup.channel_id), cleanup.platform, cleanup.relay_due_at is not None) == (
        created["id"],
        "telegram",
        True,
    )
    assert TELEGRAM_TOKEN not in cleanup.sealed_config and TELEGRAM_SECRET not in cleanup.sealed_config
    assert relay_pass() == 1
    assert relay_pass() == 0  # published once for its attempt
    raw = b"".join(broker.redis.lrange("agents", 0, -1))
    assert TELEGRAM_TOKEN.encode() not in raw and TELEGRAM_SECRET.encode() not in raw
    (message,) = broker.messages()
    assert (message["headers"]["task"], message["args"]) == ("channels.run_cleanup", [str(cleanup.pk), 1])
    tasks.run_cleanup(*message["args"])
    tasks.run_cleanup(*message["args"])  # a duplicate delivery
    assert [r.path.rsplit("/", 1)[1] for r in fake_http.requests] == ["setWebhook", "deleteWebhook"]
    assert not ChannelCleanup.objects.exists()


def test_a_cleanup_written_while_the_broker_is_down_waits_for_it(settings, fake_http, workspace):
    """Nothing publishes on the request path: the row waits through a broker outage and its task
    is published when the broker is back."""
    from celery import current_app

    settings.PUBLIC_BASE_URL = "https://hooks.example.test"
    channel = telegram_channel(workspace, chat_ids=["42"])
    services.channel_delete(channel=channel)
    with current_app.connection_for_write(url=CLOSED_BROKER_URL) as dead, pytest.raises(BROKER_ERRORS):
        relay_pass(producer=current_app.amqp.Producer(dead))
    cleanup = ChannelCleanup.objects.get()
    assert cleanup.publish_attempt == 0 and cleanup.relay_due_at is not None
    with CaptureTasks() as sent:
        assert relay_pass() == 1
    assert sent == [("channels.run_cleanup", [str(cleanup.pk), 1])]


@pytest.fixture
def service_log(caplog):
    """The channel services' log lines, also when a task run in eager mode (Celery's logging set
    up on its first task) has taken caplog's handler off the root logger."""
    logger = logging.getLogger("channels_app.services")
    logger.addHandler(caplog.handler)
    yield caplog
    logger.removeHandler(caplog.handler)


def test_a_cleanup_is_retried_after_transient_failures_then_given_up(
    settings, fake_http, workspace, service_log
):
    settings.PUBLIC_BASE_URL = "https://hooks.example.test"
    settings.TELEGRAM_API_BASE_URL = fake_http.url
    settings.CHANNEL_SEND_BACKOFF_SECONDS = 0.0
    fake_http.route("POST", f"/bot{TELEGRAM_TOKEN}/deleteWebhook", json_response({"ok": False}, status=502))
    services.channel_delete(channel=telegram_channel(workspace, chat_ids=["42"]))
    assert run_due_jobs(passes=1) == 1
    cleanup = ChannelCleanup.objects.get()
    assert (cleanup.tries, cleanup.failed_at, cleanup.relay_due_at is not None) == (1, None, True)
    assert "HTTP 502" in cleanup.error
    run_due_jobs()
    cleanup.refresh_from_db()
    assert len(fake_http.requests) == 1 + lifecycle.CLEANUP_MAX_RETRIES
    assert cleanup.failed_at is not None and cleanup.relay_due_at is None
    assert cleanup.sealed_config == "" and "given up" in service_log.text
    assert run_due_jobs() == 0


def test_a_refused_cleanup_is_given_up_at_once(settings, fake_http, workspace):
    settings.PUBLIC_BASE_URL = "https://hooks.example.test"
    settings.TELEGRAM_API_BASE_URL = fake_http.url
    fake_http.route("POST", f"/bot{TELEGRAM_TOKEN}/deleteWebhook", json_response({"ok": False}, status=401))
    services.channel_delete(channel=telegram_channel(workspace, chat_ids=["42"]))
    assert run_due_jobs() == 1
    cleanup = ChannelCleanup.objects.get()
    assert (cleanup.tries, cleanup.failed_at is not None, cleanup.sealed_config) == (1, True, "")


def test_the_former_deletewebhook_task_writes_a_cleanup_row(fake_http, settings, service_log):
    """A message queued before the upgrade still leads to the clean-up (here: a config that
    cannot be read, skipped with a log line)."""
    from channels_app import tasks

    settings.TELEGRAM_API_BASE_URL = fake_http.url
    tasks.delete_telegram_webhook("00000000-0000-0000-0000-000000000000", "key", "not-a-fernet-token")
    assert ChannelCleanup.objects.get().platform == "telegram"
    assert run_due_jobs() == 1
    assert fake_http.requests == []
    assert "cannot be read" in service_log.text
    assert not ChannelCleanup.objects.exists()


def test_telegram_webhook_failure_sets_last_error_without_undoing(
    as_agent, workspace, settings, fake_http, django_capture_on_commit_callbacks
):
    settings.PUBLIC_BASE_URL = "https://hooks.example.test"
    settings.TELEGRAM_API_BASE_URL = fake_http.url
    fake_http.route(
        "POST",
        f"/bot{TELEGRAM_TOKEN}/setWebhook",
        json_response({"ok": False, "error_code": 401, "description": "Unauthorized"}, status=401),
    )
    with django_capture_on_commit_callbacks(execute=True):
        response = as_agent.post(_url(workspace), {"platform": "telegram", "config": TG_CONFIG})
    assert response.status_code == 201
    channel = Channel.objects.get(pk=response.json()["id"])
    assert channel.enabled is True
    assert channel.last_error.startswith("setWebhook failed: telegram: credentials refused")
    assert "Unauthorized" not in channel.last_error
    assert as_agent.get(_url(workspace, f"/{channel.id}")).json()["last_error"] == channel.last_error


def test_no_registration_without_public_base_url(
    as_agent, workspace, settings, fake_http, django_capture_on_commit_callbacks
):
    settings.PUBLIC_BASE_URL = ""
    settings.TELEGRAM_API_BASE_URL = fake_http.url
    with django_capture_on_commit_callbacks(execute=True):
        as_agent.post(_url(workspace), {"platform": "telegram", "config": TG_CONFIG})
    assert fake_http.requests == []


# --- Discovery --------------------------------------------------------------------------------------


def test_telegram_discovery(as_admin, settings, fake_http):
    settings.TELEGRAM_API_BASE_URL = fake_http.url
    fake_http.route(
        "POST",
        f"/bot{TELEGRAM_TOKEN}/getMe",
        json_response({"ok": True, "result": {"id": 123456, "username": "my_bot"}}),
    )
    fake_http.route(
        "POST",
        f"/bot{TELEGRAM_TOKEN}/getUpdates",
        json_response(
            {
                "ok": True,
                "result": [
                    {"update_id": 1, "message": {"chat": {"id": 42, "type": "private", "first_name": "Ann"}}},
                    {"update_id": 2, "message": {"chat": {"id": -100, "type": "group", "title": "Team"}}},
                    {"update_id": 3, "message": {"chat": {"id": 42, "type": "private", "first_name": "Ann"}}},
                ],
            }
        ),
    )
    response = as_admin.post(
        "/channels/discover", {"platform": "telegram", "bot_token": TELEGRAM_TOKEN}, format="json"
    )
    assert response.status_code == 200, response.json()
    assert response.json() == {
        "bot": {"id": "123456", "username": "my_bot"},
        "chats": [
            {"chat_id": "42", "title": "Ann", "type": "private"},
            {"chat_id": "-100", "title": "Team", "type": "group"},
        ],
    }


def test_telegram_discovery_bad_token(as_admin, settings, fake_http):
    settings.TELEGRAM_API_BASE_URL = fake_http.url
    fake_http.route(
        "POST",
        f"/bot{TELEGRAM_TOKEN}/getMe",
        json_response({"ok": False, "error_code": 401, "description": "Unauthorized"}, status=401),
    )
    for token in (TELEGRAM_TOKEN, "garbage"):
        response = as_admin.post(
            "/channels/discover", {"platform": "telegram", "bot_token": token}, format="json"
        )
        assert response.status_code == 400
        assert response.json()["code"] == "invalid_token"
        assert "Unauthorized" not in response.json()["error"]


def test_slack_discovery_and_bad_token(as_admin, settings, fake_http):
    settings.SLACK_API_BASE_URL = fake_http.url
    fake_http.route("POST", "/auth.test", json_response({"ok": True, "user_id": "UBOT", "user": "agentbot"}))
    fake_http.route(
        "POST",
        "/conversations.list",
        json_response(
            {
                "ok": True,
                "channels": [
                    {"id": "C1", "name": "general", "is_private": False},
                    {"id": "G2", "name": "secret", "is_private": True},
                ],
                "response_metadata": {"next_cursor": ""},
            }
        ),
    )
    response = as_admin.post(
        "/channels/discover", {"platform": "slack", "bot_token": SLACK_TOKEN}, format="json"
    )
    assert response.status_code == 200, response.json()
    assert response.json() == {
        "bot": {"id": "UBOT", "username": "agentbot"},
        "chats": [
            {"chat_id": "C1", "title": "general", "type": "public_channel"},
            {"chat_id": "G2", "title": "secret", "type": "private_channel"},
        ],
    }
    assert fake_http.requests[0].headers["Authorization"] == f"Bearer {SLACK_TOKEN}"
    fake_http.route("POST", "/auth.test", json_response({"ok": False, "error": "invalid_auth"}))
    response = as_admin.post(
        "/channels/discover", {"platform": "slack", "bot_token": SLACK_TOKEN}, format="json"
    )
    assert response.status_code == 400 and response.json()["code"] == "invalid_token"


def test_discovery_not_supported_and_admin_only(as_admin, api, workspace):
    for platform in ("discord", "lark"):
        response = as_admin.post(
            "/channels/discover", {"platform": platform, "bot_token": "x"}, format="json"
        )
        assert response.status_code == 400 and response.json()["code"] == "not_supported"
    api.credentials(**bearer(make_workspace_token(workspace)))
    response = api.post("/channels/discover", {"platform": "telegram", "bot_token": "x"}, format="json")
    assert response.status_code == 403


def test_discovery_platform_down_is_502(as_admin, settings):
    from tests.support.fake_http import free_port

    settings.SLACK_API_BASE_URL = f"http://127.0.0.1:{free_port()}"
    response = as_admin.post(
        "/channels/discover", {"platform": "slack", "bot_token": SLACK_TOKEN}, format="json"
    )
    assert response.status_code == 502 and response.json()["code"] == "platform_error"


# --- Interfaces used by other apps -----------------------------------------------------------------


def test_prepare_bulk_create_and_public_config(workspace):
    prepared = services.channel_prepare(
        workspace=workspace, platform="telegram", config={"chat_ids": ["5"]}, enabled=False, name="imported"
    )
    assert prepared.pk and prepared._state.adding and not Channel.objects.exists()
    with pytest.raises(ApplicationError) as excinfo:
        services.channel_prepare(workspace=workspace, platform="telegram", config={"chat_ids": ["5"]})
    assert excinfo.value.code == "invalid_config" and excinfo.value.status_code == 400
    other = services.channel_prepare(
        workspace=workspace,
        platform="slack",
        config={"bot_token": SLACK_TOKEN, "signing_secret": "s", "channel_id": "C9"},
    )
    created = services.channel_bulk_create(channels=[prepared, other])
    assert len(created) == 2 and Channel.objects.count() == 2
    assert {c.name for c in selectors.channel_list(workspace=workspace)} == {"imported", ""}
    slack = Channel.objects.get(platform="slack")
    assert selectors.channel_public_config(channel=slack) == {"channel_id": "C9"}
    assert slack.config["bot_token"] == SLACK_TOKEN and SLACK_TOKEN not in slack.public_config.values()
    with connection.cursor() as cursor:
        cursor.execute("SELECT secret_config FROM channels_app_channel WHERE id = %s", [slack.pk])
        assert SLACK_TOKEN not in cursor.fetchone()[0]
    telegram = Channel.objects.get(platform="telegram")
    assert selectors.channel_public_config(channel=telegram) == {"chat_ids": ["5"]}


# --- Admin console -------------------------------------------------------------------------------


def test_admin_console_masks_secrets(client, workspace):
    channel = telegram_channel(workspace)
    staff = User.objects.create_superuser("root", "root@example.test", "pw")
    client.force_login(staff)
    for url in (
        "/admin/channels_app/channel/",
        f"/admin/channels_app/channel/{channel.pk}/change/",
        "/admin/channels_app/channel/?platform__exact=telegram&enabled__exact=1",
        "/admin/channels_app/channelmessage/?direction__exact=inbound&status__exact=received",
    ):
        response = client.get(url)
        assert response.status_code == 200, url
        page = response.content.decode()
        assert TELEGRAM_TOKEN not in page and TELEGRAM_SECRET not in page
    assert "1234…Yw1E" in client.get(f"/admin/channels_app/channel/{channel.pk}/change/").content.decode()


def test_admin_edit_keeps_secrets_and_replaces_them_when_given(client, workspace):
    channel = telegram_channel(workspace)
    staff = User.objects.create_superuser("root", "root@example.test", "pw")
    client.force_login(staff)
    url = f"/admin/channels_app/channel/{channel.pk}/change/"
    form = {
        "name": "edited",
        "enabled": "on",
        "settings": '{"chat_ids": ["99"]}',
        "new_secrets": "",
        "allowlist": "[]",
    }
    response = client.post(url, form)
    assert response.status_code == 302, response.content.decode()[:2000]
    channel.refresh_from_db()
    assert channel.name == "edited"
    assert channel.config == {
        "bot_token": TELEGRAM_TOKEN,
        "webhook_secret": TELEGRAM_SECRET,
        "chat_ids": ["99"],
    }
    new_token = "777777:QQEhBP0av28P2aqsU4L5Zq9ZsS6IcX1Yw1E"
    response = client.post(url, {**form, "new_secrets": json.dumps({"bot_token": new_token})})
    assert response.status_code == 302
    channel.refresh_from_db()
    assert channel.config["bot_token"] == new_token
    response = client.post(url, {**form, "new_secrets": '{"bot_token": "bad"}'})
    assert response.status_code == 200  # form error, nothing saved
    channel.refresh_from_db()
    assert channel.config["bot_token"] == new_token


def test_deleting_a_workspace_tree_unregisters_its_telegram_webhooks(
    as_admin, workspace, settings, fake_http, django_capture_on_commit_callbacks, eager_tasks
):
    """DELETE /workspaces/:id?cascade=true removes channels by cascade; Telegram must stop too."""
    settings.PUBLIC_BASE_URL = "https://hooks.example.test"
    settings.TELEGRAM_API_BASE_URL = fake_http.url
    fake_http.route("POST", f"/bot{TELEGRAM_TOKEN}/setWebhook", json_response({"ok": True, "result": True}))
    fake_http.route(
        "POST", f"/bot{TELEGRAM_TOKEN}/deleteWebhook", json_response({"ok": True, "result": True})
    )
    child = make_workspace("child", parent_id=workspace.id)
    with django_capture_on_commit_callbacks(execute=True):
        created = as_admin.post(_url(child), {"platform": "telegram", "config": TG_CONFIG})
    assert created.status_code == 201
    with django_capture_on_commit_callbacks(execute=True):
        assert as_admin.delete(f"/workspaces/{workspace.id}?cascade=true").status_code == 204
    assert ChannelCleanup.objects.count() == 1
    run_due_jobs()
    assert [r.path.rsplit("/", 1)[1] for r in fake_http.requests] == ["setWebhook", "deleteWebhook"]
    assert not Channel.objects.exists()


def test_top_level_config_field_error_says_it_belongs_in_config(as_agent, workspace):
    """The README's first Telegram step used to fail with a refusal that did not say where
    `webhook_secret` goes."""
    body = {
        "platform": "telegram",
        "config": {"bot_token": TELEGRAM_TOKEN},
        "webhook_secret": "abc",
        "id": "x",
    }
    response = as_agent.post(_url(workspace), body, format="json")
    assert response.status_code == 400
    error = response.json()
    assert error["code"] == "unknown_field"
    hint = (
        'webhook_secret is a config field: send it inside "config", e.g. {"config": {"webhook_secret": "…"}}.'
    )
    assert hint in error["error"]
    assert error["details"] == {"id": ["This field cannot be set."], "webhook_secret": [hint]}
    assert "abc" not in json.dumps(error)
    channel = as_agent.post(
        _url(workspace), {"platform": "telegram", "config": {"bot_token": TELEGRAM_TOKEN}}
    )
    patched = as_agent.patch(f"{_url(workspace)}/{channel.json()['id']}", {"bot_token": "x"}, format="json")
    assert (
        patched.status_code == 400
        and 'bot_token is a config field: send it inside "config"' in patched.json()["error"]
    )
