"""Run an install in-process (the relay and worker path, without their processes) for fast tests."""

from __future__ import annotations

from plugins_app import services
from plugins_app.models import InstalledPlugin
from tests.support.worker import run_due_jobs


def install_now(workspace, source: str, sha256: str | None = None) -> InstalledPlugin:
    plugin = services.plugin_install_request(workspace=workspace, source=source, sha256=sha256)
    assert plugin.status == "installing"
    assert run_due_jobs() >= 1
    plugin.refresh_from_db()
    return plugin
