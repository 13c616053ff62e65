"""Org import and bundles with the other apps' data: schedules, channels and plugins (the
example org, all-or-nothing across sections, round trips, flat query counts)."""

from __future__ import annotations

import copy

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from channels_app.selectors import channel_list, channel_public_config
from plugins_app.selectors import installed_plugin_list
from schedules.selectors import schedule_list
from templates_app import services
from tests.support.factories import make_workspace
from tests.templates_app.conftest import REPO
from workspaces.models import Workspace, WorkspaceMemory

pytestmark = pytest.mark.django_db

BOT_TOKEN = "123456:ABCDEFGHIJKLMNOPQRSTUVWXYZabcd"


@pytest.fixture
def acme_env(monkeypatch, settings):
    settings.PUBLIC_BASE_URL = ""
    settings.ORG_IMPORT_ENV_ALLOW = ["ACME_*"]
    monkeypatch.setenv("ACME_TELEGRAM_BOT_TOKEN", BOT_TOKEN)
    monkeypatch.setenv("ACME_TELEGRAM_CHAT_ID", "-100777")
    services.template_sync_dir(root=REPO / "workspace-templates")


def test_example_org_import(as_admin, acme_env, queued_installs, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = as_admin.post("/org/import", {"template": "acme"}, format="json")
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["org"] == "Acme Research" and body["count"] == 6
    by_name = {w["name"]: w for w in body["workspaces"]}
    ceo = Workspace.objects.get(pk=by_name["CEO"]["id"])
    assert body["root_ids"] == [str(ceo.pk)] and by_name["CEO"]["parent_id"] is None
    research = by_name["Research lead"]
    assert research["parent_id"] == str(ceo.pk)
    assert by_name["Researcher A"]["parent_id"] == research["id"]
    assert by_name["Coder"]["parent_id"] == by_name["Engineering lead"]["id"]

    assert ceo.tier == 4 and ceo.max_concurrent_tasks == 2
    assert ceo.config["system_prompt"].startswith("You are the CEO of Acme Research.")
    lead = Workspace.objects.get(pk=research["id"])
    assert lead.config["max_sources"] == 10  # from the researcher template
    coder = Workspace.objects.get(pk=by_name["Coder"]["id"])
    assert coder.runtime == "claude-code" and coder.tier == 3

    schedules = list(schedule_list(workspace=ceo))
    assert [(s.name, s.source, s.timezone) for s in schedules] == [
        ("weekly-review", "template", "Europe/Paris")
    ]
    assert "weekly review" in schedules[0].prompt and schedules[0].next_run_at is not None
    nightly = schedule_list(workspace=coder).get()
    assert nightly.source == "template" and nightly.enabled is False and nightly.next_run_at is None
    assert schedule_list(workspace=lead).get().name == "daily-digest"

    channel = channel_list(workspace=ceo).get()
    assert channel.platform == "telegram" and channel.enabled and channel.name == "leadership"
    assert channel_public_config(channel=channel)["chat_ids"] == ["-100777"]
    assert channel.allowlist == ["-100777"]
    assert BOT_TOKEN not in response.content.decode()

    assert {m.key for m in WorkspaceMemory.objects.filter(workspace=ceo)} == {"company", "priorities"}
    assert WorkspaceMemory.objects.get(workspace_id=by_name["Researcher B"]["id"]).value == "competitors"

    assert len(queued_installs) == 7  # web-search for all six, meeting-notes for the CEO
    assert sorted(p.name for p in installed_plugin_list(workspace=ceo)) == ["meeting-notes", "web-search"]
    assert {p.status for p in installed_plugin_list(workspace=coder)} == {"installing"}


def test_example_org_needs_its_env(as_admin, monkeypatch, settings):
    services.template_sync_dir(root=REPO / "workspace-templates")
    monkeypatch.delenv("ACME_TELEGRAM_BOT_TOKEN", raising=False)
    monkeypatch.delenv("ACME_TELEGRAM_CHAT_ID", raising=False)
    names = ["ACME_TELEGRAM_BOT_TOKEN", "ACME_TELEGRAM_CHAT_ID"]
    response = as_admin.post("/org/import", {"template": "acme"}, format="json")
    assert response.status_code == 400
    assert response.json() | {"error": ""} == {
        "error": "",
        "code": "env_not_allowed",
        "details": {"names": names},
    }
    settings.ORG_IMPORT_ENV_ALLOW = ["ACME_*"]
    response = as_admin.post("/org/import", {"template": "acme"}, format="json")
    assert response.status_code == 400
    assert response.json()["details"] == {"missing": names}


THREE = """
name: Three
workspaces:
  - name: first
    schedules: [{name: a, expression: "0 * * * *", prompt: hi}]
    channels: [{platform: discord, config: {application_id: "123456789", public_key: "{pubkey}"}}]
    children:
      - name: second
        schedules: [{expression: "*/5 * * * *", prompt: ok}]
      - name: third
        schedules: [{expression: "{expr}", prompt: broken}]
        channels: [{platform: {platform}, config: {}}]
""".replace("{pubkey}", "ab" * 32)


@pytest.mark.parametrize(
    ("expr", "platform", "code"),
    [("0 0 30 2 *", "discord", "invalid_expression"), ("0 * * * *", "telegram", "invalid_config")],
)
def test_failure_on_third_node_creates_nothing(as_admin, queued_installs, expr, platform, code):
    text = THREE.replace("{expr}", expr).replace("{platform}", platform)
    response = as_admin.post("/org/import", {"org_yaml": text}, format="json")
    assert response.status_code == 400, response.json()
    assert response.json()["code"] == code
    assert "workspaces[0].children[1]" in response.json()["error"]
    assert not Workspace.objects.exists()
    from channels_app.models import Channel
    from schedules.models import Schedule

    assert not Schedule.objects.exists() and not Channel.objects.exists()


def test_database_failure_in_channels_rolls_back_schedules(as_admin, monkeypatch):
    """Schedules are inserted, then the channel insert fails: nothing stays."""
    from channels_app.models import Channel
    from schedules.models import Schedule
    from templates_app import app_sections

    def failing(self, *, objects, context):
        assert Schedule.objects.count() == 2
        raise RuntimeError("insert failed")

    monkeypatch.setattr(app_sections.ChannelsSection, "create", failing)
    as_admin.raise_request_exception = False
    text = THREE.replace("{expr}", "0 1 * * *").replace("{platform}", "discord")
    text = text.replace("channels: [{platform: discord, config: {}}]", "")
    response = as_admin.post("/org/import", {"org_yaml": text}, format="json")
    assert response.status_code == 500
    assert not Workspace.objects.exists() and not Schedule.objects.exists() and not Channel.objects.exists()


@pytest.fixture
def rich_tree(db, queued_installs, django_capture_on_commit_callbacks, settings):
    from channels_app.services import channel_create
    from plugins_app.services import plugin_install_bulk_request
    from schedules.services import schedule_create

    settings.PUBLIC_BASE_URL = ""
    root = make_workspace("root")
    child = make_workspace("child", parent_id=root.pk)
    schedule_create(workspace=root, expression="0 9 * * MON-FRI", prompt="standup", name="standup")
    schedule_create(
        workspace=root, expression="*/15 * * * *", prompt="poll", timezone="Asia/Tokyo", enabled=False
    )
    schedule_create(workspace=child, expression="0 0 1 * *", prompt="monthly", source="template")
    channel_create(
        workspace=root,
        platform="telegram",
        config={"bot_token": BOT_TOKEN, "chat_ids": ["-1001", "-1002"]},
        allowlist=["42"],
        name="ops",
    )
    channel_create(
        workspace=child,
        platform="slack",
        config={"bot_token": "xoxb-1-2-secret", "signing_secret": "s" * 32, "channel_id": "C123"},
        name="team",
    )
    with django_capture_on_commit_callbacks(execute=True):
        plugin_install_bulk_request(
            requests=[(root, "local://web-search"), (child, "github://acme/tools#v1")]
        )
    queued_installs.clear()
    return root


def test_bundle_round_trip_with_schedules_channels_plugins(
    as_admin, rich_tree, queued_installs, django_capture_on_commit_callbacks
):
    first = as_admin.get(f"/bundles/export/{rich_tree.pk}")
    text = first.content.decode()
    assert BOT_TOKEN not in text and "xoxb-1-2-secret" not in text and "s" * 32 not in text
    bundle = first.json()
    root = bundle["workspace"]
    assert [s["name"] for s in root["schedules"]] == ["", "standup"]
    assert root["channels"][0]["config"] == {"chat_ids": ["-1001", "-1002"]}
    assert root["channels"][0]["enabled"] is True
    assert root["plugins"] == [{"name": "web-search", "source": "local://web-search"}]
    assert root["children"][0]["schedules"][0]["source"] == "template"
    assert root["children"][0]["channels"][0]["config"] == {"channel_id": "C123"}

    with django_capture_on_commit_callbacks(execute=True):
        # activate=true: schedules keep their `enabled`, so only channels differ in the round trip
        response = as_admin.post("/bundles/import?activate=true", bundle, format="json")
    assert response.status_code == 201, response.json()
    new_root = Workspace.objects.get(pk=response.json()["root_id"])
    assert len(queued_installs) == 2
    channels = list(channel_list(workspace=new_root))
    assert [c.enabled for c in channels] == [False]
    second = as_admin.get(f"/bundles/export/{new_root.pk}").json()

    assert second["workspace"]["channels"][0]["enabled"] is False

    def strip(b):
        b = copy.deepcopy(b)
        b.pop("exported_at")
        stack = [b["workspace"]]
        while stack:
            node = stack.pop()
            for channel in node["channels"]:
                channel.pop("enabled")
            stack.extend(node["children"])
        return b

    assert strip(second) == strip(bundle)


def test_bundle_with_a_bad_schedule_creates_nothing(as_admin):
    bundle = {
        "format": "integrations-bundle",
        "version": 1,
        "workspace": {
            "name": "r",
            "children": [{"name": "c", "schedules": [{"expression": "@every 5m", "prompt": "x"}]}],
        },
    }
    response = as_admin.post("/bundles/import", bundle, format="json")
    assert response.status_code == 400 and response.json()["code"] == "invalid_expression"
    assert not Workspace.objects.exists()


def _bundle_with_data(n: int) -> dict:
    def node(i: int) -> dict:
        return {
            "name": f"w{i}",
            "memory": {"k": i},
            "secrets": ["KEY"],
            "schedules": [{"name": "s", "expression": "0 * * * *", "prompt": "p"}],
            "channels": [
                {"platform": "telegram", "name": "c", "config": {"chat_ids": [str(i)]}, "allowlist": []}
            ],
            "plugins": [{"name": "web-search", "source": "local://web-search"}],
            "children": [],
        }

    root = node(0)
    root["children"] = [node(i) for i in range(1, n)]
    return {"format": "integrations-bundle", "version": 1, "workspace": root}


def test_query_counts_flat_with_every_section(as_admin, queued_installs):
    as_admin.get("/templates")
    counts = {}
    for n in (10, 200):
        with CaptureQueriesContext(connection) as ctx:
            response = as_admin.post("/bundles/import", _bundle_with_data(n), format="json")
        assert response.status_code == 201, response.json()
        counts[("import", n)] = len(ctx.captured_queries)
        with CaptureQueriesContext(connection) as ctx:
            exported = as_admin.get(f"/bundles/export/{response.json()['root_id']}")
        assert len(exported.json()["workspace"]["children"]) == n - 1
        counts[("export", n)] = len(ctx.captured_queries)
    assert counts[("import", 200)] == counts[("import", 10)], counts
    assert counts[("export", 200)] == counts[("export", 10)], counts
