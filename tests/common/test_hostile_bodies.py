"""Hostile JSON bodies are a 400 in the error shape, never a 500 (found by fuzzing every route)."""

from __future__ import annotations

import json

import pytest

from workspaces.models import Workspace

pytestmark = pytest.mark.django_db

DEEP = "[" * 5000 + "]" * 5000


def _assert_error(response, status: int, code: str) -> None:
    assert response.status_code == status, response.content[:300]
    body = response.json()
    assert body["code"] == code
    assert set(body) <= {"error", "code", "details"}


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("post", "/workspaces"),
        ("patch", "/workspaces/{ws}"),
        ("post", "/admin/workspaces/{ws}/tokens"),
        ("put", "/workspaces/{ws}/memory/NOTES"),
        ("post", "/org/import"),
        ("post", "/channels/discover"),
        ("post", "/bundles/import"),
    ],
)
def test_absurdly_nested_json_is_400(as_admin, workspace, method, path):
    response = getattr(as_admin, method)(path.format(ws=workspace.id), DEEP, content_type="application/json")
    _assert_error(response, 400, "invalid_request")


@pytest.mark.parametrize(
    "payload",
    [
        {"config": {"\u0000": 1}},
        {"config": {"note": "a\u0000b"}},
        {"name": "a\u0000b"},
        {"config": {"list": ["ok", ["\ud800"]]}},
    ],
)
def test_nul_and_lone_surrogates_are_400_and_nothing_is_saved(as_admin, workspace, payload):
    before = Workspace.objects.get(pk=workspace.pk).config
    response = as_admin.patch(
        f"/workspaces/{workspace.id}", json.dumps(payload), content_type="application/json"
    )
    _assert_error(response, 400, "invalid_request")
    assert Workspace.objects.get(pk=workspace.pk).config == before


def test_nul_in_memory_value_is_400(as_admin, workspace):
    response = as_admin.put(
        f"/workspaces/{workspace.id}/memory/NOTES",
        json.dumps({"value": {"text": "x\u0000"}}),
        content_type="application/json",
    )
    _assert_error(response, 400, "invalid_request")


@pytest.mark.parametrize(
    ("path", "payload"),
    [
        ("/admin/workspaces/{ws}/tokens", {"role": "\ud800"}),
        ("/channels/discover", {"platform": "\ud800", "bot_token": "x"}),
        ("/workspaces", {"\ud800": 1, "name": "x"}),
    ],
)
def test_lone_surrogate_echoed_in_an_error_is_400_not_500(as_admin, workspace, path, payload):
    response = as_admin.post(
        path.format(ws=workspace.id), json.dumps(payload), content_type="application/json"
    )
    _assert_error(response, 400, "invalid_request")


def test_valid_unicode_still_round_trips(as_admin, workspace):
    payload = {"config": {"emoji": "😀", "escaped": "\u00e9"}}
    response = as_admin.patch(
        f"/workspaces/{workspace.id}", json.dumps(payload), content_type="application/json"
    )
    assert response.status_code == 200
    assert response.json()["config"] == payload["config"]
