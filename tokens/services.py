"""Token writes: minting, revoking and authenticating bearer credentials."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from common.errors import ApplicationError, Forbidden, NotFound
from tokens.models import AdminToken, TokenRole, WorkspaceToken
from tokens.principal import ENV_ADMIN_NAME, Principal
from tokens.secrets import (
    ADMIN_PREFIX,
    ADMIN_TOKEN_RE,
    WORKSPACE_PREFIX,
    WORKSPACE_TOKEN_RE,
    generate_token,
    hash_token,
    hint,
    same_hash,
)
from workspaces.models import Workspace

MIN_ENV_ADMIN_TOKEN_LENGTH = 32


class LimitReached(ApplicationError):
    status_code = 409
    code = "limit_reached"


@dataclass(frozen=True)
class MintedToken:
    """A freshly created token and its plaintext, which exists only in this object."""

    token: WorkspaceToken | AdminToken
    plaintext: str


def _expiry(expires_in_days: int | None) -> timezone.datetime | None:
    if expires_in_days is None:
        return None
    return timezone.now() + timedelta(days=expires_in_days)


def workspace_token_create(
    *,
    workspace: Workspace,
    creator: Principal,
    name: str = "",
    role: str = TokenRole.AGENT,
    expires_in_days: int | None = None,
) -> MintedToken:
    """Mint a workspace token; at most WORKSPACE_TOKEN_LIMIT active per workspace."""
    if role == TokenRole.OPERATOR and not creator.is_operator:
        raise Forbidden("Only an operator token or an admin may create an operator token.")
    plaintext = generate_token(WORKSPACE_PREFIX)
    prefix, suffix = hint(plaintext)
    with transaction.atomic():
        # Lock the workspace row so concurrent mints cannot both pass the limit check.
        Workspace.objects.select_for_update().filter(pk=workspace.pk).exists()
        active = WorkspaceToken.objects.active().filter(workspace=workspace).count()
        limit = settings.WORKSPACE_TOKEN_LIMIT
        if active >= limit:
            raise LimitReached(f"This workspace already has {limit} active tokens; revoke one first.")
        token = WorkspaceToken.objects.create(
            workspace=workspace,
            name=name or f"{role}-token",
            role=role,
            token_hash=hash_token(plaintext),
            hint_prefix=prefix,
            hint_suffix=suffix,
            created_by=creator.name,
            expires_at=_expiry(expires_in_days),
        )
    return MintedToken(token=token, plaintext=plaintext)


def workspace_token_revoke(*, workspace: Workspace, token_id: object, actor: Principal) -> None:
    """Revoke a token of `workspace`; the very next request with it fails."""
    with transaction.atomic():
        token = (
            WorkspaceToken.objects.select_for_update()
            .filter(workspace=workspace, pk=token_id, revoked_at__isnull=True)
            .first()
        )
        if token is None:
            raise NotFound("Token not found.")
        if token.role == TokenRole.OPERATOR and not actor.is_operator:
            raise Forbidden("Only an operator token or an admin may revoke an operator token.")
        token.revoked_at = timezone.now()
        token.save(update_fields=["revoked_at"])


def admin_token_create(*, name: str, created_by: str, expires_in_days: int | None = None) -> MintedToken:
    plaintext = generate_token(ADMIN_PREFIX)
    prefix, suffix = hint(plaintext)
    token = AdminToken.objects.create(
        name=name,
        token_hash=hash_token(plaintext),
        hint_prefix=prefix,
        hint_suffix=suffix,
        created_by=created_by,
        expires_at=_expiry(expires_in_days),
    )
    return MintedToken(token=token, plaintext=plaintext)


def admin_token_revoke(*, token: AdminToken) -> None:
    if token.revoked_at is None:
        AdminToken.objects.filter(pk=token.pk, revoked_at__isnull=True).update(revoked_at=timezone.now())


def _touch(model: type[WorkspaceToken] | type[AdminToken], token: WorkspaceToken | AdminToken) -> None:
    """Record use at most once per TOKEN_LAST_USED_RESOLUTION_SECONDS (one UPDATE, no read)."""
    now = timezone.now()
    resolution = timedelta(seconds=settings.TOKEN_LAST_USED_RESOLUTION_SECONDS)
    if token.last_used_at is not None and now - token.last_used_at < resolution:
        return
    model.objects.filter(pk=token.pk).update(last_used_at=now)


def token_authenticate(raw: str) -> Principal | None:
    """The principal behind a bearer token, or None (malformed, unknown, revoked, expired)."""
    env_token = settings.ADMIN_TOKEN
    digest = hash_token(raw)
    # A short ADMIN_TOKEN is refused by `manage.py check`, but gunicorn never runs the checks:
    # never let it authenticate anyone.
    if len(env_token) >= MIN_ENV_ADMIN_TOKEN_LENGTH and same_hash(digest, hash_token(env_token)):
        return Principal(kind="env_admin", name=ENV_ADMIN_NAME)
    if WORKSPACE_TOKEN_RE.match(raw):
        token = WorkspaceToken.objects.active().filter(token_hash=digest).first()
        if token is None or not same_hash(token.token_hash, digest):
            return None
        _touch(WorkspaceToken, token)
        return Principal(
            kind="workspace_token",
            name=token.name,
            workspace_id=token.workspace_id,
            role=token.role,
            token_id=token.id,
        )
    if ADMIN_TOKEN_RE.match(raw):
        admin = AdminToken.objects.active().filter(token_hash=digest).first()
        if admin is None or not same_hash(admin.token_hash, digest):
            return None
        _touch(AdminToken, admin)
        return Principal(kind="admin_token", name=admin.name, token_id=admin.id)
    return None
