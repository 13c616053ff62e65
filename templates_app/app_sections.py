"""Sections for data owned by other apps: schedules, channels and plugins.

They call only those apps' services and selectors (imported lazily, so this module loads even
when an app is not installed; `Section.available()` then reports it). Exports read each kind of
row once for all workspaces through the workspace's reverse relation (`schedules`, `channels`,
`plugins`) instead of one selector call per workspace.
"""

from __future__ import annotations

import json
from collections import defaultdict
from typing import Any
from uuid import UUID

from common.errors import ApplicationError
from templates_app.sections import ImportContext, Section, chunked, register_section
from workspaces.models import Workspace


def _field_error(field: str, message: str) -> ApplicationError:
    return ApplicationError(f"{field}: {message}", details={field: [message]})


def _require(item: dict[str, Any], key: str, kind: type | tuple[type, ...], default: Any = None) -> Any:
    value = item.get(key, default)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise _field_error(key, f"Must be a {getattr(kind, '__name__', 'value')}.")
    return value


def _prefetched(workspace_ids: list[UUID], relation: str) -> list[Workspace]:
    """Workspaces (ids only) with one reverse relation prefetched: two queries per chunk."""
    rows: list[Workspace] = []
    for ids in chunked(workspace_ids):
        rows.extend(Workspace.objects.filter(pk__in=ids).only("id").prefetch_related(relation))
    return rows


class SchedulesSection(Section):
    key = "schedules"
    app_label = "schedules"
    quota = "schedules"

    def prepare(
        self, *, workspace: Workspace, data: list[dict[str, Any]], context: ImportContext
    ) -> list[Any]:
        from schedules.services import schedule_prepare

        prepared = []
        names: set[str] = set()
        for item in data:
            name = _require(item, "name", str, "")
            if name and name in names:
                raise _field_error("name", f"Schedule name {name!r} is used twice in one workspace.")
            names.add(name)
            default_source = "template" if context.mode == "org" else "runtime"
            enabled = _require(item, "enabled", bool, True)
            prepared.append(
                schedule_prepare(
                    workspace=workspace,
                    expression=_require(item, "expression", str),
                    prompt=_require(item, "prompt", str),
                    timezone=_require(item, "timezone", str, "UTC"),
                    enabled=enabled and (context.mode == "org" or context.activate),
                    name=name,
                    source=_require(item, "source", str, default_source),
                )
            )
        return prepared

    def create(self, *, objects: list[Any], context: ImportContext) -> None:
        from schedules.services import schedule_bulk_create

        schedule_bulk_create(schedules=objects)
        context.schedules.extend(
            {"id": str(s.pk), "workspace_id": str(s.workspace_id), "name": s.name, "enabled": s.enabled}
            for s in objects
        )

    def export(self, *, workspace_ids: list[UUID]) -> dict[UUID, Any]:
        result: dict[UUID, list[dict[str, Any]]] = defaultdict(list)
        for workspace in _prefetched(workspace_ids, "schedules"):
            items = [
                {
                    "name": s.name,
                    "expression": s.expression,
                    "timezone": s.timezone,
                    "prompt": s.prompt,
                    "enabled": s.enabled,
                    "source": s.source,
                }
                for s in workspace.schedules.all()
            ]
            if items:
                result[workspace.pk] = sorted(
                    items, key=lambda s: (s["name"], s["expression"], s["timezone"], s["prompt"])
                )
        return result


# The channels API's cap on a channel name (channels_app/api/serializers.py).
CHANNEL_NAME_MAX_CHARS = 200


class ChannelsSection(Section):
    """Org imports create channels as written; bundles recreate them disabled, without secrets."""

    key = "channels"
    app_label = "channels_app"
    quota = "channels"

    def prepare(
        self, *, workspace: Workspace, data: list[dict[str, Any]], context: ImportContext
    ) -> list[Any]:
        from channels_app.selectors import channel_empty_secret_keys
        from channels_app.services import channel_prepare

        prepared = []
        for item in data:
            enabled = _require(item, "enabled", bool, True) if context.mode == "org" else False
            name = _require(item, "name", str, "")
            if len(name) > CHANNEL_NAME_MAX_CHARS:
                raise _field_error("name", f"Must be at most {CHANNEL_NAME_MAX_CHARS} characters.")
            channel = channel_prepare(
                workspace=workspace,
                platform=_require(item, "platform", str),
                config=_require(item, "config", dict, {}),
                allowlist=_require(item, "allowlist", list, []),
                enabled=enabled,
                name=name,
            )
            prepared.append(channel)
            if context.mode == "bundle":
                context.missing_secrets.extend(
                    {"workspace_id": str(workspace.pk), "channel_id": str(channel.pk), "key": key}
                    for key in channel_empty_secret_keys(channel=channel)
                )
        return prepared

    def create(self, *, objects: list[Any], context: ImportContext) -> None:
        from channels_app.services import channel_bulk_create

        channel_bulk_create(channels=objects)

    def export(self, *, workspace_ids: list[UUID]) -> dict[UUID, Any]:
        from channels_app.selectors import channel_public_config

        result: dict[UUID, list[dict[str, Any]]] = defaultdict(list)
        for workspace in _prefetched(workspace_ids, "channels"):
            items = [
                {
                    "platform": c.platform,
                    "name": c.name,
                    "allowlist": list(c.allowlist),
                    "enabled": c.enabled,
                    "config": channel_public_config(channel=c),
                }
                for c in workspace.channels.all()
            ]
            if items:
                result[workspace.pk] = sorted(
                    items, key=lambda c: (c["platform"], c["name"], json.dumps(c["config"], sort_keys=True))
                )
        return result


class PluginsSection(Section):
    """Plugin installs are requested in the import's transaction and run after commit."""

    key = "plugins"
    app_label = "plugins_app"
    quota = "plugins"

    def prepare(self, *, workspace: Workspace, data: list[str], context: ImportContext) -> list[Any]:
        from common.fetch import parse_source

        for source in data:
            parse_source(source)  # 400 with the node named, before anything is written
        return [(workspace, source) for source in data]

    def create(self, *, objects: list[Any], context: ImportContext) -> None:
        from plugins_app.services import plugin_install_bulk_request

        plugin_install_bulk_request(requests=objects)

    def export(self, *, workspace_ids: list[UUID]) -> dict[UUID, Any]:
        from plugins_app.selectors import plugin_exported_source

        result: dict[UUID, list[dict[str, Any]]] = defaultdict(list)
        for workspace in _prefetched(workspace_ids, "plugins"):
            # A plugin whose install failed is not part of the workspace: it is left out.
            sources = ((p.name, plugin_exported_source(plugin=p)) for p in workspace.plugins.all())
            items = [{"name": name, "source": source} for name, source in sources if source]
            if items:
                result[workspace.pk] = sorted(items, key=lambda p: p["name"])
        return result


def register_app_sections() -> None:
    for section in (SchedulesSection(), ChannelsSection(), PluginsSection()):
        register_section(section)
