"""Conventions every route of docs/openapi.yaml keeps (SPEC §1), checked route by route.

Both slash forms resolve; a malformed id in the path is a JSON 404; hostile bodies are a 4xx
in the error shape (never a 500, never a redirect).
"""

from __future__ import annotations

import json
import re
import uuid
from pathlib import Path

import pytest
import yaml
from django.urls import Resolver404, resolve

ROOT = Path(__file__).resolve().parents[2]
SPEC = yaml.safe_load((ROOT / "docs" / "openapi.yaml").read_text())
PLACEHOLDERS = {"platform": "telegram", "key": "GOOD_KEY", "name": "demo"}
OPERATIONS = [
    (path, method)
    for path, item in SPEC["paths"].items()
    for method in item
    if method in {"get", "post", "put", "patch", "delete"}
]
HOSTILE_BODIES = [
    "[" * 5000 + "]" * 5000,
    json.dumps({"name": "a\u0000b", "value": "x\u0000", "text": "\u0000", "action": "\u0000"}),
    json.dumps({"name": "\ud800", "platform": "\ud800", "role": "\ud800", "source": "\ud800"}),
    json.dumps({"\ud800": 1}),
    '{"value": 1e999}',
    "{not json",
    "[]",
]


def _fill(path: str, workspace_id: str, other: str) -> str:
    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        if name == "workspace_id":
            return workspace_id
        return PLACEHOLDERS.get(name, other)

    return re.sub(r"{(\w+)}", value, path)


def _assert_error_shape(response) -> None:
    body = response.json()
    assert isinstance(body, dict) and {"error", "code"} <= set(body) <= {"error", "code", "details"}


@pytest.mark.parametrize("path", sorted(SPEC["paths"]))
def test_both_slash_forms_resolve(path):
    concrete = _fill(path, str(uuid.uuid4()), str(uuid.uuid4()))
    for form in (concrete, concrete + "/"):
        try:
            resolve(form)
        except Resolver404:  # pragma: no cover - the failure message is the point
            pytest.fail(f"{form} does not resolve")


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("path", "method"),
    [op for op in OPERATIONS if set(re.findall(r"{(\w+)}", op[0])) - set(PLACEHOLDERS)],
)
@pytest.mark.parametrize("bad", ["not-a-uuid", "1", "%00", "x" * 300])
def test_malformed_ids_are_json_404(as_admin, path, method, bad):
    names = re.findall(r"{(\w+)}", path)
    id_names = [n for n in names if n not in PLACEHOLDERS]
    concrete = re.sub(r"{(\w+)}", lambda m: bad if m.group(1) in id_names else PLACEHOLDERS[m.group(1)], path)
    response = as_admin.generic(method.upper(), concrete, "{}", content_type="application/json")
    assert response.status_code == 404, (concrete, response.status_code)
    _assert_error_shape(response)


@pytest.mark.django_db
@pytest.mark.parametrize(("path", "method"), [op for op in OPERATIONS if op[1] in {"post", "put", "patch"}])
def test_hostile_bodies_never_500(as_admin, workspace, path, method):
    url = _fill(path, str(workspace.id), str(uuid.uuid4()))
    for body in HOSTILE_BODIES:
        response = as_admin.generic(method.upper(), url, body, content_type="application/json")
        assert 400 <= response.status_code < 500, (url, body[:40], response.status_code)
        _assert_error_shape(response)


@pytest.mark.django_db
@pytest.mark.parametrize(
    "suffix",
    ["/secrets/%00", "/secrets/A%00B", "/memory/%00", "/plugins/%00", "/plugins/a%00/download"],
)
@pytest.mark.parametrize("method", ["get", "put", "delete"])
def test_nul_in_a_path_segment_is_404(as_admin, workspace, suffix, method):
    response = as_admin.generic(
        method.upper(),
        f"/workspaces/{workspace.id}{suffix}",
        '{"value": "v"}',
        content_type="application/json",
    )
    assert response.status_code in {404, 405}, response.status_code
    _assert_error_shape(response)


@pytest.mark.django_db
def test_nul_in_webhook_type_is_404(api):
    response = api.post("/webhooks/tele%00gram", b"{}", content_type="application/json")
    assert response.status_code == 404
    _assert_error_shape(response)
