"""Plugin writes: install requests (single and bulk), the install run itself, uninstall.

An install request only validates and records (`installing`: a job row, which the relay
publishes); the fetch runs on a Celery worker through `PluginInstallRunner` (common.jobs), which
stages the new tree with `common.fetch.stage_tree` and promotes it under a row lock only if the
request is still the current one.
"""

from __future__ import annotations

import logging
import uuid
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from common.archive import DEFAULT_MAX_FILES
from common.errors import ApplicationError, NotFound
from common.fetch import (
    FetchError,
    SourceSpec,
    normalize_sha256,
    parse_source,
    remove_stale_staging,
    remove_tree,
    stage_tree,
)
from common.jobs import JobRunner, short
from common.outbox import wake_on_commit
from plugins_app.models import INSTALL, InstalledPlugin, PluginStatus
from plugins_app.registry import PluginManifest, manifest_read
from plugins_app.selectors import plugin_storage_path, registry_get
from workspaces.models import Workspace
from workspaces.quotas import quota_check

logger = logging.getLogger(__name__)

ERROR_MAX_CHARS = 500


def _mark_installing(plugin: InstalledPlugin, spec: SourceSpec, sha256: str | None) -> None:
    plugin.source = str(spec)
    plugin.requested_sha256 = sha256 or ""
    plugin.status = PluginStatus.INSTALLING
    plugin.error = ""
    plugin.attempt = uuid.uuid4()
    plugin.relay_due_at = timezone.now()  # the relay publishes the install


_REQUEST_FIELDS = ["source", "requested_sha256", "status", "error", "attempt", "relay_due_at", "updated_at"]


def plugin_install_request(
    *, workspace: Workspace, source: str, sha256: str | None = None
) -> InstalledPlugin:
    """Validate the source (400 on a bad spec), mark the plugin `installing`, fetch after commit.

    Installing a name that is already installed keeps the old tree until the new one is staged.
    A `local://` name must exist in the registry.
    """
    spec = parse_source(source)
    expected = normalize_sha256(sha256)
    if spec.scheme == "local" and registry_get(name=spec.name) is None:
        raise ApplicationError(
            f"source: no plugin named {spec.name!r} in the registry.",
            details={"source": ["No such plugin in the registry."]},
        )
    with transaction.atomic():
        others = InstalledPlugin.objects.filter(workspace=workspace).exclude(name=spec.name)
        # A reinstall of a name already there is not one more plugin.
        quota_check(workspace=workspace, resource="plugins", existing=others)
        plugin, created = InstalledPlugin.objects.select_for_update().get_or_create(
            workspace=workspace,
            name=spec.name,
            defaults={"source": str(spec), "requested_sha256": expected or ""},
        )
        if not created:
            _mark_installing(plugin, spec, expected)
            plugin.save(update_fields=_REQUEST_FIELDS)
            wake_on_commit()
    plugin.workspace = workspace
    return plugin


def plugin_install_bulk_request(*, requests: list[tuple[Workspace, str]]) -> list[InstalledPlugin]:
    """Many install requests at once (org and bundle imports), in the caller's transaction.

    Specs are validated (400 on the first bad one); `local://` names are not checked against
    the registry here, a missing one fails on the worker. The same name twice for a workspace
    is installed once (the last source wins). The relay publishes one task per record.
    """
    wanted: dict[tuple[object, str], tuple[Workspace, SourceSpec]] = {}
    for workspace, source in requests:
        spec = parse_source(source)
        wanted[(workspace.pk, spec.name)] = (workspace, spec)
    if not wanted:
        return []
    plugins: list[InstalledPlugin] = []
    with transaction.atomic():
        workspace_ids = {key[0] for key in wanted}
        existing = {
            (plugin.workspace_id, plugin.name): plugin
            for plugin in InstalledPlugin.objects.select_for_update().filter(
                workspace_id__in=workspace_ids, name__in={key[1] for key in wanted}
            )
        }
        to_create: list[InstalledPlugin] = []
        to_update: list[InstalledPlugin] = []
        for key, (workspace, spec) in wanted.items():
            plugin = existing.get(key)
            if plugin is None:
                plugin = InstalledPlugin(workspace=workspace, name=spec.name, source=str(spec))
                to_create.append(plugin)
            else:
                _mark_installing(plugin, spec, None)
                plugin.updated_at = timezone.now()
                to_update.append(plugin)
            plugin.workspace = workspace
            plugins.append(plugin)
        InstalledPlugin.objects.bulk_create(to_create)
        if to_update:
            InstalledPlugin.objects.bulk_update(to_update, _REQUEST_FIELDS)
            wake_on_commit()
    return plugins


def plugin_uninstall(*, workspace: Workspace, name: str) -> None:
    """Remove the record (404 if none) and, once that commits, the files."""
    with transaction.atomic():
        deleted, _ = InstalledPlugin.objects.filter(workspace=workspace, name=name).delete()
        if not deleted:
            raise NotFound("Plugin not installed.")
        path = plugin_storage_path(workspace_id=workspace.pk, name=name)
        transaction.on_commit(lambda: remove_tree(path))


def _record_failure(*, plugin_id: str, attempt: str, reason: str) -> None:
    """`failed`, or back to `installed` with the error when an older tree is still in place."""
    with transaction.atomic():
        plugin = InstalledPlugin.objects.select_for_update().filter(pk=plugin_id, attempt=attempt).first()
        if plugin is None:
            return  # superseded by a newer request, or uninstalled meanwhile
        plugin.error = short(reason, ERROR_MAX_CHARS)
        if plugin.installed_at is not None:
            plugin.status = PluginStatus.INSTALLED
            plugin.source = plugin.installed_source
        else:
            plugin.status = PluginStatus.FAILED
        plugin.finished_at = timezone.now()
        plugin.save(update_fields=["status", "error", "source", "finished_at", "updated_at"])


class PluginInstallRunner(JobRunner):
    """The worker side of an install: fetch into staging, validate, promote, record.

    The plugin stays `installing` while it runs; success is recorded with the promotion (under
    the row lock, only for the current request), failure by `_record_failure`.
    """

    kind = INSTALL
    pending_statuses = (PluginStatus.INSTALLING,)
    running_status = PluginStatus.INSTALLING
    crash_message = "internal error while installing"

    def run(self, job: InstalledPlugin) -> None:
        plugin, attempt = job, str(job.attempt)
        destination = plugin_storage_path(workspace_id=plugin.workspace_id, name=plugin.name)
        timeout = settings.PLUGIN_FETCH_TIMEOUT_SECONDS
        manifests: list[PluginManifest] = []

        def validate(tree: Path) -> None:
            manifests.append(manifest_read(tree, name=plugin.name))

        try:
            remove_stale_staging(destination.parent, older_than_seconds=2 * timeout + 600)
            with stage_tree(
                source=parse_source(plugin.source),
                local_base=Path(settings.PLUGINS_DIR),
                staging_parent=destination.parent,
                max_bytes=settings.PLUGIN_MAX_TREE_BYTES,
                max_files=DEFAULT_MAX_FILES,
                timeout=timeout,
                expected_sha256=plugin.requested_sha256 or None,
                validate=validate,
            ) as staged:
                self._promote(plugin.pk, attempt, staged, manifests[-1], destination)
        except FetchError as exc:
            raise ApplicationError(exc.reason, code="fetch_failed") from None

    @staticmethod
    def _promote(
        plugin_id: Any, attempt: str, staged: Any, manifest: PluginManifest, destination: Path
    ) -> None:
        with transaction.atomic():
            current = (
                InstalledPlugin.objects.select_for_update().filter(pk=plugin_id, attempt=attempt).first()
            )
            if current is None:
                return  # superseded or uninstalled: the staged tree is discarded
            staged.promote(destination)
            current.status = PluginStatus.INSTALLED
            current.error = ""
            current.installed_source = current.source
            current.sha256 = staged.result.sha256
            current.resolved_ref = staged.result.resolved_ref
            current.installed_at = current.finished_at = timezone.now()
            for key in ("version", "description", "author", "tags", "runtimes", "skills"):
                setattr(current, key, getattr(manifest, key))
            current.save()

    def succeed(self, job: InstalledPlugin) -> None:
        pass  # recorded by `_promote`, with the tree

    def fail(self, job: InstalledPlugin, *, code: str, message: str) -> None:
        _record_failure(plugin_id=str(job.pk), attempt=str(job.attempt), reason=message)
