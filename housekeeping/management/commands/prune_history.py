"""`manage.py prune_history [--dry-run]`: what the Beat task deletes, on demand."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser

from housekeeping.services import history_prune


class Command(BaseCommand):
    help = "Delete finished history past its keep period (runs, messages, approvals, jobs, markers)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--dry-run", action="store_true", help="only count what would be deleted")
        parser.add_argument("--batch-size", type=int, default=None, help="rows per DELETE (default: setting)")

    def handle(
        self, *args: Any, dry_run: bool = False, batch_size: int | None = None, **options: Any
    ) -> None:
        if batch_size is not None and batch_size < 1:
            self.stderr.write("--batch-size must be at least 1")
            raise SystemExit(2)
        self.stdout.write(
            f"keep: runs {settings.SCHEDULE_RUNS_KEEP_DAYS} days and the newest "
            f"{settings.SCHEDULE_RUNS_KEEP_PER_SCHEDULE} per schedule; messages "
            f"{settings.CHANNEL_MESSAGES_KEEP_DAYS} days; approvals {settings.APPROVALS_KEEP_DAYS} days; "
            f"jobs {settings.JOBS_KEEP_DAYS} days"
        )
        report = history_prune(dry_run=dry_run, batch_size=batch_size)
        verb = "would delete" if dry_run else "deleted"
        for part, count in report.items():
            self.stdout.write(f"{part}: {verb} {count}")
        self.stdout.write(f"total: {verb} {sum(report.values())}")
