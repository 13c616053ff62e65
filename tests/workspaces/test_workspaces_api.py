"""Workspace CRUD, heartbeat, tree rules (SPEC §3)."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from django.utils import timezone

from tests.support.factories import bearer, make_workspace, make_workspace_token
from tokens.models import WorkspaceToken
from workspaces.models import Workspace, WorkspaceMemory, WorkspaceSecret

pytestmark = pytest.mark.django_db


def test_create_with_defaults(as_admin):
    response = as_admin.post("/workspaces", {"name": "root"}, format="json")
    assert response.status_code == 201, response.json()
    body = response.json()
    assert set(body) == {
        "id",
        "name",
        "role",
        "runtime",
        "tier",
        "parent_id",
        "url",
        "a2a_protocol",
        "status",
        "max_concurrent_tasks",
        "active_tasks",
        "current_task",
        "last_heartbeat_at",
        "config",
        "created_at",
        "updated_at",
    }
    assert body["runtime"] == "langgraph"
    assert body["tier"] == 2
    assert body["status"] == "unknown"
    assert body["max_concurrent_tasks"] == 1
    assert body["a2a_protocol"] == "auto"
    assert body["config"] == {}
    assert body["created_at"].endswith("Z")


def test_create_full_and_trailing_slash(as_admin, workspace):
    payload = {
        "name": "child",
        "role": "writer",
        "runtime": "claude_code",
        "tier": 4,
        "parent_id": str(workspace.id),
        "url": "https://agent.example.test/a2a",
        "max_concurrent_tasks": 3,
        "config": {"model": "x"},
    }
    response = as_admin.post("/workspaces/", payload, format="json")
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["runtime"] == "claude-code"
    assert body["parent_id"] == str(workspace.id)
    assert body["config"] == {"model": "x"}


@pytest.mark.parametrize(
    "payload, field",
    [
        ({}, "name"),
        ({"name": ""}, "name"),
        ({"name": "x" * 201}, "name"),
        ({"name": "a", "tier": 0}, "tier"),
        ({"name": "a", "tier": 5}, "tier"),
        ({"name": "a", "runtime": "cobol"}, "runtime"),
        ({"name": "a", "url": "ftp://x"}, "url"),
        ({"name": "a", "url": "http://169.254.169.254/"}, "url"),
        ({"name": "a", "max_concurrent_tasks": 0}, "max_concurrent_tasks"),
        ({"name": "a", "config": [1, 2]}, "config"),
    ],
)
def test_create_validation(as_admin, payload, field):
    response = as_admin.post("/workspaces", payload, format="json")
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "invalid_request"
    assert field in body["details"]


def test_tier_edges_accepted(as_admin):
    for tier in (1, 4):
        assert as_admin.post("/workspaces", {"name": "t", "tier": tier}, format="json").status_code == 201


@pytest.mark.parametrize("field", ["id", "workspace_id", "created_at", "status", "active_tasks", "bogus"])
def test_unknown_and_read_only_fields_refused(as_admin, field):
    response = as_admin.post("/workspaces", {"name": "a", field: "x"}, format="json")
    assert response.status_code == 400
    assert response.json()["code"] == "unknown_field"
    assert field in response.json()["details"]
    assert Workspace.objects.count() == 0


def test_unknown_parent(as_admin):
    response = as_admin.post("/workspaces", {"name": "a", "parent_id": str(uuid.uuid4())}, format="json")
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_parent"


def test_malformed_json_body(as_admin):
    response = as_admin.post("/workspaces", data="{not json", content_type="application/json")
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_request"


def test_non_object_body(as_admin):
    response = as_admin.post("/workspaces", data="[1]", content_type="application/json")
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_request"


def test_bad_uuid_in_path_is_404(as_admin):
    for path in ("/workspaces/not-a-uuid", "/workspaces/123/secrets", "/workspaces/xyz/tokens/abc"):
        response = as_admin.get(path)
        assert response.status_code == 404
        assert response.json() == {"error": "Not found.", "code": "not_found"}


def test_get_missing_workspace_as_admin_is_404(as_admin):
    response = as_admin.get(f"/workspaces/{uuid.uuid4()}")
    assert response.status_code == 404
    assert response.json()["code"] == "not_found"


def test_patch_by_workspace_token(as_agent, workspace):
    response = as_agent.patch(
        f"/workspaces/{workspace.id}", {"name": "renamed", "config": {"a": 1}}, format="json"
    )
    assert response.status_code == 200, response.json()
    assert response.json()["name"] == "renamed"
    assert response.json()["config"] == {"a": 1}


@pytest.mark.parametrize("field, value", [("runtime", "crewai"), ("tier", 3), ("parent_id", None)])
def test_patch_admin_only_fields_forbidden_for_workspace_token(as_agent, workspace, field, value):
    response = as_agent.patch(f"/workspaces/{workspace.id}", {field: value}, format="json")
    assert response.status_code == 403
    assert response.json()["code"] == "forbidden"


def test_patch_admin_only_fields_as_admin(as_admin, workspace, other_workspace):
    response = as_admin.patch(
        f"/workspaces/{workspace.id}",
        {"runtime": "crewai", "tier": 3, "parent_id": str(other_workspace.id)},
        format="json",
    )
    assert response.status_code == 200, response.json()
    assert response.json()["parent_id"] == str(other_workspace.id)
    assert response.json()["runtime"] == "crewai"


def test_a2a_protocol_is_not_for_the_agent_token(as_agent, workspace):
    response = as_agent.patch(f"/workspaces/{workspace.id}", {"a2a_protocol": "0.3"}, format="json")
    assert response.status_code == 403
    assert response.json()["code"] == "forbidden"
    workspace.refresh_from_db()
    assert workspace.a2a_protocol == "auto"


@pytest.mark.parametrize("value", ["1.0", "0.3", "auto"])
def test_a2a_protocol_set_by_operator_token(api, workspace, operator_token, value):
    api.credentials(**bearer(operator_token))
    workspace.a2a_protocol = "0.3" if value != "0.3" else "1.0"
    workspace.save(update_fields=["a2a_protocol"])
    response = api.patch(f"/workspaces/{workspace.id}", {"a2a_protocol": value}, format="json")
    assert response.status_code == 200, response.json()
    assert response.json()["a2a_protocol"] == value
    workspace.refresh_from_db()
    assert workspace.a2a_protocol == value


def test_a2a_protocol_set_by_admin_on_create_and_patch(as_admin, workspace):
    created = as_admin.post("/workspaces", {"name": "old agent", "a2a_protocol": "0.3"}, format="json")
    assert created.status_code == 201, created.json()
    assert created.json()["a2a_protocol"] == "0.3"
    response = as_admin.patch(f"/workspaces/{workspace.id}", {"a2a_protocol": "1.0"}, format="json")
    assert (response.status_code, response.json()["a2a_protocol"]) == (200, "1.0")


@pytest.mark.parametrize("value", ["2.0", "1", "0.2", "", None, 1.0])
def test_a2a_protocol_other_values_are_refused(as_admin, workspace, value):
    response = as_admin.patch(f"/workspaces/{workspace.id}", {"a2a_protocol": value}, format="json")
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_request"
    assert "a2a_protocol" in response.json()["details"]


def test_parent_cycle_refused(as_admin):
    a = make_workspace("a")
    b = make_workspace("b", parent_id=a.id)
    c = make_workspace("c", parent_id=b.id)
    for target, parent in ((a, c), (a, b), (a, a)):
        response = as_admin.patch(f"/workspaces/{target.id}", {"parent_id": str(parent.id)}, format="json")
        assert response.status_code == 400, (target.name, parent.name)
        assert response.json()["code"] == "invalid_parent"
    a.refresh_from_db()
    assert a.parent_id is None
    # moving a leaf elsewhere and detaching are fine
    assert as_admin.patch(f"/workspaces/{c.id}", {"parent_id": str(a.id)}, format="json").status_code == 200
    assert as_admin.patch(f"/workspaces/{c.id}", {"parent_id": None}, format="json").status_code == 200


def test_delete_with_children_needs_cascade(as_admin):
    root = make_workspace("root")
    child = make_workspace("child", parent_id=root.id)
    grandchild = make_workspace("grandchild", parent_id=child.id)
    for ws in (root, child, grandchild):
        make_workspace_token(ws)
        WorkspaceSecret.objects.create(workspace=ws, key="API_KEY", value="v")
        WorkspaceMemory.objects.create(workspace=ws, key="k", value=1)

    response = as_admin.delete(f"/workspaces/{root.id}")
    assert response.status_code == 409
    assert response.json()["code"] == "has_children"
    assert Workspace.objects.count() == 3

    assert as_admin.delete(f"/workspaces/{root.id}?cascade=maybe").status_code == 400
    assert as_admin.delete(f"/workspaces/{root.id}?cascade=true").status_code == 204
    assert Workspace.objects.count() == 0
    assert WorkspaceToken.objects.count() == 0
    assert WorkspaceSecret.objects.count() == 0
    assert WorkspaceMemory.objects.count() == 0


def test_delete_leaf(as_admin, workspace):
    assert as_admin.delete(f"/workspaces/{workspace.id}").status_code == 204
    assert as_admin.get(f"/workspaces/{workspace.id}").status_code == 404


def test_delete_needs_admin(as_agent, workspace):
    response = as_agent.delete(f"/workspaces/{workspace.id}")
    assert response.status_code == 403
    assert Workspace.objects.filter(pk=workspace.pk).exists()


def test_heartbeat_and_status(as_agent, workspace):
    response = as_agent.post(
        f"/workspaces/{workspace.id}/heartbeat", {"active_tasks": 1, "current_task": "writing"}, format="json"
    )
    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["status"] == "online"
    assert body["active_tasks"] == 1
    assert body["current_task"] == "writing"
    Workspace.objects.filter(pk=workspace.pk).update(last_heartbeat_at=timezone.now() - timedelta(seconds=91))
    assert as_agent.get(f"/workspaces/{workspace.id}").json()["status"] == "offline"


@pytest.mark.parametrize("payload", [{}, {"active_tasks": -1}, {"active_tasks": "many"}])
def test_heartbeat_validation(as_agent, workspace, payload):
    response = as_agent.post(f"/workspaces/{workspace.id}/heartbeat", payload, format="json")
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_request"


def test_list_filters(as_admin):
    root = make_workspace("root", runtime="crewai")
    make_workspace("kid", parent_id=root.id, runtime="claude-code")
    make_workspace("other")
    names = lambda r: sorted(w["name"] for w in r.json())  # noqa: E731
    assert names(as_admin.get(f"/workspaces?parent_id={root.id}")) == ["kid"]
    assert names(as_admin.get("/workspaces?parent_id=null")) == ["other", "root"]
    assert names(as_admin.get("/workspaces?runtime=claude_code")) == ["kid"]
    bad = as_admin.get("/workspaces?parent_id=nope")
    assert bad.status_code == 400
    assert bad.json()["code"] == "invalid_parameter"
    assert as_admin.get("/workspaces?unknown=1").status_code == 200


def test_list_is_newest_first(as_admin):
    for name in ("one", "two", "three"):
        make_workspace(name)
    assert [w["name"] for w in as_admin.get("/workspaces").json()] == ["three", "two", "one"]


def test_admin_list_needs_admin(api, workspace, agent_token):
    api.credentials(**bearer(agent_token))
    assert api.get("/workspaces").status_code == 403
