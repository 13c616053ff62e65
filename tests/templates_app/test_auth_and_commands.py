"""Every route of SPEC §8 refuses workspace tokens (403) and anonymous callers (401); the
bundle and template management commands."""

from __future__ import annotations

import json

import pytest
from django.core.management import CommandError, call_command

from tests.support.factories import bearer, make_workspace
from workspaces.models import Workspace, WorkspaceMemory, WorkspaceSecret

pytestmark = pytest.mark.django_db

ZERO = "00000000-0000-0000-0000-000000000000"


def _routes(workspace_id):
    return [
        ("get", "/templates", None),
        ("post", "/templates/import", {"source": "local://researcher"}),
        ("get", f"/templates/imports/{ZERO}", None),
        ("get", "/org/templates", None),
        ("post", "/org/import", {"org_yaml": "name: X\nworkspaces: [{name: A}]\n"}),
        ("get", f"/bundles/export/{workspace_id}", None),
        (
            "post",
            "/bundles/import",
            {"format": "integrations-bundle", "version": 1, "workspace": {"name": "x"}},
        ),
    ]


@pytest.mark.parametrize("index", range(7))
@pytest.mark.parametrize("slash", ["", "/"])
def test_workspace_tokens_are_forbidden_everywhere(api, workspace, agent_token, operator_token, index, slash):
    method, path, body = _routes(workspace.pk)[index]
    for token in (agent_token, operator_token):
        api.credentials(**bearer(token))
        response = getattr(api, method)(path + slash, body, format="json")
        assert response.status_code == 403, (path, response.content)
        assert response.json()["code"] == "forbidden"
    api.credentials()
    response = getattr(api, method)(path + slash, body, format="json")
    assert response.status_code == 401 and response.json()["code"] == "unauthenticated"
    assert Workspace.objects.count() == 1


def test_export_and_import_commands(tmp_path, capsys):
    root = make_workspace("root")
    child = make_workspace("child", parent_id=root.pk)
    WorkspaceSecret.objects.create(workspace=child, key="TOKEN", value="x")
    WorkspaceMemory.objects.create(workspace=root, key="k", value=[1])
    target = tmp_path / "bundle.json"
    call_command("export_bundle", str(root.pk), "-o", str(target))
    err = capsys.readouterr().err
    assert "exported 2 workspaces" in err and "workspaces" in err
    bundle = json.loads(target.read_text())
    assert bundle["workspace"]["children"][0]["secrets"] == ["TOKEN"]

    call_command("import_bundle", str(target), "--parent-id", str(root.pk))
    out = capsys.readouterr().out
    assert "imported 2 workspaces" in out and "missing secret TOKEN" in out
    assert Workspace.objects.filter(name="root", parent=root).exists()

    call_command("export_bundle", str(child.pk))
    assert json.loads(capsys.readouterr().out)["workspace"]["name"] == "child"


def test_command_errors(tmp_path):
    with pytest.raises(CommandError):
        call_command("export_bundle", ZERO)
    with pytest.raises(CommandError):
        call_command("export_bundle", "nope")
    bad = tmp_path / "bad.json"
    bad.write_text('{"format": "other"}')
    with pytest.raises(CommandError, match="invalid_request"):
        call_command("import_bundle", str(bad))
    with pytest.raises(CommandError):
        call_command("import_bundle", str(tmp_path / "missing.json"))
    assert not Workspace.objects.exists()
