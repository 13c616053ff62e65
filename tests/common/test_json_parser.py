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


@pytest.mark.parametrize("number", ["1e400", "-1e400", "1.5e999"])
def test_numbers_beyond_a_double_are_invalid_request(as_admin, workspace, number):
    # Python reads them as inf, which PostgreSQL jsonb refuses: this was a 500.
    body = '{"action": "x", "metadata": {"n": ' + number + "}}"
    response = as_admin.post(
        f"/workspaces/{workspace.id}/approvals", data=body, content_type="application/json"
    )
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_request"


def test_large_but_finite_numbers_are_kept(as_admin, workspace):
    body = '{"action": "x", "metadata": {"n": 1.5e300, "i": 12345678901234567890}}'
    response = as_admin.post(
        f"/workspaces/{workspace.id}/approvals", data=body, content_type="application/json"
    )
    assert response.status_code == 201
    assert response.json()["metadata"] == {"n": 1.5e300, "i": 12345678901234567890}
