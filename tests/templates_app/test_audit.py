"""Regressions found by the audit of SPEC §8: input the database cannot hold (NUL characters,
NaN/Infinity) and over-long names are 400s that create nothing, never 500s; a bundle's
`version` must be the integer 1."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import CommandError, call_command
from django.test import Client

from common.safe_yaml import YamlError, load_yaml
from templates_app import services
from templates_app.models import BundleImportJob, WorkspaceTemplate
from tests.templates_app.conftest import write
from workspaces.models import Workspace

pytestmark = pytest.mark.django_db


def _bundle(root: dict, **top) -> dict:
    return {"format": "integrations-bundle", "version": 1, "workspace": root, **top}


def _org(node: str) -> str:
    return f"name: X\nworkspaces:\n  - {node}\n"


@pytest.mark.parametrize(
    "node",
    [
        "{name: A, config: {x: .nan}}",
        "{name: A, memory: {x: .inf}}",
        "{name: A, memory: {x: [-.inf]}}",
        '{name: "A\\0B"}',
        '{name: A, config: {k: "v\\0"}}',
        '{name: A, config: {"k\\0": v}}',
        '{name: A, memory: {k: "lone \\ud800 surrogate"}}',
    ],
)
def test_org_values_the_database_cannot_hold_are_invalid_yaml(as_admin, org_root, node):
    response = as_admin.post("/org/import", {"org_yaml": _org(node)}, format="json")
    assert response.status_code == 400, response.content
    assert response.json()["code"] == "invalid_yaml"
    assert not Workspace.objects.exists()


def test_finite_floats_and_plain_strings_still_load():
    assert load_yaml("a: 1.5\nb: [-2.0e+3, .5]\nc: 'x\\0'\n") == {"a": 1.5, "b": [-2000.0, 0.5], "c": "x\\0"}


def test_prompt_file_with_nul_is_invalid_path(as_admin, org_root):
    (org_root / "o").mkdir()
    (org_root / "o" / "p.md").write_bytes(b"hello\x00world")
    write(org_root / "o" / "org.yaml", "name: O\nworkspaces:\n  - {name: A, system_prompt_file: p.md}\n")
    response = as_admin.post("/org/import", {"template": "o"}, format="json")
    assert response.status_code == 400 and response.json()["code"] == "invalid_path"
    assert not Workspace.objects.exists()


def test_template_yaml_with_nan_is_reported_not_crashing(templates_root):
    write(templates_root / "bad" / "template.yaml", "name: Bad\nconfig: {x: .nan}\n")
    write(templates_root / "good" / "template.yaml", "name: Good\n")
    report = services.template_sync_dir()
    assert "bad" in report.failed and report.created == ["good"]
    assert list(WorkspaceTemplate.objects.values_list("slug", flat=True)) == ["good"]


@pytest.mark.parametrize(
    "root",
    [
        {"name": "a\u0000b"},
        {"name": "a", "memory": {"k": "x\u0000"}},
        {"name": "a", "config": {"k\u0000": 1}},
        {"name": "a", "children": [{"name": "b", "role": "\u0000"}]},
    ],
)
def test_bundle_with_nul_characters_is_a_400(as_admin, root):
    response = as_admin.post("/bundles/import", _bundle(root), format="json")
    assert response.status_code == 400, response.content
    assert response.json()["code"] == "invalid_request"
    assert "NUL" in response.json()["error"]  # refused by the API's JSON parser, before import
    assert not Workspace.objects.exists()


@pytest.mark.parametrize("version", [True, 1.0, "1"])
def test_bundle_version_must_be_the_integer_one(as_admin, version):
    response = as_admin.post("/bundles/import", _bundle({"name": "v"}, version=version), format="json")
    assert response.status_code == 400 and "version" in response.json()["details"]
    assert not Workspace.objects.exists()


def test_bundle_template_slug_is_checked(as_admin):
    ok = as_admin.post("/bundles/import", _bundle({"name": "a", "template": "t" * 128}), format="json")
    assert ok.status_code == 201
    before = Workspace.objects.count()
    for bad in ("t" * 129, "Bad Slug", 5):
        response = as_admin.post("/bundles/import", _bundle({"name": "a", "template": bad}), format="json")
        assert response.status_code == 400, response.content
        assert "workspace.template" in response.json()["details"]
    assert Workspace.objects.count() == before


def test_channel_name_length_edges_in_bundles_and_orgs(as_admin, org_root):
    def channel(name: str) -> dict:
        return {"platform": "telegram", "name": name, "config": {"chat_ids": ["-1"]}}

    ok = as_admin.post(
        "/bundles/import", _bundle({"name": "a", "channels": [channel("n" * 200)]}), format="json"
    )
    assert ok.status_code == 201, ok.content
    before = Workspace.objects.count()
    over = as_admin.post(
        "/bundles/import", _bundle({"name": "a", "channels": [channel("n" * 201)]}), format="json"
    )
    assert over.status_code == 400 and over.json()["details"]["name"] == ["Must be at most 200 characters."]
    text = _org("{name: A, channels: [{platform: discord, name: " + "n" * 201 + ", config: {}}]}")
    response = as_admin.post("/org/import", {"org_yaml": text}, format="json")
    assert response.status_code == 400 and "name" in response.json()["details"]
    assert Workspace.objects.count() == before


def test_import_bundle_command_refuses_nan(tmp_path):
    path = tmp_path / "nan.json"
    path.write_text(
        '{"format": "integrations-bundle", "version": 1, "workspace": {"name": "a", "config": {"x": NaN}}}'
    )
    with pytest.raises(CommandError, match="not a JSON bundle"):
        call_command("import_bundle", str(path))
    assert not Workspace.objects.exists()


@pytest.mark.parametrize(
    "raw",
    [
        b'{"format": "integrations-bundle", "version": 1, "workspace": {"name": "a", "config": {"x": Infinity}}}',
        b'{"format": "integrations-bundle", "version": 1, "workspace": {"name": "a\\u0000"}}',
    ],
)
def test_admin_upload_refuses_what_cannot_be_stored(raw):
    user = get_user_model().objects.create_superuser("ops", "ops@example.com", "pw-123456789")
    client = Client()
    client.force_login(user)
    upload = SimpleUploadedFile("b.json", raw, content_type="application/json")
    response = client.post("/admin/templates_app/bundleimportjob/add/", {"bundle": upload})
    assert response.status_code == 200  # the form again, with the error
    assert not BundleImportJob.objects.exists()


def test_org_template_list_obeys_limit_and_cursor(as_admin, org_root):
    for slug in ("a", "b", "c"):
        write(org_root / slug / "org.yaml", f"name: {slug.upper()}\nworkspaces: [{{name: X}}]\n")
    for bad in ("0", "201", "x"):
        response = as_admin.get(f"/org/templates?limit={bad}")
        assert response.status_code == 400 and response.json()["code"] == "invalid_parameter"
    assert [item["slug"] for item in as_admin.get("/org/templates?limit=200").json()] == ["a", "b", "c"]
    assert "Link" not in as_admin.get("/org/templates?limit=3")
    first = as_admin.get("/org/templates/?limit=2")
    assert [item["slug"] for item in first.json()] == ["a", "b"]
    next_url = first["Link"].split(">")[0].lstrip("<")
    second = as_admin.get(next_url)
    assert [item["slug"] for item in second.json()] == ["c"] and "Link" not in second
    response = as_admin.get("/org/templates?cursor=_w")
    assert response.status_code == 400 and response.json()["code"] == "invalid_parameter"


def test_deeply_nested_value_is_a_400_not_a_500(as_admin):
    """Valid JSON the database driver cannot encode (recursion) is refused and creates nothing."""
    nested = "[" * 900 + "]" * 900
    body = (
        '{"format": "integrations-bundle", "version": 1, "workspace": {"name": "a", '
        '"children": [{"name": "b", "config": {"x": ' + nested + "}}]}}"
    )
    response = as_admin.generic("POST", "/bundles/import", body, content_type="application/json")
    assert response.status_code == 400, response.content
    assert response.json()["code"] == "invalid_request"
    assert not Workspace.objects.exists()


@pytest.mark.parametrize(
    "node",
    ["{name: A, memory: {a: 1, a: 2}}", "{name: A, name: B}", "{name: A, config: {x: {k: 1, k: 1}}}"],
)
def test_duplicate_yaml_keys_are_invalid_yaml(as_admin, org_root, node):
    response = as_admin.post("/org/import", {"org_yaml": _org(node)}, format="json")
    assert response.status_code == 400 and response.json()["code"] == "invalid_yaml"
    assert "duplicate key" in response.json()["error"]
    assert not Workspace.objects.exists()


def test_keys_that_python_would_merge_are_duplicates():
    assert load_yaml("1: a\n'1': b\n") == {1: "a", "1": "b"}
    with pytest.raises(YamlError, match="duplicate key"):
        load_yaml("1: a\ntrue: c\n")


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/templates/import", {"source": 12}, "source"),
        ("/org/import", {"template": 12}, "template"),
        ("/org/import", {"org_yaml": 12}, "org_yaml"),
    ],
)
def test_text_fields_refuse_numbers(as_admin, path, body, field):
    response = as_admin.post(path, body, format="json")
    assert response.status_code == 400 and response.json()["code"] == "invalid_request"
    assert response.json()["details"] == {field: ["Must be a string."]}
