"""Celery tasks of the plugins app: thin wrappers over services."""

from __future__ import annotations

from celery import shared_task

from plugins_app import services


@shared_task(name="plugins.install", acks_late=True, ignore_result=True)
def plugin_install(plugin_id: str, attempt: str) -> None:
    """Fetch, check and install one plugin tree (see services.plugin_install_run)."""
    services.plugin_install_run(plugin_id=plugin_id, attempt=attempt)


@shared_task(name="plugins.reap_lost_installs", ignore_result=True)
def reap_lost_installs() -> int:
    """Close installs no worker finished (see services.plugin_reap_lost_installs)."""
    return services.plugin_reap_lost_installs()
