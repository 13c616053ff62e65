"""Workspaces in the admin console: useful filters, secrets never shown, in-flight deliveries."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.utils import timezone

from tests.support.factories import make_workspace
from workspaces.models import AgentDelivery, Workspace, WorkspaceSecret

pytestmark = pytest.mark.django_db

SECRET_VALUE = "sk-live-do-not-show-4242"


@pytest.fixture
def console(client, django_user_model):
    client.force_login(django_user_model.objects.create_superuser("olivia", "o@example.com", "pw"))
    return client


def names(html: str) -> set[str]:
    return set(re.findall(r'<th class="field-name"><a href="[^"]+">([^<]+)</a>', html))


def test_status_filter(console):
    now = timezone.now()
    make_workspace("online")
    make_workspace("offline")
    make_workspace("never")
    Workspace.objects.filter(name="online").update(last_heartbeat_at=now)
    Workspace.objects.filter(name="offline").update(last_heartbeat_at=now - timedelta(hours=1))
    assert names(console.get("/admin/workspaces/workspace/", {"status": "online"}).content.decode()) == {
        "online"
    }
    assert names(console.get("/admin/workspaces/workspace/", {"status": "offline"}).content.decode()) == {
        "offline"
    }
    assert names(console.get("/admin/workspaces/workspace/", {"status": "unknown"}).content.decode()) == {
        "never"
    }


def test_secret_values_never_appear(console, workspace):
    secret = WorkspaceSecret.objects.create(workspace=workspace, key="API_KEY", value=SECRET_VALUE)
    pages = [
        "/admin/workspaces/workspace/",
        f"/admin/workspaces/workspace/{workspace.id}/change/",
        "/admin/workspaces/workspacesecret/",
        f"/admin/workspaces/workspacesecret/{secret.id}/change/",
    ]
    for page in pages:
        response = console.get(page)
        assert response.status_code == 200, page
        html = response.content.decode()
        assert SECRET_VALUE not in html, page
    assert "API_KEY" in console.get(f"/admin/workspaces/workspace/{workspace.id}/change/").content.decode()


def test_in_flight_deliveries_are_listed_read_only(console, workspace):
    delivery = AgentDelivery.objects.create(workspace=workspace, source="approval", reference="abc")
    html = console.get("/admin/workspaces/agentdelivery/").content.decode()
    assert "approval" in html and "alpha" in html
    assert console.get("/admin/workspaces/agentdelivery/add/").status_code == 403
    detail = console.get(f"/admin/workspaces/agentdelivery/{delivery.id}/change/").content.decode()
    assert 'name="_save"' not in detail


def test_console_index_says_agent_deliveries(console):
    html = console.get("/admin/").content.decode()
    assert "Agent deliveries" in html and "Agent deliverys" not in html


def test_a2a_protocol_is_set_and_filtered_in_the_console(console):
    workspace = make_workspace("old agent", url="http://127.0.0.1:9/")
    make_workspace("new agent")
    page = console.get(f"/admin/workspaces/workspace/{workspace.pk}/change/").content.decode()
    assert re.search(r'<select name="a2a_protocol"[^>]*>', page)
    form = {
        "name": "old agent",
        "role": "",
        "runtime": workspace.runtime,
        "tier": 2,
        "url": workspace.url,
        "a2a_protocol": "0.3",
        "max_concurrent_tasks": 1,
        "config": "{}",
    }
    for prefix in ("secrets", "memory", "children"):
        form.update({f"{prefix}-TOTAL_FORMS": 0, f"{prefix}-INITIAL_FORMS": 0})
    response = console.post(f"/admin/workspaces/workspace/{workspace.pk}/change/", form)
    assert response.status_code == 302, response.content.decode()[:2000]
    workspace.refresh_from_db()
    assert workspace.a2a_protocol == "0.3"
    assert names(console.get("/admin/workspaces/workspace/", {"a2a_protocol": "0.3"}).content.decode()) == {
        "old agent"
    }
