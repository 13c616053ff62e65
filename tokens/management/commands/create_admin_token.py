"""`python manage.py create_admin_token --name NAME`: the token is the last line of stdout."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from tokens.services import admin_token_create


class Command(BaseCommand):
    help = "Create an admin token and print it once (last line of stdout)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--name", required=True)
        parser.add_argument("--expires-in-days", type=int, default=None)

    def handle(self, *args: Any, **options: Any) -> None:
        name = options["name"].strip()
        if not name or len(name) > 100:
            raise CommandError("--name must be 1 to 100 characters")
        days = options["expires_in_days"]
        if days is not None and not 1 <= days <= 3650:
            raise CommandError("--expires-in-days must be from 1 to 3650")
        minted = admin_token_create(name=name, created_by="manage.py", expires_in_days=days)
        self.stderr.write(f"Created admin token {name!r} ({minted.token.masked}). It is shown once:")
        self.stdout.write(minted.plaintext)
