"""The served OpenAPI schema is exact: schemathesis fuzzes every operation in-process.

The WSGI application is called directly (no server, no socket). Every operation runs with every
check schemathesis has (server errors, status codes, content types, headers, response schemas,
acceptance of valid and rejection of invalid input, auth, unsupported methods, `Allow`), once
with an admin token and once with an operator token of an existing workspace. Path parameters
are bound to rows that exist, so `/workspaces/{id}/…` reaches the views, not only 404s.

Each generated request runs inside a savepoint that is rolled back, so every example starts from
the same rows (a DELETE of the workspace does not starve the examples after it) and nothing is
committed, so no `on_commit` task is ever queued. Platform base URLs point at a dead loopback
port: a call that does go out (a channel test, a discover) is refused at once, never leaves
127.0.0.1, and must come back as the documented 502.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from django.core import signals
from django.db import close_old_connections, transaction
from hypothesis import HealthCheck, settings
from schemathesis.config import SchemathesisConfig

from approvals.services import approval_create
from channels_app.services import channel_create
from integrations_project.wsgi import application
from plugins_app.services import plugin_install_request
from schedules.services import schedule_create, schedule_run_now
from templates_app.services import template_import_job_create
from tests.support.factories import make_admin_token, make_workspace, make_workspace_token

# Port 9 (discard) on loopback: nothing listens there, a connection is refused at once.
DEAD = "http://127.0.0.1:9"
MAX_EXAMPLES = 6
POSITIVE_STATUSES = ["2xx", "3xx", "401", "403", "404", "409", "429", "5xx"]

# Operations where a schema-valid body may still be a 400, because validity depends on stored
# state or on rules a JSON schema cannot state. Each is named with its reason; everything else
# these operations answer is still checked, and every other operation must accept valid input.
SEMANTIC_400 = {
    ("POST", "/workspaces"): "parent_id must name an existing workspace; agent url address policy",
    ("PATCH", "/workspaces/{workspace_id}"): "parent cycles, existing parent; agent url address policy",
    ("POST", "/templates/import"): "the source folder or repository must exist",
    ("POST", "/org/import"): "the org template must exist; org_yaml must be a valid org document",
    ("POST", "/bundles/import"): "the body must be a valid bundle",
    ("POST", "/workspaces/{workspace_id}/plugins"): "a local:// plugin must exist in the registry",
    ("POST", "/workspaces/{workspace_id}/approvals/{approval_id}/decide"): "option must be one of options",
    ("POST", "/channels/discover"): "the bot token must be accepted by the platform (invalid_token)",
    ("POST", "/workspaces/{workspace_id}/channels"): "config is validated per platform (invalid_config)",
    ("PATCH", "/workspaces/{workspace_id}/channels/{channel_id}"): "merged config re-validated",
    ("POST", "/workspaces/{workspace_id}/channels/{channel_id}/send"): "chat_id needed without a default",
    ("POST", "/workspaces/{workspace_id}/channels/{channel_id}/test"): "chat_id needed without a default",
    ("POST", "/workspaces/{workspace_id}/schedules"): "cron expression and IANA timezone",
    ("PATCH", "/workspaces/{workspace_id}/schedules/{schedule_id}"): "cron expression and IANA timezone",
    ("POST", "/workspaces/{workspace_id}/schedules/preview"): "cron expression and IANA timezone",
    ("POST", "/webhooks/{platform}"): "platform event bodies",
}
# A platform that refuses or cannot be reached is the documented 502 `platform_error` (SPEC §5),
# an answer about the platform, not a server error. The platforms here are a dead port.
PLATFORM_502 = [
    ("POST", "/channels/discover"),
    ("POST", "/workspaces/{workspace_id}/channels/{channel_id}/test"),
]

schema = schemathesis.pytest.from_fixture("api_schema")
# Examples run, by credential and phase: shown at the end of the module (the run's figures).
TALLY: Counter[tuple[str, str]] = Counter()


@pytest.fixture(scope="module", autouse=True)
def report_tally(request) -> Iterator[None]:
    started = time.monotonic()
    yield
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    if reporter and capture and TALLY:
        figures = ", ".join(f"{who}/{phase}: {count}" for (who, phase), count in sorted(TALLY.items()))
        with capture.global_and_fixture_disabled():  # a teardown's output is captured otherwise
            reporter.write_line(
                f"\nschemathesis: {sum(TALLY.values())} examples in {time.monotonic() - started:.0f} s "
                f"({figures})"
            )


@pytest.fixture
def credential() -> list[str]:
    """Which credential the current schema runs with (filled in by `api_schema`)."""
    return []


@pytest.fixture
def in_process_requests() -> Iterator[None]:
    """As Django's test client does: a request must not close the test's connection when it ends."""
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    try:
        yield
    finally:
        signals.request_started.connect(close_old_connections)
        signals.request_finished.connect(close_old_connections)


def _rows() -> dict[str, Any]:
    """One row of each kind that a path names, in one workspace (with a child)."""
    workspace = make_workspace("fuzzed", role="target", url=f"{DEAD}/agent")
    make_workspace("fuzzed-child", parent_id=workspace.pk)
    schedule = schedule_create(workspace=workspace, expression="*/5 * * * *", prompt="hello", name="s1")
    schedule_run_now(schedule=schedule)
    channel = channel_create(
        workspace=workspace, platform="telegram", config={"bot_token": "123456:" + "a" * 35}, enabled=False
    )
    approval = approval_create(workspace=workspace, action="deploy", created_by="tests", options=["a", "b"])
    plugin_install_request(workspace=workspace, source="local://web-search")
    job = template_import_job_create(source="local://coder")
    operator = make_workspace_token(workspace, role="operator", name="fuzz-operator")
    make_workspace_token(workspace, role="agent", name="fuzz-agent")
    return {
        "workspace": workspace,
        "operator": operator,
        "ids": {
            "workspace_id": str(workspace.pk),
            "schedule_id": str(schedule.pk),
            "channel_id": str(channel.pk),
            "approval_id": str(approval.pk),
            "job_id": str(job.pk),
            "name": "web-search",
            "platform": "telegram",
        },
    }


def _operation_checks() -> list[dict[str, Any]]:
    """Per-operation check settings (one entry per operation: the first match applies)."""
    checks: dict[tuple[str, str], dict[str, Any]] = {}
    for operation in SEMANTIC_400:
        checks.setdefault(operation, {})["positive_data_acceptance"] = {
            "expected-statuses": [*POSITIVE_STATUSES, "400"]
        }
    for operation in PLATFORM_502:
        checks.setdefault(operation, {})["not_a_server_error"] = {
            "expected-statuses": ["2xx", "3xx", "4xx", "502"]
        }
    return [
        {"include-method": method, "include-path": path, "checks": operation_checks}
        for (method, path), operation_checks in checks.items()
    ]


@pytest.fixture(params=["admin", "workspace"])
def api_schema(request, db, settings, in_process_requests, credential) -> Any:
    settings.PUBLIC_BASE_URL = DEAD
    settings.TELEGRAM_API_BASE_URL = DEAD
    settings.SLACK_API_BASE_URL = DEAD
    settings.DISCORD_WEBHOOK_BASE_URL = f"{DEAD}/discord/"
    settings.LARK_WEBHOOK_BASE_URLS = [f"{DEAD}/lark/"]
    settings.GITHUB_API_BASE_URL = DEAD
    settings.GITHUB_ARCHIVE_BASE_URL = DEAD
    rows = _rows()
    token = make_admin_token("fuzz-admin") if request.param == "admin" else rows["operator"]
    dictionaries = {name: {"values": [value]} for name, value in rows["ids"].items()}
    config = SchemathesisConfig.from_dict(
        {
            "seed": 20261201,
            "auth": {"openapi": {"bearerAuth": {"bearer": token}}},
            "dictionaries": dictionaries,
            "parameters": {f"path.{name}": {"dictionary": name, "probability": 0.9} for name in rows["ids"]},
            "generation": {"max-examples": MAX_EXAMPLES},
            "checks": {"enabled": True},
            "phases": {"stateful": {"enabled": False}},
            "operations": _operation_checks(),
        }
    )
    loaded = schemathesis.openapi.from_wsgi("/api/schema/?format=json", application, config=config)
    credential.append(request.param)
    return loaded


@schema.parametrize()
@settings(
    max_examples=MAX_EXAMPLES,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)
def test_every_operation_conforms_to_the_schema(case, credential) -> None:
    TALLY[(credential[-1], case.meta.phase.name.value if case.meta else "explicit")] += 1
    if case.meta and case.meta.generation.mode.is_positive and "cursor" in (case.query or {}):
        # A cursor is opaque: only one the server issued is valid, which no generator can make.
        # (Malformed cursors are still sent by the negative cases; tests/common cover real ones.)
        del case.query["cursor"]
    with transaction.atomic():
        try:
            case.call_and_validate()
        finally:
            transaction.set_rollback(True)
