"""Per-credential request rate for workspace tokens (DRF throttling on the shared cache).

Only workspace tokens are limited: they are what tenants hold. Admin credentials and
unauthenticated routes (webhooks verify their own signatures) are not counted here. The count
lives in Django's default cache, which is Redis whenever the broker is, so all web processes
share it; with the embedded default (locmem) each process counts on its own.
"""

from __future__ import annotations

import logging
from typing import Any

from django.conf import settings
from redis.exceptions import RedisError
from rest_framework.request import Request
from rest_framework.throttling import SimpleRateThrottle

from access.permissions import principal_of

logger = logging.getLogger(__name__)


class WorkspaceTokenRateThrottle(SimpleRateThrottle):
    scope = "workspace_token"

    def allow_request(self, request: Request, view: Any) -> bool:
        """A cache outage lets requests through (logged) rather than failing every one."""
        try:
            return super().allow_request(request, view)
        except RedisError:
            logger.warning("request rate not checked: the cache is unavailable")
            return True

    def get_rate(self) -> str:
        return settings.WORKSPACE_TOKEN_RATE

    def get_cache_key(self, request: Request, view: Any) -> str | None:
        principal = principal_of(request)
        if principal is None or principal.kind != "workspace_token" or principal.token_id is None:
            return None
        return self.cache_format % {"scope": self.scope, "ident": principal.token_id.hex}
