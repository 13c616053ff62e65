"""Workspace tokens and admin tokens (SPEC §2, §7)."""

from __future__ import annotations

import hashlib
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.db import connection
from django.utils import timezone
from rest_framework.test import APIClient

from tests.support.factories import bearer, make_workspace_token
from tokens.models import AdminToken, WorkspaceToken
from tokens.secrets import WORKSPACE_TOKEN_RE

pytestmark = pytest.mark.django_db


def _raw_row(table: str, pk) -> tuple:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT * FROM {table} WHERE id = %s", [pk])
        return cursor.fetchone()


def test_create_returns_plaintext_once_and_stores_only_hash(as_admin, workspace):
    response = as_admin.post(f"/workspaces/{workspace.id}/tokens", {"name": "ci"}, format="json")
    assert response.status_code == 201, response.json()
    body = response.json()
    plaintext = body["token"]
    assert WORKSPACE_TOKEN_RE.match(plaintext)
    assert body["masked"] == f"{plaintext[:8]}…{plaintext[-4:]}"
    assert body["role"] == "agent"
    assert set(body) == {
        "id",
        "name",
        "role",
        "masked",
        "created_by",
        "created_by_token_id",
        "created_at",
        "last_used_at",
        "expires_at",
        "token",
    }

    row = _raw_row("tokens_workspacetoken", body["id"])
    assert all(plaintext not in str(value) for value in row), "a column holds the plaintext"
    assert hashlib.sha256(plaintext.encode()).hexdigest() in row

    listed = as_admin.get(f"/workspaces/{workspace.id}/tokens").json()
    assert [t["id"] for t in listed] == [body["id"]]
    assert "token" not in listed[0]
    assert plaintext not in str(listed)


def test_token_works_and_records_last_used(api, workspace):
    plaintext = make_workspace_token(workspace)
    api.credentials(**bearer(plaintext))
    assert api.get(f"/workspaces/{workspace.id}").status_code == 200
    token = WorkspaceToken.objects.get(workspace=workspace)
    first = token.last_used_at
    assert first is not None
    api.get(f"/workspaces/{workspace.id}")
    token.refresh_from_db()
    assert token.last_used_at == first, "updated more than once a minute"
    WorkspaceToken.objects.filter(pk=token.pk).update(last_used_at=timezone.now() - timedelta(seconds=61))
    api.get(f"/workspaces/{workspace.id}")
    token.refresh_from_db()
    assert token.last_used_at > first


def test_revocation_is_effective_on_next_request(api, workspace):
    victim = make_workspace_token(workspace, name="victim")
    admin_like = make_workspace_token(workspace, role="operator", name="op")
    api.credentials(**bearer(victim))
    assert api.get(f"/workspaces/{workspace.id}").status_code == 200
    token_id = WorkspaceToken.objects.get(name="victim").id

    api.credentials(**bearer(admin_like))
    assert api.delete(f"/workspaces/{workspace.id}/tokens/{token_id}").status_code == 204
    api.credentials(**bearer(victim))
    response = api.get(f"/workspaces/{workspace.id}")
    assert response.status_code == 401
    assert response.json()["code"] == "unauthenticated"

    api.credentials(**bearer(admin_like))
    again = api.delete(f"/workspaces/{workspace.id}/tokens/{token_id}")
    assert again.status_code == 404
    assert again.json()["code"] == "not_found"


def test_token_limit_50_then_409(as_admin, workspace):
    for i in range(49):
        make_workspace_token(workspace, name=f"t{i}")
    # a revoked and an expired token do not count
    WorkspaceToken.objects.create(
        workspace=workspace,
        name="revoked",
        token_hash="r" * 64,
        hint_prefix="wst_xxxx",
        hint_suffix="xxxx",
        revoked_at=timezone.now(),
    )
    WorkspaceToken.objects.create(
        workspace=workspace,
        name="expired",
        token_hash="e" * 64,
        hint_prefix="wst_xxxx",
        hint_suffix="xxxx",
        expires_at=timezone.now() - timedelta(seconds=1),
    )
    fiftieth = as_admin.post(f"/workspaces/{workspace.id}/tokens", {}, format="json")
    assert fiftieth.status_code == 201
    fifty_first = as_admin.post(f"/workspaces/{workspace.id}/tokens", {}, format="json")
    assert fifty_first.status_code == 409
    assert fifty_first.json()["code"] == "limit_reached"
    assert WorkspaceToken.objects.active().filter(workspace=workspace).count() == 50


def test_expired_token_is_401_and_not_listed(as_admin, workspace):
    plaintext = make_workspace_token(workspace, name="short", expires_in_days=1)
    WorkspaceToken.objects.filter(name="short").update(expires_at=timezone.now() - timedelta(seconds=1))
    client = APIClient()
    client.credentials(**bearer(plaintext))
    assert client.get(f"/workspaces/{workspace.id}").status_code == 401
    assert as_admin.get(f"/workspaces/{workspace.id}/tokens").json() == []


@pytest.mark.parametrize("days, status", [(0, 400), (1, 201), (3650, 201), (3651, 400), ("x", 400)])
def test_expires_in_days_edges(as_admin, workspace, days, status):
    response = as_admin.post(f"/workspaces/{workspace.id}/tokens", {"expires_in_days": days}, format="json")
    assert response.status_code == status
    if status == 201:
        expires = response.json()["expires_at"]
        assert expires is not None


def test_operator_token_creation_rules(api, workspace, agent_token, operator_token):
    api.credentials(**bearer(agent_token))
    denied = api.post(f"/workspaces/{workspace.id}/tokens", {"role": "operator"}, format="json")
    assert denied.status_code == 403
    assert denied.json()["code"] == "forbidden"
    assert api.post(f"/workspaces/{workspace.id}/tokens", {"role": "agent"}, format="json").status_code == 403

    api.credentials(**bearer(operator_token))
    allowed = api.post(f"/workspaces/{workspace.id}/tokens", {"role": "operator"}, format="json")
    assert allowed.status_code == 201
    assert allowed.json()["role"] == "operator"


def test_agent_token_cannot_revoke_operator_token(api, workspace, agent_token, operator_token):
    operator_id = WorkspaceToken.objects.get(role="operator").id
    api.credentials(**bearer(agent_token))
    assert api.delete(f"/workspaces/{workspace.id}/tokens/{operator_id}").status_code == 403
    api.credentials(**bearer(operator_token))
    assert api.get(f"/workspaces/{workspace.id}").status_code == 200


def test_unknown_fields_and_bad_role(as_admin, workspace):
    response = as_admin.post(f"/workspaces/{workspace.id}/tokens", {"token_hash": "x"}, format="json")
    assert response.status_code == 400
    assert response.json()["code"] == "unknown_field"
    bad_role = as_admin.post(f"/workspaces/{workspace.id}/tokens", {"role": "god"}, format="json")
    assert bad_role.status_code == 400
    assert bad_role.json()["code"] == "invalid_request"


def test_token_of_other_workspace_is_404(as_admin, workspace, other_workspace):
    make_workspace_token(other_workspace, name="theirs")
    token_id = WorkspaceToken.objects.get(name="theirs").id
    response = as_admin.delete(f"/workspaces/{workspace.id}/tokens/{token_id}")
    assert response.status_code == 404
    assert WorkspaceToken.objects.get(pk=token_id).revoked_at is None


def test_admin_mint_route(as_admin, workspace, agent_token):
    response = as_admin.post(f"/admin/workspaces/{workspace.id}/tokens", {"role": "operator"}, format="json")
    assert response.status_code == 201
    assert response.json()["role"] == "operator"
    api = APIClient()
    api.credentials(**bearer(response.json()["token"]))
    assert api.get(f"/workspaces/{workspace.id}").status_code == 200

    api.credentials(**bearer(agent_token))
    assert api.post(f"/admin/workspaces/{workspace.id}/tokens", {}, format="json").status_code == 403


def test_create_admin_token_command_prints_token_last(api, workspace):
    out, err = StringIO(), StringIO()
    call_command("create_admin_token", "--name", "ops", stdout=out, stderr=err)
    plaintext = out.getvalue().strip().splitlines()[-1]
    assert plaintext.startswith("adm_") and len(plaintext) == 44
    row = _raw_row("tokens_admintoken", AdminToken.objects.get(name="ops").pk)
    assert all(plaintext not in str(value) for value in row)
    api.credentials(**bearer(plaintext))
    assert api.get("/workspaces").status_code == 200
    AdminToken.objects.filter(name="ops").update(revoked_at=timezone.now())
    assert api.get("/workspaces").status_code == 401
