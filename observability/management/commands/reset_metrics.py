"""`manage.py reset_metrics`: empty PROMETHEUS_MULTIPROC_DIR before the service's processes start.

prometheus_client's multiprocess mode keeps one file per process and metric kind; files of
processes from an earlier start would otherwise be summed into the new one's counters. Run it
once, while no web, worker or beat process of this host is running (`make run` does).
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Delete the Prometheus multiprocess files (run before starting web, worker and beat)."

    def handle(self, *args: Any, **options: Any) -> None:
        directory = settings.PROMETHEUS_MULTIPROC_DIR
        removed = 0
        for path in directory.glob("*.db"):
            path.unlink(missing_ok=True)
            removed += 1
        if options["verbosity"] >= 1:
            self.stdout.write(f"removed {removed} metrics file(s) from {directory}")
