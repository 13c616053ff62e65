"""Seed or refresh workspace templates from the folders of TEMPLATES_DIR."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser

from templates_app.services import template_sync_dir


class Command(BaseCommand):
    help = "Create or update workspace templates from TEMPLATES_DIR (template.yaml + files)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--dir", default=None, help="folder to read instead of TEMPLATES_DIR")

    def handle(self, *args: Any, **options: Any) -> None:
        root = Path(options["dir"] or settings.TEMPLATES_DIR)
        report = template_sync_dir(root=root)
        for slug in report.created:
            self.stdout.write(f"created {slug}")
        for slug in report.updated:
            self.stdout.write(f"updated {slug}")
        for slug, reason in report.failed.items():
            self.stderr.write(f"failed {slug}: {reason}")
        counts = f"{len(report.created)} created, {len(report.updated)} updated, {len(report.failed)} failed"
        self.stdout.write(f"{counts} from {root}")
