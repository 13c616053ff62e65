"""Re-encrypt every encrypted column with the newest key of ENCRYPTION_KEYS.

Run after putting a new key first in ENCRYPTION_KEYS; once it has run, the old keys can be
dropped from the setting.
"""

from __future__ import annotations

from typing import Any

from django.apps import apps
from django.core.management.base import BaseCommand
from django.db import transaction

from common.crypto import EncryptedTextField


class Command(BaseCommand):
    help = "Re-encrypt all encrypted fields with the newest ENCRYPTION_KEYS key."

    def handle(self, *args: Any, **options: Any) -> None:
        total = 0
        for model in apps.get_models():
            names = [f.attname for f in model._meta.concrete_fields if isinstance(f, EncryptedTextField)]
            if not names:
                continue
            # Reading decrypts with any configured key; writing encrypts with the newest one.
            rows = model._base_manager.values_list("pk", *names)
            with transaction.atomic():
                for pk, *values in rows.iterator(chunk_size=500):
                    model._base_manager.filter(pk=pk).update(**dict(zip(names, values, strict=True)))
                    total += 1
        if options["verbosity"]:
            self.stdout.write(f"Re-encrypted {total} row(s) with the newest key.")
