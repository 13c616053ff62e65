"""Issue 11 item 6: per-workspace quotas (409 limit_reached) and the workspace-token rate (429)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.conf import settings as django_settings
from django.utils import timezone
from rest_framework.test import APIClient

from approvals.models import Approval
from channels_app.services import channel_create
from plugins_app.models import InstalledPlugin
from plugins_app.services import plugin_install_request
from tests.support.factories import bearer, make_workspace_token
from workspaces.models import Workspace, WorkspaceMemory

pytestmark = pytest.mark.django_db

LIMIT = 2


def _assert_limit(response, resource: str, limit: int = LIMIT) -> None:
    assert response.status_code == 409, response.content
    body = response.json()
    assert body["code"] == "limit_reached"
    assert body["details"]["limit"] == limit
    assert body["details"]["resource"] == resource


def test_schedules_limit_and_limit_plus_one(as_agent, workspace, settings):
    settings.WORKSPACE_MAX_SCHEDULES = LIMIT
    url = f"/workspaces/{workspace.id}/schedules"
    for _ in range(LIMIT):
        assert (
            as_agent.post(url, {"expression": "*/5 * * * *", "prompt": "p"}, format="json").status_code == 201
        )
    _assert_limit(
        as_agent.post(url, {"expression": "*/5 * * * *", "prompt": "p"}, format="json"), "schedules"
    )
    assert workspace.schedules.count() == LIMIT


def test_memory_keys_limit_counts_new_keys_only(as_agent, workspace, settings):
    settings.WORKSPACE_MAX_MEMORY_KEYS = LIMIT
    url = f"/workspaces/{workspace.id}/memory/"
    for i in range(LIMIT):
        assert as_agent.put(f"{url}k{i}", {"value": i}, format="json").status_code == 200
    assert as_agent.put(f"{url}k0", {"value": "replaced"}, format="json").status_code == 200
    _assert_limit(as_agent.put(f"{url}k{LIMIT}", {"value": 1}, format="json"), "memory_keys")
    assert WorkspaceMemory.objects.filter(workspace=workspace).count() == LIMIT


def test_pending_approvals_limit_ignores_expired_ones(as_agent, workspace, settings):
    settings.WORKSPACE_MAX_PENDING_APPROVALS = LIMIT
    url = f"/workspaces/{workspace.id}/approvals"
    for _ in range(LIMIT):
        assert as_agent.post(url, {"action": "deploy"}, format="json").status_code == 201
    _assert_limit(as_agent.post(url, {"action": "deploy"}, format="json"), "pending_approvals")
    Approval.objects.filter(pk=Approval.objects.first().pk).update(
        expires_at=timezone.now() - timedelta(seconds=1)
    )
    assert as_agent.post(url, {"action": "deploy"}, format="json").status_code == 201


def _telegram(i: int) -> dict:
    return {"bot_token": f"12345{i}:" + "A" * 35, "chat_ids": ["42"]}


def test_channels_limit(as_agent, workspace, settings):
    settings.WORKSPACE_MAX_CHANNELS = LIMIT
    settings.PUBLIC_BASE_URL = ""
    url = f"/workspaces/{workspace.id}/channels"
    for i in range(LIMIT):
        response = as_agent.post(url, {"platform": "telegram", "config": _telegram(i)}, format="json")
        assert response.status_code == 201, response.content
    _assert_limit(
        as_agent.post(url, {"platform": "telegram", "config": _telegram(9)}, format="json"), "channels"
    )
    with pytest.raises(Exception) as caught:
        channel_create(workspace=workspace, platform="telegram", config=_telegram(8))
    assert getattr(caught.value, "code", None) == "limit_reached"


def test_plugins_limit_counts_new_names_only(workspace, settings):
    settings.WORKSPACE_MAX_PLUGINS = LIMIT
    for i in range(LIMIT):
        plugin_install_request(workspace=workspace, source=f"github://acme/tool{i}")
    plugin_install_request(workspace=workspace, source="github://acme/tool0#v2")  # reinstall
    with pytest.raises(Exception) as caught:
        plugin_install_request(workspace=workspace, source="github://acme/extra")
    assert caught.value.code == "limit_reached"
    assert caught.value.details["limit"] == LIMIT
    assert InstalledPlugin.objects.filter(workspace=workspace).count() == LIMIT


def test_plugins_limit_through_the_api(as_agent, workspace, settings):
    settings.WORKSPACE_MAX_PLUGINS = 1
    url = f"/workspaces/{workspace.id}/plugins"
    assert as_agent.post(url, {"source": "github://acme/one"}, format="json").status_code == 202
    _assert_limit(as_agent.post(url, {"source": "github://acme/two"}, format="json"), "plugins", 1)


def _org(schedules: int, memory: int) -> str:
    lines = ["name: Q", "workspaces:", "  - name: A", "    schedules:"]
    lines += [f"      - {{name: s{i}, expression: '0 * * * *', prompt: p}}" for i in range(schedules)]
    lines += ["    memory:"] + [f"      k{i}: {i}" for i in range(memory)]
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize(
    ("schedules", "memory", "resource"), [(LIMIT + 1, 1, "schedules"), (1, LIMIT + 1, "memory_keys")]
)
def test_org_import_respects_quotas(as_admin, settings, schedules, memory, resource):
    settings.WORKSPACE_MAX_SCHEDULES = LIMIT
    settings.WORKSPACE_MAX_MEMORY_KEYS = LIMIT
    response = as_admin.post("/org/import", {"org_yaml": _org(schedules, memory)}, format="json")
    _assert_limit(response, resource)
    assert response.json()["details"]["node"]
    assert not Workspace.objects.exists()
    at_limit = as_admin.post("/org/import", {"org_yaml": _org(LIMIT, LIMIT)}, format="json")
    assert at_limit.status_code == 201, at_limit.content


def test_bundle_import_respects_quotas(as_admin, workspace, settings):
    from templates_app.selectors import bundle_export

    for i in range(3):
        workspace.memory.create(key=f"k{i}", value=i)
    bundle = bundle_export(workspace=workspace)
    settings.WORKSPACE_MAX_MEMORY_KEYS = 2
    _assert_limit(as_admin.post("/bundles/import", bundle, format="json"), "memory_keys", 2)
    settings.WORKSPACE_MAX_MEMORY_KEYS = 3
    assert as_admin.post("/bundles/import", bundle, format="json").status_code == 201


# --- Rate limit -------------------------------------------------------------------------------------


def test_cache_is_redis_when_the_broker_is():
    assert django_settings.CELERY_BROKER_URL.startswith("redis://")
    assert django_settings.CACHES["default"]["BACKEND"] == "django.core.cache.backends.redis.RedisCache"


def test_workspace_token_rate_limit_at_the_edge(workspace, settings):
    settings.WORKSPACE_TOKEN_RATE = "3/min"
    client = APIClient()
    client.credentials(**bearer(make_workspace_token(workspace, name="busy")))
    url = f"/workspaces/{workspace.id}"
    for _ in range(3):
        assert client.get(url).status_code == 200
    response = client.get(url)
    assert response.status_code == 429
    assert response.json()["code"] == "throttled"
    assert 1 <= int(response["Retry-After"]) <= 60
    # Per credential: another token of the same workspace is not affected.
    other = APIClient()
    other.credentials(**bearer(make_workspace_token(workspace, name="calm")))
    assert other.get(url).status_code == 200


def test_admin_credentials_are_not_rate_limited(as_admin, workspace, settings):
    settings.WORKSPACE_TOKEN_RATE = "1/min"
    for _ in range(3):
        assert as_admin.get(f"/workspaces/{workspace.id}").status_code == 200
