"""Bundles: export → import → export round trip, missing secrets, parent_id, limits at their
edges, and query counts that stay flat as the tree grows."""

from __future__ import annotations

import copy
import json

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from templates_app import bundles
from templates_app.bundles import bundle_export
from templates_app.models import WorkspaceOrigin
from tests.support.factories import make_workspace
from workspaces.models import Workspace, WorkspaceMemory, WorkspaceSecret

pytestmark = pytest.mark.django_db

VOLATILE = {"exported_at"}


def _strip(bundle: dict) -> dict:
    """The bundle without what is allowed to change across a round trip."""
    data = copy.deepcopy(bundle)
    for key in VOLATILE:
        data.pop(key, None)
    stack = [data["workspace"]]
    while stack:
        node = stack.pop()
        for channel in node.get("channels", []):
            channel.pop("enabled", None)
        stack.extend(node["children"])
    return data


@pytest.fixture
def tree(db):
    root = make_workspace(
        "root", role="boss", runtime="crewai", tier=3, url="http://127.0.0.1:9/a", config={"x": 1}
    )
    a = make_workspace("a", parent_id=root.pk, max_concurrent_tasks=4, a2a_protocol="0.3")
    b = make_workspace("b", parent_id=root.pk, config={"nested": {"list": [1, "two", None]}})
    leaf = make_workspace("leaf", parent_id=a.pk)
    make_workspace("outside")  # not part of the subtree
    WorkspaceSecret.objects.create(workspace=root, key="API_KEY", value="super-secret-value")
    WorkspaceSecret.objects.create(workspace=leaf, key="OTHER", value="v2")
    WorkspaceMemory.objects.create(workspace=root, key="goal", value={"text": "ship", "n": 3})
    WorkspaceMemory.objects.create(workspace=b, key="empty", value=None)
    WorkspaceOrigin.objects.create(workspace=a, template_slug="researcher")
    return {"root": root, "a": a, "b": b, "leaf": leaf}


def test_export_shape_and_headers(as_admin, tree):
    response = as_admin.get(f"/bundles/export/{tree['root'].pk}")
    assert response.status_code == 200
    assert response["Content-Disposition"].startswith('attachment; filename="bundle-root-')
    bundle = response.json()
    assert bundle["format"] == "integrations-bundle" and bundle["version"] == 1
    assert bundle["exported_at"].endswith("Z")
    root = bundle["workspace"]
    assert {
        k: root[k]
        for k in (
            "name",
            "role",
            "runtime",
            "tier",
            "url",
            "a2a_protocol",
            "max_concurrent_tasks",
            "config",
            "template",
        )
    } == {
        "name": "root",
        "role": "boss",
        "runtime": "crewai",
        "tier": 3,
        "url": "http://127.0.0.1:9/a",
        "a2a_protocol": "auto",
        "max_concurrent_tasks": 1,
        "config": {"x": 1},
        "template": None,
    }
    assert root["secrets"] == ["API_KEY"]
    assert root["memory"] == {"goal": {"text": "ship", "n": 3}}
    assert [c["name"] for c in root["children"]] == ["a", "b"]
    assert root["children"][0]["template"] == "researcher"
    assert root["children"][0]["a2a_protocol"] == "0.3"
    assert root["children"][0]["children"][0]["secrets"] == ["OTHER"]
    assert "super-secret-value" not in response.content.decode()
    assert "outside" not in response.content.decode()
    assert "id" not in root and "parent_id" not in root


def test_round_trip_is_stable(as_admin, tree):
    first = as_admin.get(f"/bundles/export/{tree['root'].pk}").json()
    response = as_admin.post("/bundles/import", first, format="json")
    assert response.status_code == 201, response.json()
    body = response.json()
    assert set(body) == {"root_id", "workspaces", "count", "missing_secrets", "schedules"}
    assert body["count"] == 4
    new_ids = {w["id"] for w in body["workspaces"]}
    assert not new_ids & {str(w.pk) for w in tree.values()}
    second = as_admin.get(f"/bundles/export/{body['root_id']}").json()
    assert _strip(second) == _strip(first)
    # The imported root is a new root; its children point at it.
    new_root = Workspace.objects.get(pk=body["root_id"])
    assert new_root.parent_id is None
    assert body["workspaces"][0] == {"id": body["root_id"], "name": "root", "parent_id": None}


def test_a2a_protocol_survives_the_round_trip(as_admin, tree):
    bundle = as_admin.get(f"/bundles/export/{tree['root'].pk}").json()
    body = as_admin.post("/bundles/import", bundle, format="json").json()
    by_name = {w["name"]: w["id"] for w in body["workspaces"]}
    assert Workspace.objects.get(pk=by_name["a"]).a2a_protocol == "0.3"
    assert Workspace.objects.get(pk=by_name["leaf"]).a2a_protocol == "auto"


@pytest.mark.parametrize("value", ["2.0", 1.0, "", ["0.3"]])
def test_a2a_protocol_of_a_bundle_is_checked(as_admin, tree, value):
    bundle = as_admin.get(f"/bundles/export/{tree['root'].pk}").json()
    bundle["workspace"]["children"][0]["a2a_protocol"] = value
    response = as_admin.post("/bundles/import", bundle, format="json")
    assert response.status_code == 400
    assert "workspace.children[0].a2a_protocol" in response.json()["details"]


def test_a_bundle_without_a2a_protocol_imports_as_auto(as_admin, tree):
    bundle = as_admin.get(f"/bundles/export/{tree['a'].pk}").json()
    del bundle["workspace"]["a2a_protocol"]
    body = as_admin.post("/bundles/import", bundle, format="json").json()
    assert Workspace.objects.get(pk=body["root_id"]).a2a_protocol == "auto"


def test_missing_secrets_are_keys_without_values(as_admin, tree):
    bundle = as_admin.get(f"/bundles/export/{tree['root'].pk}").json()
    body = as_admin.post("/bundles/import", bundle, format="json").json()
    by_name = {w["name"]: w["id"] for w in body["workspaces"]}
    assert sorted(body["missing_secrets"], key=lambda m: m["key"]) == [
        {"workspace_id": by_name["root"], "key": "API_KEY"},
        {"workspace_id": by_name["leaf"], "key": "OTHER"},
    ]
    secret = WorkspaceSecret.objects.get(workspace_id=by_name["root"], key="API_KEY")
    assert secret.value == ""


def test_parent_id_attaches_the_tree(as_admin, tree):
    bundle = as_admin.get(f"/bundles/export/{tree['a'].pk}").json()
    host = make_workspace("host")
    body = as_admin.post(f"/bundles/import?parent_id={host.pk}", bundle, format="json").json()
    assert Workspace.objects.get(pk=body["root_id"]).parent_id == host.pk
    assert body["workspaces"][0]["parent_id"] == str(host.pk)
    assert body["count"] == 2

    missing = as_admin.post(
        "/bundles/import?parent_id=00000000-0000-0000-0000-000000000000", bundle, format="json"
    )
    assert missing.status_code == 400 and missing.json()["code"] == "invalid_parent"
    malformed = as_admin.post("/bundles/import?parent_id=nope", bundle, format="json")
    assert malformed.status_code == 400 and malformed.json()["code"] == "invalid_parameter"


def test_export_of_missing_workspace_is_404(as_admin):
    assert as_admin.get("/bundles/export/00000000-0000-0000-0000-000000000000").status_code == 404
    assert as_admin.get("/bundles/export/not-a-uuid").status_code == 404


def _bundle(root: dict) -> dict:
    return {"format": "integrations-bundle", "version": 1, "workspace": root}


def _chain(depth: int) -> dict:
    node = {"name": f"n{depth}"}
    for level in range(depth - 1, 0, -1):
        node = {"name": f"n{level}", "children": [node]}
    return node


def test_depth_limit_edges(as_admin):
    ok = as_admin.post("/bundles/import", _bundle(_chain(64)), format="json")
    assert ok.status_code == 201 and ok.json()["count"] == 64
    before = Workspace.objects.count()
    deep = as_admin.post("/bundles/import", _bundle(_chain(65)), format="json")
    assert deep.status_code == 400 and deep.json()["code"] == "invalid_request"
    assert "deeper than 64" in deep.json()["error"]
    assert Workspace.objects.count() == before


def test_absurd_json_nesting_is_a_400(as_admin):
    body = (
        '{"format": "integrations-bundle", "version": 1, "workspace": ' + "[" * 200_000 + "]" * 200_000 + "}"
    )
    response = as_admin.generic("POST", "/bundles/import", body, content_type="application/json")
    assert response.status_code == 400


def _flat(n: int) -> dict:
    return {"name": "root", "children": [{"name": f"c{i}"} for i in range(n - 1)]}


def test_workspace_count_limit_edges(as_admin, monkeypatch):
    monkeypatch.setattr(bundles, "MAX_BUNDLE_WORKSPACES", 50)
    ok = as_admin.post("/bundles/import", _bundle(_flat(50)), format="json")
    assert ok.status_code == 201 and ok.json()["count"] == 50
    over = as_admin.post("/bundles/import", _bundle(_flat(51)), format="json")
    assert over.status_code == 400 and "more than 50" in over.json()["error"]


def test_workspace_count_limit_is_ten_thousand(as_admin):
    over = as_admin.post("/bundles/import", _bundle(_flat(10_001)), format="json")
    assert over.status_code == 400 and "more than 10000 workspaces" in over.json()["error"]
    assert not Workspace.objects.exists()
    nodes = bundles.bundle_parse(bundle=_bundle(_flat(10_000)))
    assert len(nodes) == 10_000


def test_size_limit_edges(as_admin):
    limit = 10 * 1024 * 1024
    raw = json.dumps(_bundle({"name": "padded"}))
    exact = raw[:-1] + " " * (limit - len(raw)) + "}"
    assert len(exact.encode()) == limit
    ok = as_admin.generic("POST", "/bundles/import", exact, content_type="application/json")
    assert ok.status_code == 201
    over = as_admin.generic("POST", "/bundles/import", exact + " ", content_type="application/json")
    assert over.status_code == 413 and over.json()["code"] == "payload_too_large"


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda b: b.update(format="other"), "format"),
        (lambda b: b.update(version=2), "version"),
        (lambda b: b.update(extra=1), "bundle.extra"),
        (lambda b: b["workspace"].update(id="x"), "workspace.id"),
        (lambda b: b["workspace"].update(secrets=["lower"]), "workspace.secrets"),
        (lambda b: b["workspace"].update(memory={"bad key": 1}), "workspace.memory"),
        (lambda b: b["workspace"].update(tier=7), "workspace.tier"),
        (lambda b: b["workspace"]["children"].append({"name": ""}), "workspace.children[0].name"),
        (lambda b: b["workspace"]["children"].append("x"), "workspace.children[0]"),
        (lambda b: b["workspace"].update(children={}), "workspace.children"),
        (lambda b: b["workspace"].update(secrets=["A", "A"]), "workspace.secrets"),
        (lambda b: b["workspace"].update(secrets="A"), "workspace.secrets"),
        (lambda b: b["workspace"].update(plugins=[{"name": "p"}]), "workspace.plugins[0].source"),
        (lambda b: b["workspace"].update(schedules=[{"cron": "x"}]), "workspace.schedules[0].cron"),
        (lambda b: b["workspace"].update(max_concurrent_tasks=2.0), "workspace.max_concurrent_tasks"),
        (lambda b: b["workspace"].update(runtime="nope"), "workspace.runtime"),
        (lambda b: b["workspace"].update(url="ftp://x"), "workspace.url"),
        (lambda b: b.pop("workspace"), "workspace"),
    ],
)
def test_invalid_bundles_create_nothing(as_admin, mutate, field):
    bundle = _bundle({"name": "r", "children": []})
    mutate(bundle)
    response = as_admin.post("/bundles/import", bundle, format="json")
    assert response.status_code == 400
    assert field in response.json()["details"]
    assert not Workspace.objects.exists()


def _deep_tree(n: int) -> dict:
    """n workspaces over three levels, each with memory and secrets."""
    children = []
    per = max(1, int((n - 1) ** 0.5))
    made = 1
    while made < n:
        group = {"name": f"g{made}", "memory": {"k": made}, "secrets": ["TOKEN"], "children": []}
        made += 1
        for _ in range(per):
            if made >= n:
                break
            group["children"].append(
                {"name": f"l{made}", "memory": {"k": made, "l": [1]}, "secrets": ["A", "B"]}
            )
            made += 1
        children.append(group)
    return {"name": "root", "memory": {"r": 1}, "children": children}


def test_query_counts_flat_for_import_and_export(as_admin):
    as_admin.get("/templates")  # the token's last_used_at write happens here, not below
    counts = {}
    for n in (10, 200):
        with CaptureQueriesContext(connection) as ctx:
            response = as_admin.post("/bundles/import", _bundle(_deep_tree(n)), format="json")
        assert response.status_code == 201 and response.json()["count"] == n
        counts[("import", n)] = len(ctx.captured_queries)
        root = Workspace.objects.get(pk=response.json()["root_id"])
        with CaptureQueriesContext(connection) as ctx:
            assert as_admin.get(f"/bundles/export/{root.pk}").status_code == 200
        counts[("export", n)] = len(ctx.captured_queries)
    assert counts[("import", 200)] == counts[("import", 10)], counts
    assert counts[("export", 200)] == counts[("export", 10)], counts
    assert counts[("import", 10)] < 20


def test_bundle_export_service_reads_subtree_only(tree):
    bundle = bundle_export(workspace=tree["b"])
    assert bundle["workspace"]["name"] == "b" and bundle["workspace"]["children"] == []
    assert bundle["workspace"]["memory"] == {"empty": None}
