"""Every route of the foundation against every kind of credential (SPEC §2).

401 bodies are identical whatever the reason; a token of another workspace is 403 whether or
not the target exists; admin credentials on a missing workspace are 404.
"""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone
from rest_framework.test import APIClient

from tests.support.factories import bearer, make_admin_token, make_workspace, make_workspace_token
from tokens.models import AdminToken, WorkspaceToken
from workspaces.models import WorkspaceMemory, WorkspaceSecret

pytestmark = pytest.mark.django_db

ENV_ADMIN = "e" * 40
UNAUTHENTICATED = {
    "error": "Authentication credentials were not provided or are not valid.",
    "code": "unauthenticated",
}

# (method, path under /workspaces/{id} or absolute, body, success status)
WORKSPACE_ROUTES = [
    ("get", "", None, 200),
    ("patch", "", {"name": "renamed"}, 200),
    ("post", "/heartbeat", {"active_tasks": 0}, 200),
    ("get", "/secrets", None, 200),
    ("put", "/secrets/NEW_KEY", {"value": "s3cret"}, 200),
    ("delete", "/secrets/API_KEY", None, 204),
    ("get", "/memory", None, 200),
    ("put", "/memory/notes", {"value": {"a": 1}}, 200),
    ("delete", "/memory/existing", None, 204),
    ("get", "/tokens", None, 200),
    ("post", "/tokens", {"name": "n"}, 201),
    ("delete", "/tokens/{victim}", None, 204),
]
ADMIN_ROUTES = [
    ("get", "/workspaces", None, 200),
    ("post", "/workspaces", {"name": "new"}, 201),
    ("post", "/admin/workspaces/{id}/tokens", {}, 201),
    ("delete", "/workspaces/{id}", None, 204),
]


@pytest.fixture
def world(settings):
    settings.ADMIN_TOKEN = ENV_ADMIN
    ws = make_workspace("target")
    other = make_workspace("other")
    WorkspaceSecret.objects.create(workspace=ws, key="API_KEY", value="v")
    WorkspaceMemory.objects.create(workspace=ws, key="existing", value=1)
    make_workspace_token(ws, name="victim")
    revoked = make_workspace_token(ws, name="revoked")
    WorkspaceToken.objects.filter(name="revoked").update(revoked_at=timezone.now())
    expired = make_workspace_token(ws, name="expired", expires_in_days=1)
    WorkspaceToken.objects.filter(name="expired").update(expires_at=timezone.now() - timedelta(seconds=1))
    revoked_admin = make_admin_token("old-admin")
    AdminToken.objects.filter(name="old-admin").update(revoked_at=timezone.now())
    return {
        "ws": ws,
        "other": other,
        "victim": WorkspaceToken.objects.get(name="victim").id,
        "agent": make_workspace_token(ws, name="agent"),
        "operator": make_workspace_token(ws, role="operator", name="operator"),
        "other_token": make_workspace_token(other, name="other-agent"),
        "revoked": revoked,
        "expired": expired,
        "revoked_admin": revoked_admin,
        "admin": make_admin_token("root"),
    }


def _url(world, suffix, workspace_id=None):
    workspace_id = workspace_id or world["ws"].id
    if suffix.startswith("/workspaces") or suffix.startswith("/admin"):
        return suffix.format(id=workspace_id)
    return f"/workspaces/{workspace_id}" + suffix.format(victim=world["victim"])


def _call(client, method, url, body):
    return (
        getattr(client, method)(url, body, format="json")
        if body is not None
        else getattr(client, method)(url)
    )


def _client(credential=None, header=None):
    client = APIClient()
    if header is not None:
        client.credentials(HTTP_AUTHORIZATION=header)
    elif credential is not None:
        client.credentials(**bearer(credential))
    return client


BAD_CREDENTIALS = {
    "none": lambda w: _client(),
    "malformed_scheme": lambda w: _client(header="Token abc"),
    "malformed_empty": lambda w: _client(header="Bearer "),
    "malformed_shape": lambda w: _client(header="Bearer wst_tooshort"),
    "unknown_workspace_token": lambda w: _client("wst_" + "A" * 40),
    "unknown_admin_token": lambda w: _client("adm_" + "A" * 40),
    "revoked": lambda w: _client(w["revoked"]),
    "expired": lambda w: _client(w["expired"]),
    "revoked_admin": lambda w: _client(w["revoked_admin"]),
    "short_env_like": lambda w: _client(ENV_ADMIN[:-1]),
}


@pytest.mark.parametrize("kind", sorted(BAD_CREDENTIALS))
@pytest.mark.parametrize("method, suffix, body, _ok", WORKSPACE_ROUTES + ADMIN_ROUTES)
def test_bad_credentials_are_401_with_one_body(world, kind, method, suffix, body, _ok):
    response = _call(BAD_CREDENTIALS[kind](world), method, _url(world, suffix), body)
    assert response.status_code == 401, response.content
    assert response.json() == UNAUTHENTICATED
    assert response["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.parametrize("method, suffix, body, _ok", WORKSPACE_ROUTES)
@pytest.mark.parametrize("target", ["existing", "missing"])
def test_other_workspace_token_is_403(world, method, suffix, body, _ok, target):
    workspace_id = world["ws"].id if target == "existing" else uuid.uuid4()
    response = _call(_client(world["other_token"]), method, _url(world, suffix, workspace_id), body)
    assert response.status_code == 403
    assert response.json()["code"] == "forbidden"


# Routes of its own workspace an agent token may not use (only operators and admins mint).
AGENT_FORBIDDEN = {("post", "/tokens")}


@pytest.mark.parametrize("role", ["agent", "operator"])
@pytest.mark.parametrize("method, suffix, body, ok", WORKSPACE_ROUTES)
def test_own_workspace_token_succeeds(world, role, method, suffix, body, ok):
    response = _call(_client(world[role]), method, _url(world, suffix), body)
    if role == "agent" and (method, suffix) in AGENT_FORBIDDEN:
        ok = 403
    assert response.status_code == ok, response.content


@pytest.mark.parametrize("role", ["agent", "operator"])
@pytest.mark.parametrize("method, suffix, body, _ok", ADMIN_ROUTES)
def test_workspace_token_on_admin_routes_is_403(world, role, method, suffix, body, _ok):
    response = _call(_client(world[role]), method, _url(world, suffix), body)
    assert response.status_code == 403
    assert response.json()["code"] == "forbidden"


def _admin_client(world, kind):
    if kind == "admin_token":
        return _client(world["admin"])
    if kind == "env_admin":
        return _client(ENV_ADMIN)
    user = get_user_model().objects.create_user("staff", password="pw", is_staff=True, is_superuser=True)
    client = APIClient()
    client.force_login(user)
    return client


@pytest.mark.parametrize("kind", ["admin_token", "env_admin", "staff"])
@pytest.mark.parametrize("method, suffix, body, ok", WORKSPACE_ROUTES + ADMIN_ROUTES)
def test_admin_credentials_succeed(world, kind, method, suffix, body, ok):
    response = _call(_admin_client(world, kind), method, _url(world, suffix), body)
    assert response.status_code == ok, response.content


@pytest.mark.parametrize("kind", ["admin_token", "env_admin", "staff"])
@pytest.mark.parametrize("method, suffix, body, _ok", WORKSPACE_ROUTES + ADMIN_ROUTES[2:])
def test_admin_credentials_on_missing_workspace_are_404(world, kind, method, suffix, body, _ok):
    response = _call(_admin_client(world, kind), method, _url(world, suffix, uuid.uuid4()), body)
    assert response.status_code == 404
    assert response.json()["code"] == "not_found"


def test_non_staff_session_is_not_admin(world):
    user = get_user_model().objects.create_user("plain", password="pw", is_staff=False)
    client = APIClient()
    client.force_login(user)
    assert client.get("/workspaces").status_code == 401


def test_staff_session_needs_csrf_for_writes(world):
    user = get_user_model().objects.create_user("staff2", password="pw", is_staff=True, is_superuser=True)
    client = APIClient(enforce_csrf_checks=True)
    client.force_login(user)
    assert client.get("/workspaces").status_code == 200
    response = client.post("/workspaces", {"name": "x"}, format="json")
    assert response.status_code == 403
    assert response.json()["code"] == "forbidden"


def test_agent_and_operator_differences(world):
    ws = world["ws"]
    for role in ("agent", "operator"):
        client = _client(world[role])
        assert client.delete(f"/workspaces/{ws.id}").status_code == 403
        assert client.patch(f"/workspaces/{ws.id}", {"tier": 1}, format="json").status_code == 403
    for role in ("agent", "operator"):
        agent_try = _client(world["agent"]).post(f"/workspaces/{ws.id}/tokens", {"role": role}, format="json")
        assert agent_try.status_code == 403
    operator_try = _client(world["operator"]).post(
        f"/workspaces/{ws.id}/tokens", {"role": "operator"}, format="json"
    )
    assert operator_try.status_code == 201


@pytest.mark.parametrize(("length", "status"), [(31, 401), (32, 200)])
def test_env_admin_token_needs_32_characters(db, settings, length, status):
    """gunicorn does not run `manage.py check`, so a short ADMIN_TOKEN must not work at all."""
    settings.ADMIN_TOKEN = "k" * length
    client = APIClient()
    client.credentials(**bearer("k" * length))
    response = client.get("/workspaces")
    assert response.status_code == status
    if status == 401:
        assert response.json()["code"] == "unauthenticated"
