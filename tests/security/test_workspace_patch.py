"""Issue 11 item 2: an agent token cannot repoint its workspace (SSRF) or raise its capacity."""

from __future__ import annotations

import ipaddress

import pytest

from common.http import NetworkPolicy, address_refusal
from tests.support.factories import bearer
from workspaces.models import Workspace

pytestmark = pytest.mark.django_db

PROTECTED = [("url", "http://127.0.0.1:6379/"), ("max_concurrent_tasks", 7)]


@pytest.mark.parametrize(("field", "value"), PROTECTED)
def test_agent_token_cannot_change_url_or_capacity(api, workspace, agent_token, field, value):
    before = Workspace.objects.get(pk=workspace.pk)
    api.credentials(**bearer(agent_token))
    response = api.patch(f"/workspaces/{workspace.id}", {field: value}, format="json")
    assert response.status_code == 403
    body = response.json()
    assert body["code"] == "forbidden"
    assert field in body["error"]
    after = Workspace.objects.get(pk=workspace.pk)
    assert (after.url, after.max_concurrent_tasks) == (before.url, before.max_concurrent_tasks)


def test_agent_token_forbidden_field_blocks_the_whole_patch(api, workspace, agent_token):
    api.credentials(**bearer(agent_token))
    response = api.patch(
        f"/workspaces/{workspace.id}", {"name": "renamed", "url": "http://127.0.0.1:1/"}, format="json"
    )
    assert response.status_code == 403
    assert Workspace.objects.get(pk=workspace.pk).name == workspace.name


@pytest.mark.parametrize(("field", "value"), PROTECTED)
def test_operator_token_may_change_url_and_capacity(api, workspace, operator_token, field, value):
    api.credentials(**bearer(operator_token))
    response = api.patch(f"/workspaces/{workspace.id}", {field: value}, format="json")
    assert response.status_code == 200, response.json()
    assert response.json()[field] == value


@pytest.mark.parametrize(("field", "value"), PROTECTED)
def test_admin_may_change_url_and_capacity(as_admin, workspace, field, value):
    response = as_admin.patch(f"/workspaces/{workspace.id}", {field: value}, format="json")
    assert response.status_code == 200, response.json()
    assert response.json()[field] == value


def test_agent_token_may_still_change_its_own_name_role_and_config(api, workspace, agent_token):
    api.credentials(**bearer(agent_token))
    response = api.patch(
        f"/workspaces/{workspace.id}", {"name": "renamed", "role": "r", "config": {"a": 1}}, format="json"
    )
    assert response.status_code == 200, response.json()


@pytest.mark.parametrize("address", ["127.0.0.1", "10.0.0.1", "192.168.1.1", "100.64.0.1", "fc00::1"])
def test_network_policy_refuses_private_networks_by_default(address):
    ip = ipaddress.ip_address(address)
    assert address_refusal(ip, NetworkPolicy()) is not None
    assert address_refusal(ip, NetworkPolicy(allow_private=True)) is None


def test_http_helpers_take_no_default_policy():
    """Every caller states its policy: the helpers have no default to fall back on."""
    import inspect

    from common.http import http_request, open_stream

    for helper in (http_request, open_stream):
        parameter = inspect.signature(helper).parameters["policy"]
        assert parameter.default is inspect.Parameter.empty, helper.__name__
