"""DRF authentication: bearer tokens (workspace, admin, ADMIN_TOKEN) and staff sessions.

Every authenticated request carries a `Principal` in `request.auth`.
"""

from __future__ import annotations

from typing import Any

from rest_framework.authentication import BaseAuthentication, SessionAuthentication
from rest_framework.exceptions import AuthenticationFailed
from rest_framework.request import Request

from access.principal import Principal, TokenUser
from tokens.services import token_authenticate


class BearerTokenAuthentication(BaseAuthentication):
    """`Authorization: Bearer <token>`. A present but bad credential is a 401, never a fallback."""

    def authenticate(self, request: Request) -> tuple[Any, Principal] | None:
        header = request.META.get("HTTP_AUTHORIZATION", "")
        if not header:
            return None
        scheme, _, raw = header.partition(" ")
        raw = raw.strip()
        if scheme.lower() != "bearer" or not raw or len(raw) > 512:
            raise AuthenticationFailed()
        principal = token_authenticate(raw)
        if principal is None:
            raise AuthenticationFailed()
        return TokenUser(principal), principal

    def authenticate_header(self, request: Request) -> str:
        return 'Bearer realm="api"'


class StaffSessionAuthentication(SessionAuthentication):
    """The admin console's session is an admin credential for active superusers; CSRF applies.

    Other staff have model permissions in the console, which the API does not check: their
    session is a `limited_staff` principal, refused (403) by every permission class.
    """

    def authenticate(self, request: Request) -> tuple[Any, Principal] | None:
        result = super().authenticate(request)
        if result is None:
            return None
        user = result[0]
        if not (user.is_active and user.is_staff):
            return None
        kind = "staff" if user.is_superuser else "limited_staff"
        return user, Principal(kind=kind, name=user.get_username())
