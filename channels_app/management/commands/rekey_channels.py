"""`manage.py rekey_channels`: after rotating SECRET_KEY, key channel lookups on the new one.

Until it runs, inbound requests still find channels through SECRET_KEY_FALLBACKS; once it has
run, the old key can leave SECRET_KEY_FALLBACKS.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from channels_app.services import channel_rekey_all


class Command(BaseCommand):
    help = "Recompute every channel's credential lookup keys under the current SECRET_KEY."

    def handle(self, *args: Any, **options: Any) -> None:
        changed = channel_rekey_all()
        if options["verbosity"]:
            self.stdout.write(f"Re-keyed {changed} channel(s) under the current SECRET_KEY.")
