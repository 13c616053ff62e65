"""Export a workspace and its subtree as a bundle file (or to stdout)."""

from __future__ import annotations

import json
import sys
import uuid
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from common.errors import ApplicationError
from templates_app.progress import ProgressBar
from templates_app.selectors import bundle_export
from workspaces.selectors import workspace_get


class Command(BaseCommand):
    help = "Export workspace ID and its subtree as an integrations bundle (JSON)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("workspace_id")
        parser.add_argument("-o", "--output", default=None, help="file to write (default: stdout)")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            workspace = workspace_get(workspace_id=uuid.UUID(options["workspace_id"]))
        except (ApplicationError, ValueError) as exc:
            raise CommandError("No workspace with this id.") from exc
        bar = ProgressBar(sys.stderr)
        bundle = bundle_export(workspace=workspace, progress=bar)
        bar.close()
        text = json.dumps(bundle, ensure_ascii=False, indent=1)
        if options["output"]:
            with open(options["output"], "w", encoding="utf-8") as handle:
                handle.write(text)
            count = _count(bundle["workspace"])
            self.stderr.write(f"exported {count} workspaces to {options['output']}")
        else:
            self.stdout.write(text)


def _count(root: dict[str, Any]) -> int:
    count, stack = 0, [root]
    while stack:
        node = stack.pop()
        count += 1
        stack.extend(node["children"])
    return count
