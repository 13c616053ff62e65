"""Admin console: the registry page and the installed plugins changelist."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model

from plugins_app.models import InstalledPlugin
from tests.plugins_app.helpers import install_now

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff_client(client):
    user = get_user_model().objects.create_superuser("ops", "ops@example.com", "pw")
    client.force_login(user)
    return client


def test_registry_page_lists_plugins_dir(staff_client, plugin_dirs):
    response = staff_client.get("/admin/plugins_app/registryplugin/")
    assert response.status_code == 200
    html = response.content.decode()
    for name in ("code-review", "meeting-notes", "web-search"):
        assert f"local://{name}" in html
    assert staff_client.get("/admin/plugins_app/registryplugin/add/").status_code == 403


def test_installed_plugins_changelist_filters_and_uninstall_action(
    staff_client, workspace, plugin_dirs, fake_github, django_capture_on_commit_callbacks
):
    install_now(workspace, "local://web-search")
    fake_github.repo("acme", "tools", b"broken")
    install_now(workspace, "github://acme/tools")
    page = staff_client.get("/admin/plugins_app/installedplugin/", {"status__exact": "failed"})
    assert page.status_code == 200
    html = page.content.decode()
    assert "github://acme/tools" in html and "local://web-search" not in html
    assert staff_client.get("/admin/plugins_app/installedplugin/", {"q": "web"}).status_code == 200
    web = InstalledPlugin.objects.get(name="web-search")
    tree = plugin_dirs.workspace_dir(workspace) / "web-search"
    with django_capture_on_commit_callbacks(execute=True):
        response = staff_client.post(
            "/admin/plugins_app/installedplugin/",
            {"action": "uninstall", "_selected_action": [str(web.pk)]},
        )
    assert response.status_code == 302
    assert not tree.exists()
    assert list(InstalledPlugin.objects.values_list("name", flat=True)) == ["tools"]
