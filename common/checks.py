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
def check_org_env_allow(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    from templates_app.org_env import allow_pattern_valid

    bad = [entry for entry in settings.ORG_IMPORT_ENV_ALLOW if not allow_pattern_valid(entry)]
    if not bad:
        return []
    return [
        checks.Error(
            f"ORG_IMPORT_ENV_ALLOW entries must be NAME or PREFIX_* (ignored: {', '.join(bad)})",
            id="common.E003",
        )
    ]
