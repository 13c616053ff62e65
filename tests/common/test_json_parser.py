"""The default JSON parser: absurdly nested bodies are a 400, never a 500."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.django_db

DEEP = "[" * 100_000 + "]" * 100_000  # well under 1 MiB, far beyond Python's recursion limit


@pytest.mark.parametrize("path", ["/workspaces", "/workspaces/{id}/approvals", "/workspaces/{id}/schedules"])
def test_deeply_nested_body_is_invalid_request(as_admin, workspace, path):
    response = as_admin.post(path.format(id=workspace.id), data=DEEP, content_type="application/json")
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_request"


def test_ordinary_nesting_still_parses(as_admin, workspace):
    body = '{"action": "x", "metadata": ' + '{"k": ' * 10 + "1" + "}" * 10 + "}"
    response = as_admin.post(
        f"/workspaces/{workspace.id}/approvals", data=body, content_type="application/json"
    )
    assert response.status_code == 201
