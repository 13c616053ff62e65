"""Org templates: listing, import (tree, memory, response), path guard, safe YAML, ${VAR}s,
all-or-nothing, and query counts that do not grow with the number of workspaces."""

from __future__ import annotations

import os
import time

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from common.errors import ApplicationError
from common.paths import InvalidPath
from templates_app import sections as sections_module
from templates_app.models import WorkspaceOrigin, WorkspaceTemplate
from templates_app.org import org_plan
from tests.templates_app.conftest import write
from workspaces.models import Workspace, WorkspaceMemory

pytestmark = pytest.mark.django_db

SIMPLE = """
name: Tiny
description: two levels
defaults: {runtime: crewai, tier: 3, max_concurrent_tasks: 2}
workspaces:
  - name: Boss
    role: decides
    system_prompt: Lead the team.
    memory: {goal: ship, numbers: [1, 2]}
    children:
      - name: Helper
        tier: 1
        memory: {note: hi}
      - name: Other
        runtime: claude_code
"""


def _import(as_admin, **body):
    return as_admin.post("/org/import", body, format="json")


def test_inline_import_tree_and_response_shape(as_admin, org_root):
    response = _import(as_admin, org_yaml=SIMPLE)
    assert response.status_code == 201, response.json()
    body = response.json()
    assert set(body) == {"org", "root_ids", "workspaces", "count"}
    assert body["org"] == "Tiny"
    assert body["count"] == 3
    names = [w["name"] for w in body["workspaces"]]
    assert names == ["Boss", "Helper", "Other"]
    boss = Workspace.objects.get(name="Boss")
    assert body["root_ids"] == [str(boss.pk)]
    assert body["workspaces"][0]["parent_id"] is None
    assert all(w["parent_id"] == str(boss.pk) for w in body["workspaces"][1:])
    assert boss.runtime == "crewai" and boss.tier == 3 and boss.max_concurrent_tasks == 2
    assert boss.config == {"system_prompt": "Lead the team."}
    assert Workspace.objects.get(name="Helper").tier == 1
    assert Workspace.objects.get(name="Other").runtime == "claude-code"
    memory = {m.key: m.value for m in WorkspaceMemory.objects.filter(workspace=boss)}
    assert memory == {"goal": "ship", "numbers": [1, 2]}


def test_a2a_protocol_in_defaults_and_nodes(as_admin, org_root):
    document = """
name: Versions
defaults: {a2a_protocol: "0.3"}
workspaces:
  - name: Old
    children:
      - name: New
        a2a_protocol: "1.0"
      - name: Unsure
        a2a_protocol: auto
"""
    assert _import(as_admin, org_yaml=document).status_code == 201
    versions = dict(Workspace.objects.values_list("name", "a2a_protocol"))
    assert versions == {"Old": "0.3", "New": "1.0", "Unsure": "auto"}


def test_an_unquoted_yaml_version_is_refused_with_a_hint(as_admin, org_root):
    response = _import(as_admin, org_yaml="name: X\nworkspaces:\n  - {name: A, a2a_protocol: 1.0}\n")
    assert response.status_code == 400
    [message] = response.json()["details"]["workspaces[0].a2a_protocol"]
    assert "quote it in YAML" in message
    assert not Workspace.objects.exists()


def test_template_node_defaults_and_origin(as_admin, org_root):
    WorkspaceTemplate.objects.create(
        slug="researcher",
        name="R",
        runtime="deepagents",
        tier=4,
        config={"model": "m", "depth": 1},
        config_schema={"type": "object", "properties": {"depth": {"type": "integer", "maximum": 5}}},
    )
    text = "name: T\nworkspaces:\n  - name: A\n    template: researcher\n    config: {depth: 3}\n"
    assert _import(as_admin, org_yaml=text).status_code == 201
    ws = Workspace.objects.get(name="A")
    assert (ws.runtime, ws.tier, ws.config) == ("deepagents", 4, {"model": "m", "depth": 3})
    assert WorkspaceOrigin.objects.get(workspace=ws).template_slug == "researcher"

    bad = text.replace("depth: 3", "depth: 9")
    response = _import(as_admin, org_yaml=bad)
    assert response.status_code == 400
    assert "workspaces[0].config" in response.json()["details"]

    unknown = text.replace("template: researcher", "template: nope")
    response = _import(as_admin, org_yaml=unknown)
    assert response.status_code == 400
    assert response.json()["details"] == {"workspaces[0].template": ["No workspace template with this slug."]}


def test_by_slug_with_files(as_admin, org_root):
    write(
        org_root / "acme" / "org.yaml",
        "name: Acme\nworkspaces:\n  - name: A\n    system_prompt_file: p/a.md\n",
    )
    write(org_root / "acme" / "p" / "a.md", "Be brief.\n")
    response = _import(as_admin, template="acme")
    assert response.status_code == 201, response.json()
    assert Workspace.objects.get(name="A").config["system_prompt"] == "Be brief.\n"


def test_unknown_slug_and_body_rules(as_admin, org_root):
    assert _import(as_admin, template="nope").status_code == 400
    response = _import(as_admin)
    assert response.status_code == 400 and response.json()["code"] == "invalid_request"
    both = _import(as_admin, template="x", org_yaml="name: x")
    assert both.status_code == 400
    extra = _import(as_admin, template="x", id="1")
    assert extra.json()["code"] == "unknown_field"


def test_org_template_listing(as_admin, org_root):
    write(
        org_root / "beta" / "org.yaml",
        "name: Beta\ndescription: d\nworkspaces:\n  - name: A\n    url: ${AGENT_URL}\n"
        "    children:\n      - {name: B, role: '${ROLE_B} and ${AGENT_URL}'}\n      - name: C\n"
        "        config: {literal: '$${NOT_A_VAR}'}\n",
    )
    write(org_root / "alpha" / "org.yaml", "name: Alpha\nworkspaces: [{name: X}]\n")
    write(org_root / "broken" / "org.yaml", "name: [unclosed\n")
    (org_root / "no-org-file").mkdir()
    response = as_admin.get("/org/templates")
    assert response.status_code == 200
    assert response.json() == [
        {"slug": "alpha", "name": "Alpha", "description": "", "workspace_count": 1, "required_env": []},
        {
            "slug": "beta",
            "name": "Beta",
            "description": "d",
            "workspace_count": 3,
            "required_env": ["AGENT_URL", "ROLE_B"],
        },
    ]


def test_shipped_example_org_is_listed(as_admin, settings):
    from django.conf import settings as live

    assert live.ORG_TEMPLATES_DIR.name == "org-templates"
    listing = {item["slug"]: item for item in as_admin.get("/org/templates").json()}
    acme = listing["acme"]
    assert acme["workspace_count"] == 6
    assert acme["required_env"] == ["ACME_TELEGRAM_BOT_TOKEN", "ACME_TELEGRAM_CHAT_ID"]


# --- ${VAR} expansion -------------------------------------------------------------------------


def test_env_expansion_and_every_missing_name(as_admin, org_root, monkeypatch, settings):
    settings.ORG_IMPORT_ENV_ALLOW = ["ORG_NAME", "MISSING_*"]
    text = (
        "name: ${ORG_NAME}\nworkspaces:\n  - name: A\n    role: '${MISSING_ONE}'\n"
        "    memory: {k: '${MISSING_TWO} ${ORG_NAME} $${LITERAL}'}\n"
    )
    monkeypatch.setenv("ORG_NAME", "Expanded")
    monkeypatch.delenv("MISSING_ONE", raising=False)
    monkeypatch.delenv("MISSING_TWO", raising=False)
    response = _import(as_admin, org_yaml=text)
    assert response.status_code == 400
    assert response.json()["code"] == "missing_env"
    assert response.json()["details"] == {"missing": ["MISSING_ONE", "MISSING_TWO"]}
    assert not Workspace.objects.exists()

    monkeypatch.setenv("MISSING_ONE", "role")
    monkeypatch.setenv("MISSING_TWO", "two")
    response = _import(as_admin, org_yaml=text)
    assert response.status_code == 201
    assert response.json()["org"] == "Expanded"
    assert WorkspaceMemory.objects.get(key="k").value == "two Expanded ${LITERAL}"


# --- Path guard -------------------------------------------------------------------------------


def _org_with_file(ref: str) -> str:
    return f"name: Guarded\nworkspaces:\n  - name: A\n  - name: B\n    system_prompt_file: '{ref}'\n"


def _schedule_file(ref: str) -> str:
    return (
        "name: Guarded\nworkspaces:\n  - name: A\n    schedules:\n"
        f"      - {{expression: '0 * * * *', prompt_file: '{ref}'}}\n"
    )


@pytest.fixture
def guarded(org_root, tmp_path):
    """Template folder `orgs/g` with a symlink out, and a sibling root `orgs2` sharing the prefix."""
    folder = org_root / "g"
    write(folder / "inside.md", "ok")
    outside = write(tmp_path / "outside.txt", "secret outside")
    os.symlink(outside, folder / "link.md")
    sibling = write(tmp_path / "orgs2" / "g" / "leak.md", "sibling secret")
    os.symlink(sibling.parent, folder / "sib")
    return folder


@pytest.mark.parametrize(
    "ref", ["../x", "/etc/passwd", "link.md", "../../orgs2/g/leak.md", "sib/leak.md", "inside.md/../../x"]
)
@pytest.mark.parametrize("shape", [_org_with_file, _schedule_file])
def test_path_guard_refuses_and_creates_nothing(as_admin, guarded, ref, shape):
    write(guarded / "org.yaml", shape(ref))
    response = _import(as_admin, template="g")
    assert response.status_code == 400, response.json()
    assert response.json()["code"] == "invalid_path"
    assert "secret" not in response.content.decode()
    assert not Workspace.objects.exists()


def test_path_guard_on_inline_yaml_and_slug(as_admin, guarded):
    response = _import(as_admin, org_yaml=_org_with_file("g/link.md"))
    assert response.json()["code"] == "invalid_path"
    response = _import(as_admin, org_yaml=_org_with_file("g/inside.md"))
    assert response.status_code == 201
    for slug in ["../orgs2/g", "/etc", "g/../../orgs2/g"]:
        response = _import(as_admin, template=slug)
        assert response.status_code == 400 and response.json()["code"] == "invalid_path", slug
    assert Workspace.objects.count() == 2


def test_template_folder_that_is_a_symlink_outside_is_refused(as_admin, org_root, tmp_path):
    elsewhere = tmp_path / "orgs2" / "evil"
    write(elsewhere / "org.yaml", "name: Evil\nworkspaces: [{name: E}]\n")
    os.symlink(elsewhere, org_root / "evil")
    response = _import(as_admin, template="evil")
    assert response.status_code == 400 and response.json()["code"] == "invalid_path"
    assert "evil" not in [item["slug"] for item in as_admin.get("/org/templates").json()]


# --- YAML safety ------------------------------------------------------------------------------


def test_alias_bomb_refused_quickly(as_admin, org_root):
    lines = ["a: &a [x, x, x, x, x, x, x, x, x]"]
    for i in range(1, 12):
        prev, cur = chr(96 + i), chr(97 + i)
        lines.append(f"{cur}: &{cur} [*{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}]")
    started = time.monotonic()
    response = _import(as_admin, org_yaml="\n".join(lines))
    assert time.monotonic() - started < 2
    assert response.status_code == 400 and response.json()["code"] == "invalid_yaml"


@pytest.mark.parametrize(
    "text", ["name: !!python/object:os.system {}\nworkspaces: []\n", "name: !!python/name:os.system\n"]
)
def test_python_tags_refused(as_admin, org_root, text):
    response = _import(as_admin, org_yaml=text)
    assert response.status_code == 400 and response.json()["code"] == "invalid_yaml"


def test_yaml_size_edges(as_admin, org_root):
    head = "name: Big\nworkspaces: [{name: A}]\n#"
    limit = 1024 * 1024
    write(org_root / "big" / "org.yaml", head + "x" * (limit - len(head) - 1) + "\n")
    assert (org_root / "big" / "org.yaml").stat().st_size == limit
    assert _import(as_admin, template="big").status_code == 201
    write(org_root / "bigger" / "org.yaml", head + "x" * (limit - len(head)) + "\n")
    response = _import(as_admin, template="bigger")
    assert response.status_code == 413 and response.json()["code"] == "payload_too_large"
    # Inline: the request body cap (1 MiB) answers first, before parsing.
    response = _import(as_admin, org_yaml="x" * limit)
    assert response.status_code == 413


def _deep(levels: int) -> str:
    """A document whose deepest value sits `levels` levels down (workspaces → memory → lists)."""
    prefix = "name: D\nworkspaces:\n  - name: A\n    memory:\n      k: "
    # document map (1) → workspaces list (2) → node map (3) → memory map (4) → value at 5 ...
    nested = "[" * (levels - 5) + "1" + "]" * (levels - 5)
    return prefix + nested + "\n"


def test_yaml_depth_edges(as_admin, org_root):
    assert _import(as_admin, org_yaml=_deep(64)).status_code == 201
    response = _import(as_admin, org_yaml=_deep(65))
    assert response.status_code == 400 and response.json()["code"] == "invalid_yaml"


# --- Shape checks -----------------------------------------------------------------------------


def test_shape_errors_name_the_node(as_admin, org_root):
    text = (
        "name: S\nworkspaces:\n  - name: A\n    tier: 9\n    bogus: 1\n"
        "    children:\n      - {name: B, url: 'ftp://x'}\n      - {role: no-name}\n"
    )
    response = _import(as_admin, org_yaml=text)
    assert response.status_code == 400
    details = response.json()["details"]
    assert set(details) >= {
        "workspaces[0].tier",
        "workspaces[0].bogus",
        "workspaces[0].children[0].url",
        "workspaces[0].children[1].name",
    }
    assert not Workspace.objects.exists()


@pytest.mark.parametrize(
    ("node", "location", "message"),
    [
        ("{name: A, tier: 2.0}", "workspaces[0].tier", "Must be an integer from 1 to 4."),
        ("{name: A, max_concurrent_tasks: true}", "workspaces[0].max_concurrent_tasks", "Must be an integer"),
        ("{name: '  '}", "workspaces[0].name", "Required: a string of 1 to 200 characters."),
        ("{name: A, system_prompt: x, system_prompt_file: p.md}", "workspaces[0]", "not both"),
        ("{name: A, system_prompt: [x]}", "workspaces[0].system_prompt", "Must be a string."),
        (
            "{name: A, schedules: [{expression: '* * * * *'}]}",
            "workspaces[0].schedules[0].prompt",
            "Required",
        ),
        (
            "{name: A, schedules: [{expression: '* * * * *', prompt: p, prompt_file: p.md}]}",
            "workspaces[0].schedules[0]",
            "Give prompt or prompt_file, not both.",
        ),
        ("{name: A, schedules: [{prompt: p}]}", "workspaces[0].schedules[0].expression", "Required: a cron"),
        (
            "{name: A, schedules: [{prompt: p, expression: x, enabled: 1}]}",
            "workspaces[0].schedules[0].enabled",
            "",
        ),
        ("{name: A, schedules: {}}", "workspaces[0].schedules", "Must be a list."),
        (
            "{name: A, channels: [{config: {}}]}",
            "workspaces[0].channels[0].platform",
            "Required: a platform.",
        ),
        ("{name: A, channels: [{platform: x, allowlist: 1}]}", "workspaces[0].channels[0].allowlist", "list"),
        ("{name: A, plugins: ['']}", "workspaces[0].plugins[0]", "Must be a plugin source"),
        ("{name: A, memory: {'bad key': 1}}", "workspaces[0].memory", "Memory key 'bad key' must match"),
        ("{name: A, children: 5}", "workspaces[0].children", "Must be a list."),
        ("{name: A, children: [5]}", "workspaces[0].children[0]", "Must be an object."),
        ("{name: A, template: 5}", "workspaces[0].template", "Must be a string."),
    ],
)
def test_node_shapes_are_reported_where_they_are(as_admin, org_root, node, location, message):
    response = _import(as_admin, org_yaml=f"name: S\nworkspaces:\n  - {node}\n")
    assert response.status_code == 400, response.json()
    assert response.json()["code"] == "invalid_request"
    assert any(message in text for text in response.json()["details"][location]), response.json()
    assert not Workspace.objects.exists()


@pytest.mark.parametrize(
    ("document", "location"),
    [
        ("name: S\nbogus: 1\nworkspaces: [{name: A}]\n", "org.bogus"),
        ("workspaces: [{name: A}]\n", "name"),
        ("name: S\nworkspaces: []\n", "workspaces"),
        ("name: S\ndescription: [d]\nworkspaces: [{name: A}]\n", "description"),
        ("name: S\ndefaults: {tier: 0}\nworkspaces: [{name: A}]\n", "defaults.tier"),
        ("name: S\ndefaults: {role: r}\nworkspaces: [{name: A}]\n", "defaults.role"),
        ("name: S\ndefaults: {runtime: nope}\nworkspaces: [{name: A}]\n", "defaults.runtime"),
        ("- just a list\n", "org"),
    ],
)
def test_document_shapes_are_reported(as_admin, org_root, document, location):
    response = _import(as_admin, org_yaml=document)
    assert response.status_code == 400, response.json()
    assert location in response.json()["details"], response.json()
    assert not Workspace.objects.exists()


def test_sections_of_apps_not_installed_are_refused(as_admin, org_root, monkeypatch):
    """A kind of data whose section is not registered is refused before anything is written."""
    monkeypatch.setattr(
        sections_module, "SECTIONS", [s for s in sections_module.SECTIONS if s.key != "memory"]
    )
    response = _import(as_admin, org_yaml="name: X\nworkspaces: [{name: A, memory: {k: 1}}]\n")
    assert response.status_code == 400 and response.json()["code"] == "not_supported"
    assert not Workspace.objects.exists()


# --- All or nothing ----------------------------------------------------------------------------


def test_failure_on_third_node_leaves_nothing(as_admin, org_root, monkeypatch):
    """The memory section fails while preparing the third node, after two were prepared."""
    calls = {"n": 0}
    original = sections_module.MemorySection.prepare

    def failing(self, *, workspace, data, context):
        calls["n"] += 1
        if calls["n"] == 3:
            raise sections_module.ApplicationError("boom on the third node")
        return original(self, workspace=workspace, data=data, context=context)

    monkeypatch.setattr(sections_module.MemorySection, "prepare", failing)
    text = "name: X\nworkspaces:\n" + "".join(f"  - {{name: N{i}, memory: {{k: {i}}}}}\n" for i in range(4))
    response = _import(as_admin, org_yaml=text)
    assert response.status_code == 400
    assert "workspaces[2]" in response.json()["error"]
    assert not Workspace.objects.exists()
    assert not WorkspaceMemory.objects.exists()


def test_database_failure_during_bulk_insert_rolls_back(as_admin, org_root, monkeypatch):
    """Workspaces are already inserted when the memory insert fails: all of it is rolled back."""

    def failing_create(self, *, objects, context):
        assert Workspace.objects.count() == 3
        raise RuntimeError("database went away")

    monkeypatch.setattr(sections_module.MemorySection, "create", failing_create)
    as_admin.raise_request_exception = False
    response = _import(as_admin, org_yaml=SIMPLE)
    assert response.status_code == 500
    assert not Workspace.objects.exists()
    assert not WorkspaceMemory.objects.exists()


# --- Query counts -------------------------------------------------------------------------------


def _flat_org(n: int) -> str:
    lines = ["name: Q", "workspaces:", "  - name: root", "    memory: {a: 1}", "    children:"]
    lines += [f"      - {{name: c{i}, memory: {{k: {i}, j: [1]}}}}" for i in range(n - 1)]
    return "\n".join(lines) + "\n"


def test_query_count_does_not_grow_with_workspaces(as_admin, org_root, admin_token):
    as_admin.get("/org/templates")  # the token's last_used_at write happens here, not below
    counts = {}
    for n in (10, 200):
        with CaptureQueriesContext(connection) as ctx:
            response = _import(as_admin, org_yaml=_flat_org(n))
        assert response.status_code == 201
        assert response.json()["count"] == n
        counts[n] = len(ctx.captured_queries)
    assert counts[200] == counts[10], counts
    assert counts[10] < 20


# --- Property: a file reference resolves inside the org folder, or is refused ----------------

_segments = st.sampled_from(["prompts", "a.md", "..", ".", "", "link", "sib", "/", "x", "~"])


@pytest.fixture(scope="module")
def property_tree(tmp_path_factory):
    base = tmp_path_factory.mktemp("prop")
    root = base / "orgs"
    write(root / "prompts" / "a.md", "inside")
    write(root / "a.md", "inside")
    write(base / "x", "outside")
    write(base / "orgs2" / "a.md", "outside")
    os.symlink(base / "x", root / "link")
    os.symlink(base / "orgs2", root / "sib")
    return root


@hypothesis_settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.lists(_segments, min_size=1, max_size=6))
def test_property_file_reference_inside_or_refused(property_tree, segments):
    reference = "/".join(segments)
    document = {"name": "P", "workspaces": [{"name": "A", "system_prompt_file": reference}]}
    try:
        plan = org_plan(document=document, root=property_tree)
    except InvalidPath:
        return
    except ApplicationError:
        return  # e.g. an empty reference is a shape error
    assert plan.nodes[0].fields["config"]["system_prompt"] == "inside"


def test_workspace_count_cap(as_admin, org_root, monkeypatch):
    from templates_app import org

    monkeypatch.setattr(org, "MAX_ORG_WORKSPACES", 10)
    assert _import(as_admin, org_yaml=_flat_org(10)).status_code == 201
    response = _import(as_admin, org_yaml=_flat_org(11))
    assert response.status_code == 400 and "at most 10 workspaces" in response.json()["error"]
    assert Workspace.objects.count() == 10
