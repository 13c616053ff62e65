"""Start-up checks for settings that would otherwise fail late (first secret read, first login)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core import checks
from django.core.exceptions import ImproperlyConfigured


@checks.register(checks.Tags.security)
def check_secrets_settings(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    from common.crypto import fernet

    problems: list[checks.CheckMessage] = []
    try:
        fernet()
    except ImproperlyConfigured as exc:
        problems.append(checks.Error(str(exc), id="common.E001"))
    if settings.ADMIN_TOKEN and len(settings.ADMIN_TOKEN) < 32:
        problems.append(checks.Error("ADMIN_TOKEN must be at least 32 characters long", id="common.E002"))
    return problems


@checks.register(checks.Tags.security)
def check_production_secrets(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    return production_secret_problems(
        debug=settings.DEBUG,
        engine=settings.DATABASES["default"]["ENGINE"],
        secret_key_set=settings.SECRET_KEY_FROM_ENVIRONMENT,
        encryption_keys_set=bool(settings.ENCRYPTION_KEYS),
    )


def production_secret_problems(
    *, debug: bool, engine: str, secret_key_set: bool, encryption_keys_set: bool
) -> list[checks.CheckMessage]:
    """DEBUG off on a server database is production: a key generated into var/ would differ per
    host and vanish with the disk, taking sessions and (without ENCRYPTION_KEYS) every secret."""
    if debug or engine == "django.db.backends.sqlite3":
        return []
    problems: list[checks.CheckMessage] = []
    if not secret_key_set:
        problems.append(
            checks.Error(
                "SECRET_KEY is not set: with DEBUG off and a server database, set SECRET_KEY "
                "(a long random value, the same on every host).",
                id="common.E004",
            )
        )
    if not encryption_keys_set:
        problems.append(
            checks.Warning(
                "ENCRYPTION_KEYS is not set: secrets at rest are encrypted with a key derived from "
                "SECRET_KEY. Set ENCRYPTION_KEYS so the two can be rotated separately.",
                id="common.W005",
            )
        )
    return problems
