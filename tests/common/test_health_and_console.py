"""/health, the root index, the echo agent command and the admin console pages."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.db import OperationalError
from django.test import Client

from integrations_project.celery import app
from tests.support.factories import make_workspace, make_workspace_token
from tests.support.fake_http import free_port
from tokens.models import AdminToken
from workspaces.models import WorkspaceSecret

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.django_db
def test_health_ok(api):
    response = api.get("/health")
    assert response.status_code == 200
    body = response.json()
    assert body.pop("broker_latency_ms") > 0
    assert body == {
        "status": "ok",
        "database": "ok",
        "broker": "ok",
        "scheduler_last_tick_at": None,
        "dispatch_lag_seconds": 0,
    }


@pytest.mark.django_db
def test_health_broker_down_is_degraded(api, monkeypatch):
    monkeypatch.setattr(app.conf, "broker_write_url", f"redis://127.0.0.1:{free_port()}/0")
    response = api.get("/health")
    assert response.status_code == 200
    assert response.json()["status"] == "degraded"
    assert response.json()["broker"] == "error"
    assert response.json()["broker_latency_ms"] is None


@pytest.mark.django_db
def test_health_database_down_is_503(api, monkeypatch):
    def broken(*args, **kwargs):
        raise OperationalError("connection refused")

    monkeypatch.setattr("integrations_project.health.connection.cursor", broken)
    response = api.get("/health")
    assert response.status_code == 503
    assert response.json()["database"] == "error"
    assert "refused" not in response.content.decode()


def test_index_lists_where_things_are(client):
    body = client.get("/").json()
    assert body["docs"].endswith("/api/docs/")
    assert body["admin"].endswith("/admin/")


@pytest.fixture
def staff_client(client, db):
    user = get_user_model().objects.create_superuser("ops", "ops@example.test", "pw")
    client.force_login(user)
    return client


@pytest.mark.django_db
def test_console_pages_render_without_secrets(staff_client):
    workspace = make_workspace("console-ws")
    plaintext = make_workspace_token(workspace, name="console-token")
    WorkspaceSecret.objects.create(workspace=workspace, key="API_KEY", value="super-secret-value")
    pages = [
        "/admin/",
        "/admin/workspaces/workspace/",
        f"/admin/workspaces/workspace/{workspace.id}/change/",
        "/admin/workspaces/workspacesecret/",
        f"/admin/workspaces/workspacesecret/{WorkspaceSecret.objects.get().id}/change/",
        "/admin/workspaces/workspacememory/",
        "/admin/tokens/workspacetoken/",
        "/admin/tokens/admintoken/",
        "/admin/tokens/admintoken/add/",
        "/admin/workspaces/workspace/?runtime=langgraph",
    ]
    for page in pages:
        response = staff_client.get(page)
        assert response.status_code == 200, page
        html = response.content.decode()
        assert "super-secret-value" not in html, page
        assert plaintext not in html, page
        assert plaintext[8:-4] not in html, page


@pytest.mark.django_db
def test_console_admin_token_shown_once(staff_client, api):
    response = staff_client.post(
        "/admin/tokens/admintoken/add/", {"name": "deploy-bot", "expires_in_days": ""}
    )
    assert response.status_code == 200
    html = response.content.decode()
    plaintext = re.search(r'value="(adm_[A-Za-z0-9]{40})"', html).group(1)
    assert "no-store" in response["Cache-Control"]
    token = AdminToken.objects.get(name="deploy-bot")
    assert token.created_by == "ops"
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {plaintext}")
    assert api.get("/workspaces").status_code == 200
    change = staff_client.get(f"/admin/tokens/admintoken/{token.pk}/change/").content.decode()
    assert plaintext not in change
    assert token.masked in change


@pytest.mark.django_db
def test_console_revoke_action(staff_client, api):
    workspace = make_workspace("w")
    plaintext = make_workspace_token(workspace, name="to-revoke")
    token_id = workspace.tokens.get().pk
    response = staff_client.post(
        "/admin/tokens/workspacetoken/",
        {"action": "revoke_selected", "_selected_action": [str(token_id)]},
        follow=True,
    )
    assert response.status_code == 200
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {plaintext}")
    assert api.get(f"/workspaces/{workspace.id}").status_code == 401


@pytest.mark.django_db
def test_console_secret_write_only(staff_client):
    workspace = make_workspace("w")
    response = staff_client.post(
        "/admin/workspaces/workspacesecret/add/",
        {"workspace": str(workspace.id), "key": "DB_PASSWORD", "new_value": "pa55"},
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    secret = WorkspaceSecret.objects.get(key="DB_PASSWORD")
    assert secret.value == "pa55"
    staff_client.post(
        f"/admin/workspaces/workspacesecret/{secret.pk}/change/",
        {"workspace": str(workspace.id), "key": "DB_PASSWORD", "new_value": ""},
    )
    secret.refresh_from_db()
    assert secret.value == "pa55"


@pytest.mark.parametrize("method", ["post", "put", "patch", "delete"])
def test_index_only_answers_get(method):
    client = Client(enforce_csrf_checks=True)
    response = getattr(client, method)("/")
    assert response.status_code == 405
    assert response.json()["code"] == "method_not_allowed"


@pytest.mark.parametrize("path", ["/admin/workspaces/nope/tokens", "/admin/workspaces/nope/tokens/"])
@pytest.mark.parametrize("method", ["get", "post"])
def test_admin_mint_route_with_malformed_id_is_json_404(as_admin, path, method):
    """The API route under /admin/ must not fall through to the console's login redirect."""
    response = getattr(as_admin, method)(path, {}, format="json")
    assert response.status_code == 404
    assert response.json() == {"error": "Not found.", "code": "not_found"}
