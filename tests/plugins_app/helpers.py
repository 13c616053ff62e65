"""Run an install in-process (the worker path, without a worker) for fast tests."""

from __future__ import annotations

from plugins_app import services
from plugins_app.models import InstalledPlugin
from plugins_app.tasks import plugin_install


def install_now(workspace, source: str, sha256: str | None = None) -> InstalledPlugin:
    plugin = services.plugin_install_request(workspace=workspace, source=source, sha256=sha256)
    assert plugin.status == "installing"
    plugin_install.run(str(plugin.pk), str(plugin.attempt))
    plugin.refresh_from_db()
    return plugin
