"""Plugin reads: the registry on disk and the plugins installed in a workspace."""

from __future__ import annotations

from pathlib import Path

from django.conf import settings
from django.db.models import QuerySet

from common.errors import NotFound
from plugins_app.models import InstalledPlugin, PluginStatus
from plugins_app.registry import RegistryEntry, registry_entry, registry_scan, supports_runtime
from workspaces.models import Workspace


def registry_list(*, runtime: str | None = None) -> list[RegistryEntry]:
    """The registry (PLUGINS_DIR) by name; with `runtime`, only the plugins that support it."""
    entries = registry_scan(Path(settings.PLUGINS_DIR))
    if runtime:
        entries = [entry for entry in entries if supports_runtime(entry.manifest.runtimes, runtime)]
    return entries


def registry_get(*, name: str) -> RegistryEntry | None:
    """One registry plugin by name (only its folder is read), or None if absent or invalid."""
    return registry_entry(Path(settings.PLUGINS_DIR), name)


def installed_plugin_list(*, workspace: Workspace) -> QuerySet[InstalledPlugin]:
    return InstalledPlugin.objects.filter(workspace=workspace)


def installed_plugin_get(*, workspace: Workspace, name: str) -> InstalledPlugin:
    plugin = InstalledPlugin.objects.filter(workspace=workspace, name=name).first()
    if plugin is None:
        raise NotFound("Plugin not installed.")
    return plugin


def plugin_storage_path(*, workspace_id: object, name: str | None = None) -> Path:
    """PLUGIN_STORAGE_DIR/<workspace>/[<name>]: where installed trees live."""
    base = Path(settings.PLUGIN_STORAGE_DIR) / str(workspace_id)
    return base / name if name else base


def installed_plugin_tree(*, workspace: Workspace, name: str) -> Path:
    """The folder of an `installed` plugin, or 404 (also while installing or after a failure)."""
    plugin = installed_plugin_get(workspace=workspace, name=name)
    path = plugin_storage_path(workspace_id=workspace.pk, name=plugin.name)
    if plugin.status != PluginStatus.INSTALLED or not path.is_dir():
        raise NotFound("Plugin not installed.")
    return path


def plugin_compatibility(*, workspace: Workspace, runtime: str) -> dict[str, object]:
    """Which installed plugins of the workspace support `runtime`."""
    rows = InstalledPlugin.objects.filter(workspace=workspace, status=PluginStatus.INSTALLED).order_by("name")
    compatible: list[str] = []
    incompatible: list[str] = []
    for name, runtimes in rows.values_list("name", "runtimes"):
        (compatible if supports_runtime(runtimes or [], runtime) else incompatible).append(name)
    return {
        "target_runtime": runtime,
        "compatible": compatible,
        "incompatible": incompatible,
        "all_compatible": not incompatible,
    }


def plugin_exported_source(*, plugin: InstalledPlugin) -> str | None:
    """The source a bundle records for a plugin: the installed one, or the one being installed;
    None for a plugin whose install failed (it is not part of the workspace)."""
    if plugin.status == PluginStatus.FAILED:
        return None
    if plugin.status == PluginStatus.INSTALLED:
        return plugin.installed_source or plugin.source
    return plugin.source
