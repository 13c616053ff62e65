"""Issue 11 item 3: org.yaml `${VAR}` never reads the service's own settings.

Values come from the org folder's `.env` (templates on disk) and from environment variables
allowed by ORG_IMPORT_ENV_ALLOW; a refused name is 400 `env_not_allowed`.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from django.conf import settings as django_settings

from templates_app.org_env import protected_names
from workspaces.models import Workspace, WorkspaceMemory

pytestmark = pytest.mark.django_db

REPO = Path(__file__).resolve().parents[2]
SECRET_VALUE = "s3cret-value-that-must-never-come-back"


@pytest.fixture
def org_root(tmp_path, settings) -> Path:
    root = tmp_path / "orgs"
    root.mkdir()
    settings.ORG_TEMPLATES_DIR = root
    return root


def _inline(as_admin, text: str):
    return as_admin.post("/org/import", {"org_yaml": text}, format="json")


def _org(role_ref: str) -> str:
    return f"name: Env\nworkspaces:\n  - name: A\n    role: '{role_ref}'\n"


SERVER_SECRETS = [
    "SECRET_KEY",
    "ADMIN_TOKEN",
    "DATABASE_URL",
    "ENCRYPTION_KEYS",
    "CELERY_BROKER_URL",
    "REDIS_URL",
]


@pytest.mark.parametrize("name", SERVER_SECRETS)
def test_server_settings_never_expand_even_when_a_pattern_matches(as_admin, settings, monkeypatch, name):
    monkeypatch.setenv(name, SECRET_VALUE)
    settings.ORG_IMPORT_ENV_ALLOW = [name, name.split("_")[0] + "_*"]
    response = _inline(as_admin, _org("${" + name + "}"))
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "env_not_allowed"
    assert body["details"] == {"names": [name]}
    assert SECRET_VALUE not in response.content.decode()
    assert not Workspace.objects.exists()


def test_unlisted_variables_are_not_allowed_by_default(as_admin, monkeypatch):
    monkeypatch.setenv("HOME_GROWN", "x")
    monkeypatch.setenv("PATH", "/bin")
    response = _inline(as_admin, _org("${HOME_GROWN} ${PATH}"))
    assert response.status_code == 400
    assert response.json()["details"] == {"names": ["HOME_GROWN", "PATH"]}


def test_allowed_names_and_prefix_patterns_expand(as_admin, settings, monkeypatch):
    settings.ORG_IMPORT_ENV_ALLOW = ["ORG_NAME", "TEAM_*"]
    monkeypatch.setenv("ORG_NAME", "Expanded")
    monkeypatch.setenv("TEAM_ROLE", "lead")
    text = "name: ${ORG_NAME}\nworkspaces:\n  - name: A\n    role: '${TEAM_ROLE}'\n"
    response = _inline(as_admin, text)
    assert response.status_code == 201, response.json()
    assert response.json()["org"] == "Expanded"
    assert Workspace.objects.get().role == "lead"


def test_pattern_is_a_prefix_not_a_substring(as_admin, settings, monkeypatch):
    settings.ORG_IMPORT_ENV_ALLOW = ["TEAM_*"]
    monkeypatch.setenv("MY_TEAM_ROLE", "x")
    response = _inline(as_admin, _org("${MY_TEAM_ROLE}"))
    assert response.json()["details"] == {"names": ["MY_TEAM_ROLE"]}


@pytest.mark.parametrize("pattern", ["*", "bad-name", "A*", ""])
def test_invalid_patterns_allow_nothing(as_admin, settings, monkeypatch, pattern):
    settings.ORG_IMPORT_ENV_ALLOW = [pattern]
    monkeypatch.setenv("ANYTHING", "x")
    assert _inline(as_admin, _org("${ANYTHING}")).json()["code"] == "env_not_allowed"


def test_invalid_patterns_are_a_system_check_error(settings):
    from templates_app.checks import check_org_env_allow

    settings.ORG_IMPORT_ENV_ALLOW = ["TEAM_*", "*"]
    assert [m.id for m in check_org_env_allow()] == ["common.E003"]
    settings.ORG_IMPORT_ENV_ALLOW = ["TEAM_*", "NAME"]
    assert check_org_env_allow() == []


def test_missing_allowed_variable_stays_missing_env(as_admin, settings, monkeypatch):
    settings.ORG_IMPORT_ENV_ALLOW = ["TEAM_*"]
    monkeypatch.delenv("TEAM_GONE", raising=False)
    response = _inline(as_admin, _org("${TEAM_GONE}"))
    assert response.status_code == 400
    assert response.json()["code"] == "missing_env"
    assert response.json()["details"] == {"missing": ["TEAM_GONE"]}


def test_refused_names_are_reported_before_missing_ones(as_admin, settings, monkeypatch):
    settings.ORG_IMPORT_ENV_ALLOW = ["TEAM_*"]
    monkeypatch.delenv("TEAM_GONE", raising=False)
    response = _inline(as_admin, _org("${TEAM_GONE} ${SECRET_KEY}"))
    assert response.json()["code"] == "env_not_allowed"
    assert response.json()["details"] == {"names": ["SECRET_KEY"]}


def test_escaped_reference_is_a_literal(as_admin):
    response = _inline(as_admin, _org("$${SECRET_KEY}"))
    assert response.status_code == 201
    assert Workspace.objects.get().role == "${SECRET_KEY}"


def test_every_setting_and_every_documented_variable_is_protected():
    """Derived from the settings module and .env.example, so the list cannot drift."""
    names = protected_names()
    documented = set(re.findall(r"^\s*#?\s*([A-Z][A-Z0-9_]*)=", (REPO / ".env.example").read_text(), re.M))
    assert documented <= names
    assert {n for n in dir(django_settings) if n.isupper()} <= names
    for name in ("WEB_CONCURRENCY", "ORG_IMPORT_ENV_ALLOW", "A2A_TIMEOUT_SECONDS", "DJANGO_SETTINGS_MODULE"):
        assert name in names


def test_folder_env_supplies_values_for_templates_on_disk(as_admin, org_root, monkeypatch):
    folder = org_root / "team"
    folder.mkdir()
    (folder / "org.yaml").write_text(_org("${TEAM_ROLE}") + "    memory: {k: '${TEAM_NOTE}'}\n")
    (folder / ".env").write_text("# team values\nTEAM_ROLE=from-dotenv\nTEAM_NOTE='quoted ${NOT_EXPANDED}'\n")
    monkeypatch.setenv("TEAM_ROLE", "from-process-but-not-allowed")
    response = as_admin.post("/org/import", {"template": "team"}, format="json")
    assert response.status_code == 201, response.json()
    assert Workspace.objects.get().role == "from-dotenv"
    assert WorkspaceMemory.objects.get(key="k").value == "quoted ${NOT_EXPANDED}"


def test_allowed_environment_wins_over_the_folder_env(as_admin, org_root, settings, monkeypatch):
    folder = org_root / "team"
    folder.mkdir()
    (folder / "org.yaml").write_text(_org("${TEAM_ROLE}"))
    (folder / ".env").write_text("TEAM_ROLE=from-dotenv\n")
    settings.ORG_IMPORT_ENV_ALLOW = ["TEAM_ROLE"]
    monkeypatch.setenv("TEAM_ROLE", "from-process")
    assert as_admin.post("/org/import", {"template": "team"}, format="json").status_code == 201
    assert Workspace.objects.get().role == "from-process"


def test_folder_env_cannot_supply_service_settings(as_admin, org_root):
    folder = org_root / "team"
    folder.mkdir()
    (folder / "org.yaml").write_text(_org("${SECRET_KEY}"))
    (folder / ".env").write_text("SECRET_KEY=whatever\n")
    response = as_admin.post("/org/import", {"template": "team"}, format="json")
    assert response.json()["code"] == "env_not_allowed"


def test_inline_yaml_has_no_folder_env(as_admin, org_root):
    (org_root / ".env").write_text("TEAM_ROLE=root-dotenv\n")
    folder = org_root / "team"
    folder.mkdir()
    (folder / ".env").write_text("TEAM_ROLE=folder-dotenv\n")
    response = _inline(as_admin, _org("${TEAM_ROLE}"))
    assert response.json()["code"] == "env_not_allowed"


@pytest.mark.parametrize("reference", [".env", "./.env"])
def test_file_references_never_read_a_dotenv(as_admin, org_root, reference):
    folder = org_root / "team"
    folder.mkdir()
    (folder / ".env").write_text(f"TEAM_TOKEN={SECRET_VALUE}\n")
    (folder / "org.yaml").write_text(
        f"name: T\nworkspaces:\n  - name: A\n    system_prompt_file: '{reference}'\n"
    )
    response = as_admin.post("/org/import", {"template": "team"}, format="json")
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_path"
    inline = _inline(
        as_admin, f"name: T\nworkspaces:\n  - name: A\n    system_prompt_file: 'team/{reference}'\n"
    )
    assert inline.json()["code"] == "invalid_path"
    assert SECRET_VALUE not in response.content.decode() + inline.content.decode()


def test_errors_never_echo_an_expanded_value(as_admin, settings, monkeypatch):
    settings.ORG_IMPORT_ENV_ALLOW = ["TEAM_*"]
    monkeypatch.setenv("TEAM_FILE", SECRET_VALUE)
    text = "name: Env\nworkspaces:\n  - name: A\n    system_prompt_file: 'x/${TEAM_FILE}'\n"
    response = _inline(as_admin, text)
    assert response.status_code == 400
    raw = response.content.decode()
    assert SECRET_VALUE not in raw, raw
    assert "${TEAM_FILE}" in json.dumps(response.json())


def test_org_template_listing_required_env_excludes_what_the_folder_env_provides(as_admin, org_root):
    folder = org_root / "team"
    folder.mkdir()
    (folder / "org.yaml").write_text(_org("${TEAM_ROLE} ${TEAM_CHAT}"))
    (folder / ".env").write_text("TEAM_ROLE=x\n")
    listed = as_admin.get("/org/templates").json()
    assert listed[0]["required_env"] == ["TEAM_CHAT"]


def test_example_org_documents_its_variables():
    """The shipped example keeps working by its own means: an .env.example and a README."""
    acme = REPO / "org-templates" / "acme"
    example = (acme / ".env.example").read_text()
    for name in ("ACME_TELEGRAM_BOT_TOKEN", "ACME_TELEGRAM_CHAT_ID"):
        assert f"{name}=" in example
        assert name in (acme / "README.md").read_text()


def test_example_org_imports_with_its_dotenv(as_admin, settings, tmp_path, monkeypatch):
    import shutil

    settings.PUBLIC_BASE_URL = ""
    root = tmp_path / "orgs"
    shutil.copytree(REPO / "org-templates", root)
    example = (root / "acme" / ".env.example").read_text()
    (root / "acme" / ".env").write_text(
        example.replace(
            "ACME_TELEGRAM_BOT_TOKEN=", "ACME_TELEGRAM_BOT_TOKEN=123456:ABCdefGHIjklMNOpqrSTUvwxYZ"
        ).replace("ACME_TELEGRAM_CHAT_ID=", "ACME_TELEGRAM_CHAT_ID=-100777")
    )
    settings.ORG_TEMPLATES_DIR = root
    listed = {t["slug"]: t for t in as_admin.get("/org/templates").json()}
    assert listed["acme"]["required_env"] == []
    monkeypatch.setattr("plugins_app.tasks.plugin_install.delay", lambda *args: None)
    from templates_app import services

    services.template_sync_dir(root=REPO / "workspace-templates")
    response = as_admin.post("/org/import", {"template": "acme"}, format="json")
    assert response.status_code == 201, response.json()
