"""Token writes: minting, revoking and authenticating bearer credentials."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from access.principal import ENV_ADMIN_NAME, Principal
from common.errors import ApplicationError, Forbidden, NotFound
from tokens.models import AdminToken, TokenRole, WorkspaceToken
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
from workspaces.quotas import quota_check

MIN_ENV_ADMIN_TOKEN_LENGTH = 32


@dataclass(frozen=True)
class MintedToken:
    """A freshly created token and its plaintext, which exists only in this object."""

    token: WorkspaceToken | AdminToken
    plaintext: str


def _expiry(expires_in_days: int | None) -> timezone.datetime | None:
    if expires_in_days is None:
        return None
    return timezone.now() + timedelta(days=expires_in_days)


def _minted_expiry(*, creator: Principal, expires_in_days: int | None) -> timezone.datetime | None:
    """A minted token never outlives the token that minted it.

    No requested expiry: the creator's own expiry is inherited. A requested expiry after the
    creator's is refused (400) rather than silently shortened, so the caller knows what it got.
    """
    requested = _expiry(expires_in_days)
    if creator.expires_at is None:
        return requested
    if requested is None:
        return creator.expires_at
    if requested > creator.expires_at:
        message = "The token would outlive the credential creating it; ask for fewer days."
        raise ApplicationError(
            message,
            details={"expires_in_days": [f"Must end by {creator.expires_at.isoformat()}."]},
        )
    return requested


def _creator_links(creator: Principal) -> dict[str, object]:
    if creator.kind == "workspace_token":
        return {"created_by_token_id": creator.token_id}
    if creator.kind == "admin_token":
        return {"created_by_admin_token_id": creator.token_id}
    return {}


def workspace_token_create(
    *,
    workspace: Workspace,
    creator: Principal,
    name: str = "",
    role: str = TokenRole.AGENT,
    expires_in_days: int | None = None,
) -> MintedToken:
    """Mint a workspace token; at most WORKSPACE_TOKEN_LIMIT active per workspace.

    Only operator tokens and admin credentials mint: an agent token minting tokens could
    multiply itself past its revocation.
    """
    if not creator.is_operator:
        raise Forbidden("Only an operator token or an admin may create tokens.")
    expires_at = _minted_expiry(creator=creator, expires_in_days=expires_in_days)
    plaintext = generate_token(WORKSPACE_PREFIX)
    prefix, suffix = hint(plaintext)
    with transaction.atomic():
        # Under a lock on the workspace row, so concurrent mints cannot both pass the limit.
        quota_check(
            workspace=workspace,
            resource="tokens",
            existing=WorkspaceToken.objects.active().filter(workspace=workspace),
        )
        token = WorkspaceToken.objects.create(
            workspace=workspace,
            name=name or f"{role}-token",
            role=role,
            token_hash=hash_token(plaintext),
            hint_prefix=prefix,
            hint_suffix=suffix,
            created_by=creator.name,
            expires_at=expires_at,
            **_creator_links(creator),
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
        _revoke_minted(WorkspaceToken.objects.filter(created_by_token=token), now=token.revoked_at)


def _revoke_minted(children: QuerySet[WorkspaceToken], *, now: timezone.datetime) -> int:
    """Revoke `children` and everything they minted, level by level (chains are short: at most
    WORKSPACE_TOKEN_LIMIT active tokens per workspace). Returns how many were revoked."""
    total = 0
    level = list(children.filter(revoked_at__isnull=True).values_list("pk", flat=True))
    while level:
        total += WorkspaceToken.objects.filter(pk__in=level, revoked_at__isnull=True).update(revoked_at=now)
        level = list(
            WorkspaceToken.objects.filter(created_by_token__in=level, revoked_at__isnull=True).values_list(
                "pk", flat=True
            )
        )
    return total


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
    """Revoke an admin token and every workspace token it minted (transitively)."""
    now = timezone.now()
    with transaction.atomic():
        AdminToken.objects.filter(pk=token.pk, revoked_at__isnull=True).update(revoked_at=now)
        _revoke_minted(WorkspaceToken.objects.filter(created_by_admin_token=token), now=now)


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
            expires_at=token.expires_at,
        )
    if ADMIN_TOKEN_RE.match(raw):
        admin = AdminToken.objects.active().filter(token_hash=digest).first()
        if admin is None or not same_hash(admin.token_hash, digest):
            return None
        _touch(AdminToken, admin)
        return Principal(kind="admin_token", name=admin.name, token_id=admin.id, expires_at=admin.expires_at)
    return None
