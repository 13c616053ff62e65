"""Secrets (encrypted at rest, never returned) and memory (any JSON)."""

from __future__ import annotations

import pytest
from cryptography.fernet import Fernet
from django.db import connection

from common import crypto
from workspaces.models import WorkspaceMemory, WorkspaceSecret

pytestmark = pytest.mark.django_db


def _raw_value(secret_id: int) -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT value FROM workspaces_workspacesecret WHERE id = %s", [secret_id])
        return cursor.fetchone()[0]


def test_put_list_delete_secret(as_agent, workspace):
    url = f"/workspaces/{workspace.id}/secrets/OPENAI_API_KEY"
    response = as_agent.put(url, {"value": "sk-live-123"}, format="json")
    assert response.status_code == 200, response.json()
    assert set(response.json()) == {"key", "created_at", "updated_at"}
    listed = as_agent.get(f"/workspaces/{workspace.id}/secrets")
    assert listed.json() == [response.json()] or listed.json()[0]["key"] == "OPENAI_API_KEY"
    assert "sk-live-123" not in listed.content.decode()

    secret = WorkspaceSecret.objects.get(workspace=workspace)
    raw = _raw_value(secret.id)
    assert "sk-live-123" not in raw
    assert secret.value == "sk-live-123"

    # overwrite keeps one row
    as_agent.put(url, {"value": "sk-live-456"}, format="json")
    assert WorkspaceSecret.objects.get(workspace=workspace).value == "sk-live-456"

    assert as_agent.delete(url).status_code == 204
    again = as_agent.delete(url)
    assert again.status_code == 404
    assert again.json()["code"] == "not_found"


@pytest.mark.parametrize(
    "key, status",
    [("A", 200), ("A" + "B" * 127, 200), ("A" + "B" * 128, 400), ("lower", 400), ("1ABC", 400), ("A-B", 400)],
)
def test_secret_key_pattern_edges(as_agent, workspace, key, status):
    response = as_agent.put(f"/workspaces/{workspace.id}/secrets/{key}", {"value": "v"}, format="json")
    assert response.status_code == status
    if status == 400:
        assert response.json()["code"] == "invalid_request"
        assert "key" in response.json()["details"]


@pytest.mark.parametrize("body", [{}, {"value": ""}, {"value": 5}, {"value": "x", "extra": 1}])
def test_secret_value_validation(as_agent, workspace, body):
    response = as_agent.put(f"/workspaces/{workspace.id}/secrets/KEY", body, format="json")
    assert response.status_code == 400
    assert WorkspaceSecret.objects.count() == 0


def test_key_rotation_with_two_keys(settings, workspace):
    old_key = Fernet.generate_key().decode()
    new_key = Fernet.generate_key().decode()
    settings.ENCRYPTION_KEYS = [old_key]
    secret = WorkspaceSecret.objects.create(workspace=workspace, key="TOKEN", value="before-rotation")
    raw_before = _raw_value(secret.id)
    assert Fernet(old_key.encode()).decrypt(raw_before.encode()) == b"before-rotation"

    settings.ENCRYPTION_KEYS = [new_key, old_key]  # newest first
    assert WorkspaceSecret.objects.get(pk=secret.pk).value == "before-rotation"
    WorkspaceSecret.objects.create(workspace=workspace, key="NEW", value="after")
    raw_new = _raw_value(WorkspaceSecret.objects.get(key="NEW").id)
    assert Fernet(new_key.encode()).decrypt(raw_new.encode()) == b"after"

    settings.ENCRYPTION_KEYS = [new_key]
    with pytest.raises(crypto.DecryptionError):
        WorkspaceSecret.objects.get(pk=secret.pk)


def test_rotate_secrets_command_reencrypts_with_newest_key(settings, workspace):
    from django.core.management import call_command

    old_key = Fernet.generate_key().decode()
    new_key = Fernet.generate_key().decode()
    settings.ENCRYPTION_KEYS = [old_key]
    secret = WorkspaceSecret.objects.create(workspace=workspace, key="TOKEN", value="v1")
    settings.ENCRYPTION_KEYS = [new_key, old_key]
    call_command("rotate_encryption_keys", verbosity=0)
    settings.ENCRYPTION_KEYS = [new_key]
    assert WorkspaceSecret.objects.get(pk=secret.pk).value == "v1"


def test_memory_any_json(as_agent, workspace):
    base = f"/workspaces/{workspace.id}/memory"
    values = {"plan": {"steps": [1, 2]}, "count": 3, "flag": False, "nothing": None, "text": "hi"}
    for key, value in values.items():
        response = as_agent.put(f"{base}/{key}", {"value": value}, format="json")
        assert response.status_code == 200, response.json()
        assert response.json()["value"] == value
    listed = as_agent.get(base).json()
    assert {item["key"]: item["value"] for item in listed} == values
    assert [item["key"] for item in listed] == sorted(values)
    assert as_agent.delete(f"{base}/plan").status_code == 204
    assert as_agent.delete(f"{base}/plan").status_code == 404


def test_memory_needs_value_field(as_agent, workspace):
    response = as_agent.put(f"/workspaces/{workspace.id}/memory/k", {}, format="json")
    assert response.status_code == 400
    assert "value" in response.json()["details"]
    bad_key = as_agent.put(f"/workspaces/{workspace.id}/memory/-bad", {"value": 1}, format="json")
    assert bad_key.status_code == 400


@pytest.mark.parametrize("kind, key", [("secrets", "API_KEY%0A"), ("memory", "notes%0A")])
def test_key_with_trailing_newline_is_refused(as_agent, workspace, kind, key):
    """`$` in the key patterns matches before a final newline; the whole key must match."""
    response = as_agent.put(f"/workspaces/{workspace.id}/{kind}/{key}", {"value": "v"}, format="json")
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_request"
    assert "key" in response.json()["details"]
    assert not WorkspaceSecret.objects.exists()
    assert not WorkspaceMemory.objects.exists()


def test_imported_keys_must_match_whole_pattern():
    """Bundles and org imports use the same key rules as the API."""
    from templates_app.schemas import BUNDLE_NODE, ORG_NODE
    from templates_app.sections import check_secret_key

    assert check_secret_key("API_KEY") is None
    assert check_secret_key("API_KEY\n") is not None
    for schema in (BUNDLE_NODE, ORG_NODE):
        assert list(schema.problems({"name": "a", "memory": {"notes": 1}})) == []
        [(location, message)] = schema.problems({"name": "a", "memory": {"notes\n": 1}}, at="n")
        assert location == "n.memory" and message.startswith("Memory key 'notes\\n' must match")
