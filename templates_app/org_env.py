"""Where the `${VAR}` values of an org.yaml come from.

An org.yaml may be sent inline by an API caller, so expanding any process variable would hand
out the server's own secrets. Values come only from:

1. the org template folder's own `.env` file (templates on disk; an inline org.yaml has none);
2. environment variables whose names match `ORG_IMPORT_ENV_ALLOW` (`NAME` or `PREFIX_*`),
   which win over the folder's `.env`.

The service's own settings never expand, whatever the patterns or the `.env` say: every name
the settings module reads from the environment, every setting, and every name documented in
`.env.example` (so variables read by the Procfile, like `WEB_CONCURRENCY`, count too).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any

from django.conf import settings
from dotenv import dotenv_values

from common.errors import ApplicationError

ORG_ENV_FILE = ".env"
_PATTERN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(_\*)?$")
_DOCUMENTED = re.compile(r"^\s*#?\s*(?:export\s+)?([A-Z][A-Z0-9_]*)=", re.MULTILINE)
# Read by Django itself (manage.py, wsgi, celery) before any setting exists.
_PROCESS_NAMES = frozenset({"DJANGO_SETTINGS_MODULE"})


class MissingEnv(ApplicationError):
    code = "missing_env"
    message = "Environment variables used by the org template are not set."


class EnvNotAllowed(ApplicationError):
    code = "env_not_allowed"
    message = "The org template uses variables it may not read."


def allow_pattern_valid(entry: str) -> bool:
    """`NAME` or `PREFIX_*` (a non-empty prefix ending in `_`): a bare `*` is never valid."""
    return bool(_PATTERN.match(entry))


def _allowed_by_patterns(name: str, patterns: Iterable[str]) -> bool:
    for pattern in patterns:
        if not allow_pattern_valid(pattern):
            continue
        if pattern.endswith("*") and name.startswith(pattern[:-1]):
            return True
        if pattern == name:
            return True
    return False


@lru_cache(maxsize=4)
def _documented_names(path: Path) -> frozenset[str]:
    try:
        return frozenset(_DOCUMENTED.findall(path.read_text(encoding="utf-8")))
    except OSError:
        return frozenset()


def protected_names() -> frozenset[str]:
    """The service's own configuration: never expanded into an org.yaml."""
    from integrations_project.env import READ_NAMES

    own_settings = {name for name in dir(settings) if name.isupper()}
    documented = _documented_names(Path(settings.BASE_DIR) / ".env.example")
    return frozenset(READ_NAMES) | own_settings | documented | _PROCESS_NAMES


def org_folder_env(folder: Path | None) -> dict[str, str]:
    """The `NAME=value` pairs of `folder/.env` (no interpolation: a value is taken as written)."""
    if folder is None:
        return {}
    path = folder / ORG_ENV_FILE
    if not path.is_file():
        return {}
    values = dotenv_values(path, interpolate=False, encoding="utf-8")
    return {name: value for name, value in values.items() if value is not None}


def org_env_values(
    *, names: Iterable[str], folder: Path | None, environ: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The value of each name, or 400: `env_not_allowed` (`details.names`) for names that may
    not be read, then `missing_env` (`details.missing`) for allowed names that are not set."""
    environ = os.environ if environ is None else environ
    patterns = settings.ORG_IMPORT_ENV_ALLOW
    protected = protected_names()
    folder_env = org_folder_env(folder)
    refused, missing, values = [], [], {}
    for name in sorted(set(names)):
        from_env = _allowed_by_patterns(name, patterns)
        if name in protected or not (from_env or name in folder_env):
            refused.append(name)
        elif from_env and name in environ:
            values[name] = environ[name]
        elif name in folder_env:
            values[name] = folder_env[name]
        else:
            missing.append(name)
    if refused:
        raise EnvNotAllowed(
            f"org.yaml may not use: {', '.join(refused)}. Values come from the org folder's .env "
            "file or from environment variables allowed by ORG_IMPORT_ENV_ALLOW, never from the "
            "service's own settings.",
            details={"names": refused},
        )
    if missing:
        raise MissingEnv(
            f"Missing environment variables: {', '.join(missing)}.", details={"missing": missing}
        )
    return values


def redact(error: ApplicationError, values: Mapping[str, str]) -> ApplicationError:
    """`error` with every expanded value replaced by its `${NAME}`: errors never echo a value."""
    secrets = sorted(((value, name) for name, value in values.items() if value), key=lambda p: -len(p[0]))
    if not secrets:
        return error

    def clean(item: Any) -> Any:
        if isinstance(item, str):
            for value, name in secrets:
                item = item.replace(value, "${" + name + "}")
            return item
        if isinstance(item, dict):
            return {clean(key): clean(value) for key, value in item.items()}
        if isinstance(item, (list, tuple)):
            return [clean(value) for value in item]
        return item

    error.message = clean(error.message)
    error.details = clean(error.details)
    error.args = (error.message,)
    return error
