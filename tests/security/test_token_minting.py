"""Issue 11 item 5: who may mint tokens, how long they live, and revocation down the chain."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from tests.support.factories import bearer, make_workspace_token
from tokens.models import AdminToken, WorkspaceToken
from tokens.services import admin_token_create

pytestmark = pytest.mark.django_db


def _client(token: str) -> APIClient:
    client = APIClient()
    client.credentials(**bearer(token))
    return client


def _mint(token: str, workspace, **body):
    return _client(token).post(f"/workspaces/{workspace.id}/tokens", body, format="json")


def test_agent_token_cannot_mint_any_token(workspace, agent_token):
    for role in ("agent", "operator"):
        response = _mint(agent_token, workspace, role=role)
        assert response.status_code == 403
        assert response.json()["code"] == "forbidden"
    assert WorkspaceToken.objects.filter(workspace=workspace).count() == 1


def test_operator_token_and_admin_may_mint(workspace, operator_token, as_admin):
    assert _mint(operator_token, workspace).status_code == 201
    assert as_admin.post(f"/workspaces/{workspace.id}/tokens", {}, format="json").status_code == 201
    assert as_admin.post(f"/admin/workspaces/{workspace.id}/tokens", {}, format="json").status_code == 201


def test_created_by_is_recorded_and_shown(workspace, operator_token):
    parent = WorkspaceToken.objects.get(role="operator")
    response = _mint(operator_token, workspace, name="child")
    assert response.status_code == 201
    body = response.json()
    assert body["created_by"] == "operator-1"
    assert body["created_by_token_id"] == str(parent.id)
    child = WorkspaceToken.objects.get(pk=body["id"])
    assert child.created_by_token_id == parent.id
    listed = {t["id"]: t for t in _client(operator_token).get(f"/workspaces/{workspace.id}/tokens").json()}
    assert listed[body["id"]]["created_by_token_id"] == str(parent.id)


def test_admin_token_minted_tokens_record_the_admin_token(workspace):
    minted = admin_token_create(name="ops", created_by="tests")
    response = _mint(minted.plaintext, workspace)
    assert response.status_code == 201
    child = WorkspaceToken.objects.get(pk=response.json()["id"])
    assert child.created_by_admin_token_id == minted.token.pk
    assert response.json()["created_by_token_id"] is None


def _expiring_operator(workspace, days: int) -> tuple[str, WorkspaceToken]:
    """An operator token with `days` days and one hour left."""
    plaintext = make_workspace_token(workspace, role="operator", name="short", expires_in_days=days)
    expires_at = timezone.now() + timedelta(days=days, hours=1)
    WorkspaceToken.objects.filter(name="short").update(expires_at=expires_at)
    return plaintext, WorkspaceToken.objects.get(name="short")


def test_token_minted_without_expiry_by_expiring_token_inherits_its_expiry(workspace):
    plaintext, creator = _expiring_operator(workspace, 3)
    response = _mint(plaintext, workspace)
    assert response.status_code == 201
    child = WorkspaceToken.objects.get(pk=response.json()["id"])
    assert child.expires_at == creator.expires_at


@pytest.mark.parametrize(("days", "status"), [(2, 201), (3, 201), (4, 400)])
def test_requested_expiry_later_than_the_creator_is_refused(workspace, days, status):
    plaintext, creator = _expiring_operator(workspace, 3)
    response = _mint(plaintext, workspace, expires_in_days=days)
    assert response.status_code == status, response.json()
    if status == 201:
        assert WorkspaceToken.objects.get(pk=response.json()["id"]).expires_at <= creator.expires_at
    else:
        assert response.json()["code"] == "invalid_request"
        assert "expires_in_days" in response.json()["details"]


def test_expiring_admin_token_caps_what_it_mints(workspace):
    minted = admin_token_create(name="temp", created_by="tests", expires_in_days=1)
    inherited = _mint(minted.plaintext, workspace)
    assert inherited.status_code == 201
    assert WorkspaceToken.objects.get(pk=inherited.json()["id"]).expires_at == minted.token.expires_at
    assert _mint(minted.plaintext, workspace, expires_in_days=2).status_code == 400


def test_non_expiring_creator_mints_what_is_asked(workspace, operator_token):
    response = _mint(operator_token, workspace, expires_in_days=3650)
    assert response.status_code == 201
    assert WorkspaceToken.objects.get(pk=response.json()["id"]).expires_at > timezone.now() + timedelta(
        days=3000
    )
    assert _mint(operator_token, workspace).json()["expires_at"] is None


def test_revoking_a_token_revokes_what_it_minted_transitively(workspace, operator_token, other_workspace):
    first = _mint(operator_token, workspace, role="operator", name="first").json()
    second = _mint(first["token"], workspace, role="operator", name="second").json()
    third = _mint(second["token"], workspace, name="third").json()
    sibling = _mint(operator_token, workspace, name="sibling").json()
    root = WorkspaceToken.objects.get(role="operator", name="operator-1")
    response = _client(operator_token).delete(f"/workspaces/{workspace.id}/tokens/{first['id']}")
    assert response.status_code == 204
    revoked = set(WorkspaceToken.objects.filter(revoked_at__isnull=False).values_list("id", flat=True))
    assert {str(pk) for pk in revoked} == {first["id"], second["id"], third["id"]}
    for token in (first, second, third):
        assert _client(token["token"]).get(f"/workspaces/{workspace.id}").status_code == 401
    assert _client(sibling["token"]).get(f"/workspaces/{workspace.id}").status_code == 200
    assert WorkspaceToken.objects.get(pk=root.pk).revoked_at is None


def test_revoking_an_admin_token_revokes_the_workspace_tokens_it_minted(workspace, other_workspace):
    from tokens.services import admin_token_revoke

    minted = admin_token_create(name="ops", created_by="tests")
    child = _mint(minted.plaintext, workspace, role="operator").json()
    grandchild = _mint(child["token"], workspace).json()
    elsewhere = _mint(minted.plaintext, other_workspace).json()
    admin_token_revoke(token=AdminToken.objects.get(pk=minted.token.pk))
    for token in (child, grandchild):
        assert _client(token["token"]).get(f"/workspaces/{workspace.id}").status_code == 401
    assert _client(elsewhere["token"]).get(f"/workspaces/{other_workspace.id}").status_code == 401
