"""Import a bundle file as a new workspace tree (new ids, one transaction)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from common.errors import ApplicationError
from templates_app.bundles import MAX_BUNDLE_BYTES, bundle_loads
from templates_app.progress import ProgressBar
from templates_app.services import bundle_import
from workspaces.models import Workspace


class Command(BaseCommand):
    help = "Import an integrations bundle (JSON file, or - for stdin)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file")
        parser.add_argument("--parent-id", default=None, help="attach the tree under this workspace")
        parser.add_argument(
            "--activate",
            action="store_true",
            help="keep the schedules enabled as exported (by default they come back disabled)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        raw = (
            sys.stdin.buffer.read(MAX_BUNDLE_BYTES + 1) if options["file"] == "-" else _read(options["file"])
        )
        if len(raw) > MAX_BUNDLE_BYTES:
            raise CommandError(f"The bundle is larger than {MAX_BUNDLE_BYTES} bytes.")
        try:
            bundle = bundle_loads(raw)
        except (ValueError, RecursionError) as exc:
            raise CommandError("The file is not a JSON bundle.") from exc
        parent = None
        if options["parent_id"]:
            parent = Workspace.objects.filter(pk=_uuid(options["parent_id"])).first()
            if parent is None:
                raise CommandError("No workspace with the given --parent-id.")
        bar = ProgressBar(sys.stderr)
        try:
            result = bundle_import(bundle=bundle, parent=parent, activate=options["activate"], progress=bar)
        except ApplicationError as exc:
            bar.close()
            detail = f" {json.dumps(exc.details)}" if exc.details else ""
            raise CommandError(f"{exc.code}: {exc.message}{detail}") from exc
        bar.close()
        self.stdout.write(f"imported {len(result.workspaces)} workspaces; root {result.root_id}")
        for schedule in result.schedules:
            state = "enabled" if schedule["enabled"] else "disabled"
            self.stdout.write(
                f"schedule {schedule['id']} {schedule['name']!r} on {schedule['workspace_id']}: {state}"
            )
        for missing in result.missing_secrets:
            where = f"channel {missing['channel_id']} of " if "channel_id" in missing else ""
            self.stdout.write(f"missing secret {missing['key']} on {where}{missing['workspace_id']}")


def _read(path: str) -> bytes:
    file = Path(path)
    if not file.is_file():
        raise CommandError(f"No such file: {path}")
    with file.open("rb") as handle:
        return handle.read(MAX_BUNDLE_BYTES + 1)


def _uuid(value: str) -> Any:
    import uuid

    try:
        return uuid.UUID(value)
    except ValueError:
        raise CommandError("--parent-id must be a UUID.") from None
