"""The OpenAPI schema states what the server enforces, and the server answers what it states
(issue 16, part 1). The in-process fuzzing is tests/test_schemathesis.py; these are the edges."""

from __future__ import annotations

from typing import Any

import pytest
from drf_spectacular.generators import SchemaGenerator

from plugins_app.services import plugin_install_request
from tests.support.factories import bearer, make_workspace


@pytest.fixture(scope="module")
def spec(django_db_setup, django_db_blocker) -> dict[str, Any]:
    with django_db_blocker.unblock():
        return SchemaGenerator().get_schema(request=None, public=True)


def operations(spec: dict[str, Any]):
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            yield method.upper(), path, operation


def component(spec: dict[str, Any], name: str) -> dict[str, Any]:
    return spec["components"]["schemas"][name]


# --- OPTIONS ------------------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("suffix", ["secrets/API_KEY", "memory/notes", "secrets", "memory", ""])
def test_options_answers_without_a_500(as_admin, workspace, suffix):
    response = as_admin.options(f"/workspaces/{workspace.pk}/{suffix}")
    assert response.status_code == 200
    body = response.json()
    assert body["schema"] == "/api/schema/" and "actions" not in body


# --- Workspace.url ------------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_workspace_without_url_has_url_null(as_admin):
    created = as_admin.post("/workspaces", {"name": "no-url"}, format="json").json()
    assert created["url"] is None
    url_schema = component(SchemaGenerator().get_schema(request=None, public=True), "Workspace")
    assert url_schema["properties"]["url"] == {
        "type": "string",
        "format": "uri",
        "readOnly": True,
        "nullable": True,
        "description": "The agent's A2A URL; null when not set.",
    }


@pytest.mark.django_db
@pytest.mark.parametrize("cleared", [None, ""])
def test_null_or_empty_clears_the_url(as_admin, workspace, cleared):
    url = f"/workspaces/{workspace.pk}"
    assert as_admin.get(url).json()["url"] == "http://127.0.0.1:9/"
    response = as_admin.patch(url, {"url": cleared}, format="json")
    assert response.status_code == 200 and response.json()["url"] is None
    workspace.refresh_from_db()
    assert workspace.url == ""


# --- InstalledPlugin while installing -----------------------------------------------------------


@pytest.mark.django_db
def test_an_installing_plugin_has_null_sha256_and_ref_and_the_schema_allows_it(as_admin, workspace, spec):
    plugin_install_request(workspace=workspace, source="local://web-search")
    body = as_admin.get(f"/workspaces/{workspace.pk}/plugins").json()[0]
    assert body["status"] == "installing" and body["sha256"] is None and body["resolved_ref"] is None
    properties = component(spec, "InstalledPlugin")["properties"]
    assert properties["sha256"]["nullable"] is True and properties["resolved_ref"]["nullable"] is True


# --- limit, cursor and empty query values -------------------------------------------------------


def test_every_operation_with_limit_states_the_range_and_lists_its_400(spec):
    with_limit = [
        (method, path, operation)
        for method, path, operation in operations(spec)
        if any(p["name"] == "limit" for p in operation.get("parameters", []))
    ]
    assert len(with_limit) >= 15
    for method, path, operation in with_limit:
        parameters = {p["name"]: p for p in operation["parameters"]}
        assert parameters["limit"]["schema"] == {"type": "integer", "minimum": 1, "maximum": 200}, path
        assert parameters["cursor"]["schema"]["pattern"] == "^[A-Za-z0-9_-]{1,2048}$", path
        assert "400" in operation["responses"], (method, path)


@pytest.mark.django_db
@pytest.mark.parametrize(("limit", "status"), [("1", 200), ("200", 200), ("0", 400), ("201", 400), ("", 400)])
def test_pending_approvals_limit_edges(as_admin, limit, status):
    response = as_admin.get("/approvals/pending", {"limit": limit})
    assert response.status_code == status
    if status == 400:
        assert response.json()["code"] == "invalid_parameter"


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("path", "query"),
    [
        ("/workspaces", {"limit": ""}),
        ("/workspaces", {"cursor": ""}),
        ("/workspaces", {"parent_id": ""}),
        ("/workspaces", {"runtime": ""}),
        ("/plugins", {"runtime": ""}),
        ("/plugins", {"cursor": ""}),
        ("/org/templates", {"limit": ""}),
        ("/workspaces", {"cursor": "not*base64"}),
        ("/plugins", {"cursor": "a=="}),
    ],
)
def test_empty_or_malformed_query_values_are_invalid_parameters(as_admin, path, query):
    response = as_admin.get(path, query)
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_parameter"
    assert list(response.json()["details"]) == list(query)


@pytest.mark.django_db
def test_empty_filter_and_flag_values_are_refused(as_admin, workspace):
    base = f"/workspaces/{workspace.pk}"
    assert as_admin.get(f"{base}/approvals", {"status": ""}).json()["code"] == "invalid_parameter"
    assert as_admin.get(f"{base}/schedules", {"enabled": ""}).json()["code"] == "invalid_parameter"
    response = as_admin.delete(f"{base}?cascade=")
    assert response.status_code == 400 and response.json()["code"] == "invalid_parameter"
    assert as_admin.get(f"{base}/plugins/compatibility", {"runtime": ""}).status_code == 400


@pytest.mark.django_db
def test_bundle_import_refuses_an_empty_parent_id(as_admin):
    response = as_admin.post("/bundles/import?parent_id=", {}, format="json")
    assert response.status_code == 400 and response.json()["details"] == {"parent_id": ["Must not be empty."]}


def test_text_query_parameters_are_never_empty_in_the_schema(spec):
    for _method, path, operation in operations(spec):
        for parameter in operation.get("parameters", []):
            if parameter["in"] == "query" and parameter["schema"].get("type") == "string":
                assert parameter["schema"].get("minLength", 0) >= 1, (path, parameter["name"])


# --- Allow on the fixed plugin routes -----------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("route", ["available", "compatibility"])
def test_allow_of_fixed_plugin_routes_matches_the_schema(api, workspace, route, spec):
    from tests.support.factories import make_workspace_token

    api.credentials(**bearer(make_workspace_token(workspace, role="operator")))
    response = api.options(f"/workspaces/{workspace.pk}/plugins/{route}")
    allowed = {method.strip() for method in response["Allow"].split(",")}
    documented = {m.upper() for m in spec["paths"][f"/workspaces/{{workspace_id}}/plugins/{route}"]}
    assert allowed - {"HEAD", "OPTIONS"} == documented == {"GET", "DELETE"}


# --- Stated input constraints -------------------------------------------------------------------


def test_strict_request_bodies_refuse_unknown_fields_in_the_schema(spec):
    request_bodies = set()
    for _method, _path, operation in operations(spec):
        content = operation.get("requestBody", {}).get("content", {}).get("application/json", {})
        ref = content.get("schema", {}).get("$ref")
        if ref:
            request_bodies.add(ref.rsplit("/", 1)[1])
    assert len(request_bodies) >= 15
    for name in request_bodies:
        assert component(spec, name)["additionalProperties"] is False, name


def test_stated_constraints(spec):
    workspace = component(spec, "WorkspaceInputRequest")["properties"]
    assert workspace["runtime"]["allOf"] == [{"$ref": "#/components/schemas/RuntimeEnum"}]
    assert "langgraph" in component(spec, "RuntimeEnum")["enum"]
    assert workspace["config"] == {"type": "object", "additionalProperties": {}}
    assert component(spec, "OrgImportRequestRequest")["oneOf"] == [
        {"required": ["template"]},
        {"required": ["org_yaml"]},
    ]
    assert component(spec, "ApprovalCreateRequest")["properties"]["options"]["uniqueItems"] is True
    assert component(spec, "ChannelCreateRequest")["properties"]["config"]["type"] == "object"
    for name in ("InstallRequest", "TemplateImportRequestRequest"):
        assert component(spec, name)["properties"]["source"]["pattern"] == r"^(github|local)://\S"
    keys = {
        path: next(p for p in item["put"]["parameters"] if p["name"] == "key")["schema"]["pattern"]
        for path, item in spec["paths"].items()
        if path.endswith("/{key}")
    }
    assert keys == {
        "/workspaces/{workspace_id}/secrets/{key}": "^[A-Z][A-Z0-9_]{0,127}$",
        "/workspaces/{workspace_id}/memory/{key}": "^[A-Za-z0-9][A-Za-z0-9_.:-]{0,199}$",
    }


@pytest.mark.django_db
def test_exactly_one_of_template_or_org_yaml(as_admin):
    for body in ({}, {"template": "acme", "org_yaml": "name: x"}):
        response = as_admin.post("/org/import", body, format="json")
        assert response.status_code == 400
        assert response.json()["details"] == {
            "non_field_errors": ["Give exactly one of template or org_yaml."]
        }


@pytest.mark.django_db
def test_duplicate_options_are_refused(as_admin):
    workspace = make_workspace("w")
    response = as_admin.post(
        f"/workspaces/{workspace.pk}/approvals", {"action": "x", "options": ["a", "a"]}, format="json"
    )
    assert response.status_code == 400 and "options" in response.json()["details"]


def test_authenticated_operations_list_401_403_429_and_bodies_413(spec):
    for method, path, operation in operations(spec):
        statuses = set(operation["responses"])
        if operation.get("security"):
            assert {"401", "403", "429"} <= statuses, (method, path)
        if method in {"POST", "PUT", "PATCH"}:
            assert "413" in statuses, (method, path)
        if "{" in path:
            assert "404" in statuses, (method, path)
