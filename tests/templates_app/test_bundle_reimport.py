"""Bundles that are safe to import twice: schedules come back disabled unless ?activate=true and
are listed in the answer; channel secret fields are listed in missing_secrets; failed plugins are
not exported."""

from __future__ import annotations

import json

import pytest
from django.core.management import call_command
from django.utils import timezone

from channels_app.services import channel_create
from plugins_app.models import InstalledPlugin, PluginStatus
from schedules.models import Schedule
from schedules.services import schedule_create
from templates_app.models import BundleImportJob
from tests.support.factories import make_workspace
from tests.support.worker import run_due_jobs

pytestmark = pytest.mark.django_db

BOT_TOKEN = "123456:ABCDEFGHIJKLMNOPQRSTUVWXYZabcd"


@pytest.fixture(autouse=True)
def no_webhook_registration(settings):
    settings.PUBLIC_BASE_URL = ""


@pytest.fixture
def tree(db):
    root = make_workspace("root")
    kid = make_workspace("kid", parent_id=root.pk)
    schedule_create(workspace=root, expression="*/5 * * * *", prompt="report", name="on")
    schedule_create(workspace=kid, expression="0 9 * * *", prompt="later", name="off", enabled=False)
    return {"root": root, "kid": kid}


def _imported_schedules(body):
    return {s["name"]: s for s in body["schedules"]}


def test_imported_schedules_are_disabled_by_default_and_listed(as_admin, tree):
    bundle = as_admin.get(f"/bundles/export/{tree['root'].pk}").json()
    response = as_admin.post("/bundles/import", bundle, format="json")
    assert response.status_code == 201, response.json()
    body = response.json()
    by_name = {w["name"]: w["id"] for w in body["workspaces"]}
    listed = _imported_schedules(body)
    assert set(listed) == {"on", "off"}
    assert listed["on"]["workspace_id"] == by_name["root"] and listed["off"]["workspace_id"] == by_name["kid"]
    assert all(s["enabled"] is False for s in listed.values())
    copies = Schedule.objects.filter(pk__in=[s["id"] for s in listed.values()])
    assert [(s.enabled, s.next_run_at) for s in copies] == [(False, None), (False, None)]
    # The originals are untouched.
    assert Schedule.objects.get(workspace=tree["root"]).enabled is True


@pytest.mark.parametrize("value", ["true", "1", "TRUE"])
def test_activate_true_keeps_schedules_as_exported(as_admin, tree, value):
    bundle = as_admin.get(f"/bundles/export/{tree['root'].pk}").json()
    body = as_admin.post(f"/bundles/import?activate={value}", bundle, format="json").json()
    listed = _imported_schedules(body)
    assert (listed["on"]["enabled"], listed["off"]["enabled"]) == (True, False)
    copy = Schedule.objects.get(pk=listed["on"]["id"])
    assert copy.enabled and copy.next_run_at is not None
    second = as_admin.get(f"/bundles/export/{body['root_id']}").json()
    assert second["workspace"]["schedules"] == bundle["workspace"]["schedules"]


def test_activate_false_and_invalid_values(as_admin, tree):
    bundle = as_admin.get(f"/bundles/export/{tree['root'].pk}").json()
    body = as_admin.post("/bundles/import?activate=false", bundle, format="json").json()
    assert not any(s["enabled"] for s in body["schedules"])
    count = Schedule.objects.count()
    for bad in ("yes-please", "2"):
        response = as_admin.post(f"/bundles/import?activate={bad}", bundle, format="json")
        assert response.status_code == 400 and response.json()["code"] == "invalid_parameter"
        assert response.json()["details"] == {"activate": ["Must be true or false."]}
    assert Schedule.objects.count() == count


def test_missing_secrets_list_channel_secret_fields(as_admin, tree):
    root, kid = tree["root"], tree["kid"]
    channel_create(workspace=root, platform="telegram", config={"bot_token": BOT_TOKEN}, name="tg")
    channel_create(
        workspace=kid,
        platform="slack",
        config={"bot_token": "xoxb-1-2-secret", "signing_secret": "s" * 32},
        name="sl",
    )
    from workspaces.models import WorkspaceSecret

    WorkspaceSecret.objects.create(workspace=kid, key="API_KEY", value="v")
    bundle = as_admin.get(f"/bundles/export/{root.pk}").json()
    body = as_admin.post("/bundles/import", bundle, format="json").json()
    by_name = {w["name"]: w["id"] for w in body["workspaces"]}
    from channels_app.models import Channel

    tg = Channel.objects.get(workspace_id=by_name["root"])
    sl = Channel.objects.get(workspace_id=by_name["kid"])
    assert sorted(body["missing_secrets"], key=lambda m: (m.get("channel_id", ""), m["key"])) == sorted(
        [
            {"workspace_id": by_name["kid"], "key": "API_KEY"},
            # telegram's webhook_secret is generated again, so only the bot token is missing
            {"workspace_id": by_name["root"], "channel_id": str(tg.pk), "key": "bot_token"},
            {"workspace_id": by_name["kid"], "channel_id": str(sl.pk), "key": "bot_token"},
            {"workspace_id": by_name["kid"], "channel_id": str(sl.pk), "key": "signing_secret"},
        ],
        key=lambda m: (m.get("channel_id", ""), m["key"]),
    )


def _plugin(workspace, name, status, *, source, installed_source="", installed=False):
    return InstalledPlugin.objects.create(
        workspace=workspace,
        name=name,
        source=source,
        status=status,
        installed_source=installed_source,
        installed_at=timezone.now() if installed else None,
        error="boom" if status == PluginStatus.FAILED else "",
    )


def test_failed_plugins_are_not_exported(as_admin, tree):
    root = tree["root"]
    _plugin(
        root,
        "good",
        PluginStatus.INSTALLED,
        source="local://good",
        installed_source="local://good",
        installed=True,
    )
    _plugin(root, "broken", PluginStatus.FAILED, source="github://acme/broken")
    # A failed reinstall keeps the old tree: the installed source is exported.
    _plugin(
        root,
        "kept",
        PluginStatus.INSTALLED,
        source="github://acme/kept#v1",
        installed_source="github://acme/kept#v1",
        installed=True,
    )
    _plugin(root, "coming", PluginStatus.INSTALLING, source="local://coming")
    bundle = as_admin.get(f"/bundles/export/{root.pk}").json()
    assert bundle["workspace"]["plugins"] == [
        {"name": "coming", "source": "local://coming"},
        {"name": "good", "source": "local://good"},
        {"name": "kept", "source": "github://acme/kept#v1"},
    ]


def test_import_bundle_command_activate_flag(tree, tmp_path, capsys):
    target = tmp_path / "bundle.json"
    call_command("export_bundle", str(tree["root"].pk), "-o", str(target))
    capsys.readouterr()
    call_command("import_bundle", str(target))
    out = capsys.readouterr().out
    assert "'on'" in out and ": disabled" in out and ": enabled" not in out
    call_command("import_bundle", str(target), "--activate")
    out = capsys.readouterr().out
    assert "'on' on" in out and ": enabled" in out
    names = Schedule.objects.filter(name="on").values_list("enabled", flat=True)
    assert sorted(names) == [False, True, True]  # original, default import, --activate import
    assert json.loads(target.read_text())["workspace"]["schedules"][0]["enabled"] is True


def test_console_upload_job_honours_activate(tree):
    from templates_app.bundles import bundle_export
    from templates_app.services import bundle_import_job_create

    bundle = bundle_export(workspace=tree["root"])
    plain = bundle_import_job_create(payload=bundle, filename="a.json")
    active = bundle_import_job_create(payload=bundle, filename="b.json", activate=True)
    assert run_due_jobs() == 2
    plain_root = BundleImportJob.objects.get(pk=plain.pk).root_id
    active_root = BundleImportJob.objects.get(pk=active.pk).root_id
    assert Schedule.objects.get(workspace_id=plain_root).enabled is False
    assert Schedule.objects.get(workspace_id=active_root).enabled is True
