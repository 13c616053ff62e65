"""Tokens in the admin console: masked, never the hash or the plaintext, revoked via the service."""

from __future__ import annotations

import hashlib

import pytest

from tests.support.factories import make_admin_token, make_workspace_token
from tokens.models import AdminToken, WorkspaceToken

pytestmark = pytest.mark.django_db


@pytest.fixture
def console(client, django_user_model):
    client.force_login(django_user_model.objects.create_superuser("olivia", "o@example.com", "pw"))
    return client


def test_token_pages_show_only_the_masked_token(console, workspace):
    plaintext = make_workspace_token(workspace, name="ci")
    admin_plaintext = make_admin_token("root")
    token = WorkspaceToken.objects.get(workspace=workspace)
    admin_token = AdminToken.objects.get()
    pages = [
        "/admin/tokens/workspacetoken/",
        f"/admin/tokens/workspacetoken/{token.id}/change/",
        "/admin/tokens/admintoken/",
        f"/admin/tokens/admintoken/{admin_token.id}/change/",
    ]
    for page in pages:
        html = console.get(page).content.decode()
        for raw in (plaintext, admin_plaintext):
            assert raw not in html, page
            assert hashlib.sha256(raw.encode()).hexdigest() not in html, page
    assert token.masked in console.get("/admin/tokens/workspacetoken/").content.decode()


def test_revoke_action_goes_through_the_service(console, workspace, api):
    plaintext = make_workspace_token(workspace, role="operator", name="ops")
    make_workspace_token(workspace, name="other")
    token = WorkspaceToken.objects.get(name="ops")
    response = console.post(
        "/admin/tokens/workspacetoken/",
        {"action": "revoke_selected", "_selected_action": [str(token.id)]},
        follow=True,
    )
    assert [str(m) for m in response.context["messages"]] == ["Revoked 1 token(s)."]
    token.refresh_from_db()
    assert token.revoked_at is not None
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {plaintext}")
    assert api.get(f"/workspaces/{workspace.id}").status_code == 401
    assert WorkspaceToken.objects.get(name="other").revoked_at is None

    again = console.post(
        "/admin/tokens/workspacetoken/",
        {"action": "revoke_selected", "_selected_action": [str(token.id)]},
        follow=True,
    )
    assert [str(m) for m in again.context["messages"]] == ["Revoked 0 token(s) (1 already revoked)."]


def test_admin_token_revoke_action(console):
    make_admin_token("root")
    token = AdminToken.objects.get()
    console.post(
        "/admin/tokens/admintoken/", {"action": "revoke_selected", "_selected_action": [str(token.id)]}
    )
    token.refresh_from_db()
    assert token.revoked_at is not None
