"""Installs no worker finished (the broker lost the message, the worker died) are closed by
`plugins.reap_lost_installs` instead of staying `installing` for ever."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from plugins_app import services, tasks
from plugins_app.models import InstalledPlugin, PluginStatus

pytestmark = pytest.mark.django_db


def _installing(workspace, name: str, *, age_seconds: float, **fields) -> InstalledPlugin:
    plugin = InstalledPlugin.objects.create(
        workspace=workspace, name=name, source=f"local://{name}", status=PluginStatus.INSTALLING, **fields
    )
    InstalledPlugin.objects.filter(pk=plugin.pk).update(
        updated_at=timezone.now() - timedelta(seconds=age_seconds)
    )
    return plugin


def test_lost_installs_are_closed_and_recent_ones_left(workspace, settings):
    settings.PLUGIN_FETCH_TIMEOUT_SECONDS = 30
    limit = 2 * 30 + 600
    lost = _installing(workspace, "lost", age_seconds=limit + 5)
    reinstall = _installing(
        workspace,
        "reinstall",
        age_seconds=limit + 5,
        installed_source="local://reinstall",
        installed_at=timezone.now() - timedelta(days=1),
    )
    recent = _installing(workspace, "recent", age_seconds=limit - 5)
    assert tasks.reap_lost_installs.apply().get() == 2
    for plugin in (lost, reinstall, recent):
        plugin.refresh_from_db()
    assert (lost.status, lost.error) == (PluginStatus.FAILED, "install lost: no worker finished it")
    # A lost reinstall goes back to the tree still in place, with the reason.
    assert (reinstall.status, reinstall.source) == (PluginStatus.INSTALLED, "local://reinstall")
    assert reinstall.error == "install lost: no worker finished it"
    assert recent.status == PluginStatus.INSTALLING
    assert services.plugin_reap_lost_installs() == 0


def test_a_message_that_turns_up_after_the_reaper_does_nothing(workspace, settings):
    settings.PLUGIN_FETCH_TIMEOUT_SECONDS = 30
    lost = _installing(workspace, "late", age_seconds=2 * 30 + 600 + 5)
    services.plugin_reap_lost_installs()
    services.plugin_install_run(plugin_id=str(lost.pk), attempt=str(lost.attempt))
    lost.refresh_from_db()
    assert lost.status == PluginStatus.FAILED and lost.installed_at is None
