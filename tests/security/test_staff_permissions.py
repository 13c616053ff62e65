"""Issue 11 item 4: staff is not superuser.

On the API a console session is an admin credential only for a superuser; in the console every
action and custom view checks the model permission it needs.
"""

from __future__ import annotations

import itertools
import json

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from rest_framework.test import APIClient

from approvals.models import Approval, ApprovalStatus
from approvals.services import approval_create
from plugins_app.models import InstalledPlugin, PluginStatus
from schedules.models import ScheduleRun
from schedules.services import schedule_create
from templates_app.models import BundleImportJob
from tests.support.factories import make_admin_token, make_workspace_token
from tokens.models import AdminToken, WorkspaceToken
from workspaces.models import Workspace

pytestmark = pytest.mark.django_db


def _user(name: str, *perms: str, superuser: bool = False):
    user = get_user_model().objects.create_user(name, password="pw", is_staff=True, is_superuser=superuser)
    for perm in perms:
        app_label, codename = perm.split(".")
        user.user_permissions.add(
            Permission.objects.get(content_type__app_label=app_label, codename=codename)
        )
    return get_user_model().objects.get(pk=user.pk)  # drop the permission cache


_names = itertools.count()


def _console(*perms: str, superuser: bool = False) -> Client:
    client = Client()
    client.force_login(_user(f"user{next(_names)}", *perms, superuser=superuser))
    return client


ALL_API_PERMS = (
    "workspaces.view_workspace",
    "workspaces.add_workspace",
    "workspaces.change_workspace",
    "approvals.decide_approval",
    "tokens.add_workspacetoken",
    "tokens.add_admintoken",
)


# --- API --------------------------------------------------------------------------------------------


def _api_session(user) -> APIClient:
    client = APIClient()
    client.force_login(user)
    return client


def test_staff_session_without_superuser_is_403_on_the_api(workspace):
    approval = approval_create(workspace=workspace, action="deploy", created_by="agent")
    client = _api_session(_user("staff", *ALL_API_PERMS))
    calls = [
        ("get", "/workspaces", None),
        ("post", "/workspaces", {"name": "x"}),
        ("get", f"/workspaces/{workspace.id}", None),
        ("post", f"/admin/workspaces/{workspace.id}/tokens", {"role": "operator"}),
        ("post", f"/workspaces/{workspace.id}/approvals/{approval.id}/decide", {"decision": "approve"}),
        ("post", "/org/import", {"org_yaml": "name: X\nworkspaces: [{name: A}]\n"}),
    ]
    for method, url, body in calls:
        response = getattr(client, method)(url, body, format="json") if body else getattr(client, method)(url)
        assert response.status_code == 403, (url, response.content)
        assert response.json()["code"] == "forbidden"
    assert Workspace.objects.count() == 1
    assert Approval.objects.get(pk=approval.pk).status == ApprovalStatus.PENDING
    assert not WorkspaceToken.objects.exists()


def test_superuser_session_is_an_admin_credential(workspace):
    client = _api_session(_user("root", superuser=True))
    assert client.get("/workspaces").status_code == 200
    assert client.post(f"/admin/workspaces/{workspace.id}/tokens", {}, format="json").status_code == 201


def test_staff_session_does_not_break_public_routes():
    client = _api_session(_user("staff"))
    assert client.get("/health").status_code in (200, 503)


# --- Console ----------------------------------------------------------------------------------------


def _action(client: Client, url: str, action: str, pk) -> None:
    client.post(url, {"action": action, "_selected_action": [str(pk)]})


@pytest.mark.parametrize(
    ("perms", "revoked"),
    [
        (("tokens.view_workspacetoken",), False),
        (("tokens.view_workspacetoken", "tokens.change_workspacetoken"), True),
    ],
)
def test_console_workspace_token_revoke_needs_change_permission(workspace, perms, revoked):
    make_workspace_token(workspace, name="t")
    token = WorkspaceToken.objects.get()
    _action(_console(*perms), "/admin/tokens/workspacetoken/", "revoke_selected", token.pk)
    token.refresh_from_db()
    assert (token.revoked_at is not None) is revoked


@pytest.mark.parametrize(
    ("perms", "revoked"),
    [(("tokens.view_admintoken",), False), (("tokens.view_admintoken", "tokens.change_admintoken"), True)],
)
def test_console_admin_token_revoke_needs_change_permission(db, perms, revoked):
    make_admin_token("root")
    token = AdminToken.objects.get()
    _action(_console(*perms), "/admin/tokens/admintoken/", "revoke_selected", token.pk)
    token.refresh_from_db()
    assert (token.revoked_at is not None) is revoked


def test_console_admin_tokens_are_minted_by_superusers_only(db):
    """An admin token is a full API admin: only a superuser may create one."""
    staff = _console("tokens.view_admintoken", "tokens.add_admintoken")
    assert staff.get("/admin/tokens/admintoken/add/").status_code == 403
    assert staff.post("/admin/tokens/admintoken/add/", {"name": "x"}).status_code == 403
    assert not AdminToken.objects.exists()
    root = _console(superuser=True)
    assert root.post("/admin/tokens/admintoken/add/", {"name": "x"}).status_code == 200
    assert AdminToken.objects.count() == 1


@pytest.mark.parametrize(
    ("perms", "runs"),
    [(("schedules.view_schedule",), 0), (("schedules.view_schedule", "schedules.change_schedule"), 1)],
)
def test_console_schedule_run_now_needs_change_permission(workspace, perms, runs):
    schedule = schedule_create(workspace=workspace, expression="*/5 * * * *", prompt="p")
    _action(_console(*perms), "/admin/schedules/schedule/", "run_now", schedule.pk)
    assert ScheduleRun.objects.filter(schedule=schedule).count() == runs


@pytest.mark.parametrize(
    ("perms", "kept"),
    [
        (("plugins_app.view_installedplugin", "plugins_app.change_installedplugin"), True),
        (("plugins_app.view_installedplugin", "plugins_app.delete_installedplugin"), False),
    ],
)
def test_console_plugin_uninstall_needs_delete_permission(workspace, perms, kept):
    plugin = InstalledPlugin.objects.create(
        workspace=workspace, name="p", source="local://p", status=PluginStatus.FAILED
    )
    _action(_console(*perms), "/admin/plugins_app/installedplugin/", "uninstall", plugin.pk)
    assert InstalledPlugin.objects.filter(pk=plugin.pk).exists() is kept


def test_console_plugin_reinstall_needs_change_permission(workspace):
    plugin = InstalledPlugin.objects.create(
        workspace=workspace, name="p", source="local://p", status=PluginStatus.FAILED
    )
    _action(
        _console("plugins_app.view_installedplugin"),
        "/admin/plugins_app/installedplugin/",
        "reinstall",
        plugin.pk,
    )
    assert InstalledPlugin.objects.get(pk=plugin.pk).status == PluginStatus.FAILED


def test_console_decide_needs_decide_permission(workspace):
    approval = approval_create(workspace=workspace, action="deploy", created_by="agent")
    url = f"/admin/approvals/approval/{approval.pk}/decide/"
    _console("approvals.view_approval", "approvals.change_approval").post(url, {"decision": "approve"})
    assert Approval.objects.get(pk=approval.pk).status == ApprovalStatus.PENDING
    _console("approvals.view_approval", "approvals.decide_approval").post(url, {"decision": "approve"})
    assert Approval.objects.get(pk=approval.pk).status == ApprovalStatus.APPROVED


@pytest.fixture
def org_dir(tmp_path, settings):
    folder = tmp_path / "orgs" / "tiny"
    folder.mkdir(parents=True)
    (folder / "org.yaml").write_text("name: Tiny\nworkspaces:\n  - name: Solo\n")
    settings.ORG_TEMPLATES_DIR = tmp_path / "orgs"
    return folder


@pytest.mark.parametrize(
    ("perms", "status", "created"),
    [
        (("workspaces.view_workspace",), 403, 0),
        (("workspaces.view_workspace", "workspaces.add_workspace"), 302, 1),
    ],
)
def test_console_org_import_needs_add_workspace(org_dir, perms, status, created):
    client = _console(*perms)
    response = client.post("/admin/templates_app/orgtemplate/tiny/import/")
    assert response.status_code == status
    assert Workspace.objects.filter(name="Solo").count() == created


def test_console_org_listing_needs_add_workspace(org_dir):
    assert _console("workspaces.view_workspace").get("/admin/templates_app/orgtemplate/").status_code == 403
    allowed = _console("workspaces.add_workspace").get("/admin/templates_app/orgtemplate/")
    assert allowed.status_code == 200


def _bundle_file() -> SimpleUploadedFile:
    bundle = {
        "format": "integrations-bundle",
        "version": 1,
        "workspace": {"name": "B", "children": []},
    }
    return SimpleUploadedFile("b.json", json.dumps(bundle).encode(), content_type="application/json")


@pytest.mark.parametrize(
    ("perms", "status"),
    [
        (("templates_app.add_bundleimportjob", "templates_app.view_bundleimportjob"), 403),
        (
            (
                "templates_app.add_bundleimportjob",
                "templates_app.view_bundleimportjob",
                "workspaces.add_workspace",
            ),
            200,
        ),
    ],
)
def test_console_bundle_upload_needs_add_workspace(db, perms, status):
    response = _console(*perms).get("/admin/templates_app/bundleimportjob/add/")
    assert response.status_code == status
    assert not BundleImportJob.objects.exists()


EXPORT_PERMS = (
    "workspaces.view_workspace",
    "workspaces.view_workspacesecret",
    "workspaces.view_workspacememory",
    "schedules.view_schedule",
    "channels_app.view_channel",
    "plugins_app.view_installedplugin",
)


@pytest.mark.parametrize("missing", EXPORT_PERMS[1:])
def test_console_export_needs_view_permission_on_everything_exported(workspace, missing):
    perms = [p for p in EXPORT_PERMS if p != missing]
    response = _console(*perms).post(
        "/admin/workspaces/workspace/", {"action": "export_bundles", "_selected_action": [str(workspace.pk)]}
    )
    assert response.get("Content-Disposition") is None


def test_console_export_with_every_view_permission(workspace):
    response = _console(*EXPORT_PERMS).post(
        "/admin/workspaces/workspace/", {"action": "export_bundles", "_selected_action": [str(workspace.pk)]}
    )
    assert response.status_code == 200
    assert "attachment" in response["Content-Disposition"]
