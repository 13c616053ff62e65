"""Celery tasks of the plugins app: thin wrappers over services."""

from __future__ import annotations

from celery import shared_task

from plugins_app.services import PluginInstallRunner


@shared_task(name="plugins.install", acks_late=True, ignore_result=True)
def plugin_install(plugin_id: str, attempt: int) -> None:
    """Attempt `attempt` of one install (published by the relay; see PluginInstallRunner)."""
    PluginInstallRunner.execute(pk=plugin_id, attempt=int(attempt))
