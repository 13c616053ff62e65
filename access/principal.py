"""Who is calling: the credential behind a request, whatever kind it is."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal
from uuid import UUID

# "staff" is a superuser's console session (an admin credential); "limited_staff" is any other
# staff session: it authenticates (so it is a 403, not a 401) but may do nothing on the API.
PrincipalKind = Literal["workspace_token", "admin_token", "env_admin", "staff", "limited_staff"]
ENV_ADMIN_NAME = "ADMIN_TOKEN"


@dataclass(frozen=True)
class Principal:
    kind: PrincipalKind
    name: str
    workspace_id: UUID | None = None
    role: str | None = None
    token_id: UUID | None = None
    expires_at: datetime | None = None

    @property
    def is_admin(self) -> bool:
        return self.kind in ("admin_token", "env_admin", "staff")

    @property
    def is_operator(self) -> bool:
        """Admins and operator tokens: may decide approvals, mint tokens, repoint a workspace."""
        return self.is_admin or self.role == "operator"

    def can_access(self, workspace_id: UUID) -> bool:
        return self.is_admin or self.workspace_id == workspace_id


class TokenUser:
    """`request.user` for bearer-token requests: authenticated, never staff, no database row."""

    is_authenticated = True
    is_anonymous = False
    is_active = True
    is_staff = False
    is_superuser = False
    pk = None
    id = None

    def __init__(self, principal: Principal) -> None:
        self.principal = principal

    def __str__(self) -> str:
        return self.principal.name

    def get_username(self) -> str:
        return self.principal.name

    def has_perm(self, perm: str, obj: object = None) -> bool:
        return False
