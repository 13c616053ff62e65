"""`manage.py run_relay`: the one process that publishes stored jobs to Celery (common.outbox)."""

from __future__ import annotations

import signal
from typing import Any

from django.core.management.base import BaseCommand

from common.outbox import run_relay


class Command(BaseCommand):
    help = "Publish due job rows (runs, messages, installs, imports, notices) to the broker."

    def handle(self, *args: Any, **options: Any) -> None:
        stopping: list[int] = []

        def stop(signum: int, _frame: Any) -> None:
            stopping.append(signum)

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        self.stdout.write("relay ready.")
        self.stdout.flush()
        run_relay(stop=lambda: bool(stopping))
