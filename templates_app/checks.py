"""Start-up check for the org import's environment allow-list (a bad entry would be ignored silently).

The id stays `common.E003`, as documented and as operators may silence it.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core import checks


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
