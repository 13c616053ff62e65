"""List conventions (cursor pagination, constant query counts) and body size limits."""

from __future__ import annotations

import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from tests.support.factories import make_workspace, make_workspace_token
from workspaces.models import Workspace, WorkspaceMemory, WorkspaceSecret

pytestmark = pytest.mark.django_db


def _next_link(response) -> str | None:
    header = response.get("Link")
    if not header:
        return None
    match = re.match(r'<([^>]+)>; rel="next"', header)
    assert match, header
    return match.group(1)


def test_cursor_pagination_walks_every_row_once(as_admin):
    for i in range(7):
        make_workspace(f"w{i}")
    seen: list[str] = []
    url = "/workspaces?limit=3"
    pages = 0
    while url:
        response = as_admin.get(url)
        assert response.status_code == 200
        assert isinstance(response.json(), list)
        seen += [w["name"] for w in response.json()]
        url = _next_link(response)
        pages += 1
    assert pages == 3
    assert seen == [f"w{i}" for i in reversed(range(7))]


def test_cursor_is_stable_while_rows_are_inserted(as_admin):
    for i in range(4):
        make_workspace(f"old{i}")
    first = as_admin.get("/workspaces?limit=2")
    make_workspace("brand-new")  # newer than everything: must not shift the next page
    second = as_admin.get(_next_link(first))
    assert [w["name"] for w in first.json()] == ["old3", "old2"]
    assert [w["name"] for w in second.json()] == ["old1", "old0"]
    assert _next_link(second) is None


def test_no_link_when_everything_fits(as_admin):
    make_workspace("only")
    response = as_admin.get("/workspaces")
    assert "Link" not in response


@pytest.mark.parametrize("limit, status", [("1", 200), ("200", 200), ("0", 400), ("201", 400), ("x", 400)])
def test_limit_edges(as_admin, limit, status):
    response = as_admin.get(f"/workspaces?limit={limit}")
    assert response.status_code == status
    if status == 400:
        assert response.json()["code"] == "invalid_parameter"
        assert "limit" in response.json()["details"]


def test_limit_200_returns_200_rows(as_admin):
    Workspace.objects.bulk_create([Workspace(name=f"b{i}", runtime="langgraph") for i in range(201)])
    response = as_admin.get("/workspaces?limit=200")
    assert len(response.json()) == 200
    assert _next_link(response)


@pytest.mark.parametrize("cursor", ["garbage", "eyJ4IjoxfQ", "WzEsMiwzXQ", "WyJub3QtYS1kYXRlIiwiMSJd"])
def test_bad_cursor_is_invalid_parameter(as_admin, cursor):
    response = as_admin.get(f"/workspaces?cursor={cursor}")
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_parameter"


def _count_queries(client, url) -> int:
    client.get(url)  # warm up: the token's once-a-minute last_used_at update is not per row
    with CaptureQueriesContext(connection) as ctx:
        response = client.get(url)
    assert response.status_code == 200
    return len(ctx.captured_queries)


def _grow(workspace, n: int) -> None:
    WorkspaceSecret.objects.bulk_create(
        [WorkspaceSecret(workspace=workspace, key=f"K{i}_{n}", value="v") for i in range(n)]
    )
    WorkspaceMemory.objects.bulk_create(
        [WorkspaceMemory(workspace=workspace, key=f"k{i}-{n}", value=i) for i in range(n)]
    )
    for i in range(n):
        make_workspace_token(workspace, name=f"t{i}-{n}")
    Workspace.objects.bulk_create(
        [Workspace(name=f"c{i}-{n}", runtime="langgraph", parent=workspace) for i in range(n)]
    )


@pytest.mark.parametrize("suffix", ["", "/secrets", "/memory", "/tokens"])
def test_list_query_count_is_constant(as_admin, workspace, suffix):
    url = "/workspaces?limit=200" if suffix == "" else f"/workspaces/{workspace.id}{suffix}?limit=200"
    _grow(workspace, 1)
    small = _count_queries(as_admin, url)
    _grow(workspace, 48)  # tokens stay under the 50 limit
    large = _count_queries(as_admin, url)
    assert small == large
    assert len(as_admin.get(url).json()) >= 49


def test_workspace_list_query_count_1_vs_100(as_admin):
    make_workspace("one")
    one = _count_queries(as_admin, "/workspaces?limit=200")
    Workspace.objects.bulk_create([Workspace(name=f"n{i}", runtime="langgraph") for i in range(99)])
    hundred = _count_queries(as_admin, "/workspaces?limit=200")
    assert one == hundred


MIB = 1024 * 1024


def _json_of_size(size: int) -> bytes:
    """A JSON object of exactly `size` bytes: {"name":"x","config":{"pad":"....."}}."""
    head = b'{"name":"x","config":{"pad":"'
    tail = b'"}}'
    return head + b"a" * (size - len(head) - len(tail)) + tail


def test_body_limit_edges(as_admin):
    exact = _json_of_size(MIB)
    assert len(exact) == MIB
    ok = as_admin.generic("POST", "/workspaces", exact, content_type="application/json")
    assert ok.status_code == 201, ok.content[:200]
    over = as_admin.generic("POST", "/workspaces", _json_of_size(MIB + 1), content_type="application/json")
    assert over.status_code == 413
    assert over.json()["code"] == "payload_too_large"
    assert Workspace.objects.count() == 1


def test_body_limit_applies_before_auth_and_parsing(api):
    response = api.generic("POST", "/workspaces", b"{" * (MIB + 1), content_type="application/json")
    assert response.status_code == 413


def test_request_id_is_echoed_or_generated(api):
    response = api.get("/health", HTTP_X_REQUEST_ID="abc-123")
    assert response["X-Request-Id"] == "abc-123"
    generated = api.get("/health", HTTP_X_REQUEST_ID="bad id with spaces")
    assert re.fullmatch(r"[0-9a-f]{32}", generated["X-Request-Id"])


def test_unknown_path_and_method(as_admin):
    missing = as_admin.get("/nope")
    assert missing.status_code == 404
    assert missing.json() == {"error": "Not found.", "code": "not_found"}
    wrong = as_admin.put("/workspaces", {}, format="json")
    assert wrong.status_code == 405
    assert wrong.json()["code"] == "method_not_allowed"


def test_non_json_content_type_is_415(as_admin):
    response = as_admin.generic(
        "POST", "/workspaces", b"name=x", content_type="application/x-www-form-urlencoded"
    )
    assert response.status_code == 415
    assert response.json()["code"] == "unsupported_media_type"
