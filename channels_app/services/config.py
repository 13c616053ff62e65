"""Channel configuration: validate and store configs (secrets apart, masked in answers), keep
the credential and lookup digests, and create / update / delete channels. Enabling and disabling
run the adapter's hooks after commit (`lifecycle`)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from django.db import connections, router, transaction

from channels_app.adapters.base import ChannelAdapter, ConfigError, credential_digest
from channels_app.models import Channel
from channels_app.services import lifecycle
from channels_app.services.base import ApplicationTaken, InvalidConfig, adapter_for
from common.errors import ApplicationError
from workspaces.models import Workspace
from workspaces.quotas import quota_check

MASK = "********"
MASK_MIN_LENGTH = 12
MAX_ALLOWLIST_ENTRIES = 1000


def mask_secret(value: str) -> str:
    """`1234…wxyz` for long secrets, `********` for short ones: enough to recognise, not to use."""
    if not value:
        return ""
    if len(value) < MASK_MIN_LENGTH:
        return MASK
    return f"{value[:4]}…{value[-4:]}"


def masked_config(*, channel: Channel) -> dict[str, Any]:
    """The config as every response shows it: public fields as they are, secrets masked."""
    config = dict(channel.public_config)
    for key, value in channel.secrets.items():
        config[key] = mask_secret(str(value))
    return config


def _normalise_allowlist(allowlist: Iterable[Any]) -> list[str]:
    values = list(allowlist)
    if len(values) > MAX_ALLOWLIST_ENTRIES:
        raise ApplicationError(
            "allowlist is too long.",
            details={"allowlist": [f"At most {MAX_ALLOWLIST_ENTRIES} entries."]},
        )
    cleaned: list[str] = []
    for value in values:
        if isinstance(value, bool) or not isinstance(value, (str, int)) or not str(value).strip():
            raise ApplicationError(
                "allowlist entries must be sender or chat ids.",
                details={"allowlist": ["Each entry must be a non-empty string or number."]},
            )
        text = str(value).strip()[:200]
        if text not in cleaned:
            cleaned.append(text)
    return cleaned


def _apply_config(channel: Channel, config: Mapping[str, Any], *, enabled: bool) -> None:
    """Validate `config` (plaintext, complete) and store it split into public and secret parts."""
    adapter = adapter_for(channel.platform)
    if not isinstance(config, Mapping):
        raise InvalidConfig("config must be a JSON object.", details={"config": ["Must be a JSON object."]})
    try:
        clean = adapter.validate(config, enabled=enabled)
    except ConfigError as exc:
        field, messages = next(iter(exc.errors.items()))
        raise InvalidConfig(f"config.{field}: {messages[0]}", details={"config": exc.errors}) from None
    clean = adapter.complete(clean)
    secret_keys = adapter.secret_keys()
    channel.public_config = {k: v for k, v in clean.items() if k not in secret_keys}
    channel.secret_config = json.dumps({k: v for k, v in clean.items() if k in secret_keys}, sort_keys=True)
    _apply_digests(channel, adapter, clean)


def _apply_digests(channel: Channel, adapter: ChannelAdapter, config: Mapping[str, Any]) -> None:
    channel.credential_key = credential_digest(channel.platform, adapter.credential(config))
    channel.lookup_key = credential_digest(channel.platform, adapter.lookup_value(config))


def channel_rekey_all(*, batch_size: int = 500) -> int:
    """Recompute every channel's lookup keys under the current SECRET_KEY (after a rotation);
    returns how many changed. Idempotent: rows already keyed under it are left alone."""
    changed = 0
    queryset = Channel.objects.only(
        "id", "platform", "public_config", "secret_config", "credential_key", "lookup_key"
    )
    for channel in queryset.iterator(chunk_size=batch_size):
        before = (channel.credential_key, channel.lookup_key)
        _apply_digests(channel, adapter_for(channel.platform), channel.config)
        if (channel.credential_key, channel.lookup_key) != before:
            Channel.objects.filter(pk=channel.pk).update(
                credential_key=channel.credential_key, lookup_key=channel.lookup_key
            )
            changed += 1
    return changed


def _check_public_credential(channel: Channel, *, lock: bool = False) -> None:
    """A public platform id (Discord's application id) belongs to one workspace: an enabled
    channel may not hold one that an enabled channel of another workspace holds (409).

    With `lock` (inside the saving transaction, PostgreSQL) concurrent claims of one id are
    serialised by a transaction-scoped advisory lock on its keyed hash, so two workspaces
    cannot both pass the check.
    """
    adapter = adapter_for(channel.platform)
    if adapter.credential_is_secret or not channel.enabled or not channel.credential_key:
        return
    connection = connections[router.db_for_write(Channel)]
    if lock and connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [int(channel.credential_key[:15], 16)])
    taken = (
        Channel.objects.filter(platform=channel.platform, enabled=True, credential_key=channel.credential_key)
        .exclude(workspace_id=channel.workspace_id)
        .exclude(pk=channel.pk)
        .exists()
    )
    if taken:
        raise ApplicationTaken(
            details={"config": {adapter.credential_key: ["Used by an enabled channel of another workspace."]}}
        )


def channel_prepare(
    *,
    workspace: Workspace,
    platform: str,
    config: Mapping[str, Any],
    allowlist: Iterable[Any] = (),
    enabled: bool = True,
    name: str = "",
) -> Channel:
    """An unsaved, validated channel (400 `invalid_config` when the config does not fit)."""
    channel = Channel(workspace=workspace, platform=platform, name=name or "", enabled=enabled)
    channel.allowlist = _normalise_allowlist(allowlist)
    _apply_config(channel, config, enabled=enabled)
    _check_public_credential(channel)
    return channel


def channel_create(
    *,
    workspace: Workspace,
    platform: str,
    config: Mapping[str, Any],
    allowlist: Iterable[Any] = (),
    enabled: bool = True,
    name: str = "",
) -> Channel:
    """Create a channel; an enabled one runs its adapter's `on_enable` after commit."""
    channel = channel_prepare(
        workspace=workspace, platform=platform, config=config, allowlist=allowlist, enabled=enabled, name=name
    )
    with transaction.atomic():
        quota_check(
            workspace=workspace, resource="channels", existing=Channel.objects.filter(workspace=workspace)
        )
        _check_public_credential(channel, lock=True)
        channel.save()
        if channel.enabled:
            lifecycle.enable_on_commit(channel)
    channel.refresh_from_db()
    return channel


def channel_bulk_create(*, channels: list[Channel]) -> list[Channel]:
    """Save prepared channels in one INSERT (bundle and org imports); enabled ones run their
    adapter's `on_enable` after commit. A public id claimed by two workspaces of the batch is a 409 like one claimed in
    the database."""
    owners: dict[tuple[str, str], Any] = {}
    for channel in channels:
        if (
            channel.enabled
            and channel.credential_key
            and not adapter_for(channel.platform).credential_is_secret
        ):
            owner = owners.setdefault((channel.platform, channel.credential_key), channel.workspace_id)
            if owner != channel.workspace_id:
                raise ApplicationTaken("Two workspaces of the import connect the same platform application.")
    with transaction.atomic():
        for channel in sorted(channels, key=lambda c: c.credential_key):  # one lock order
            _check_public_credential(channel, lock=True)
        created = Channel.objects.bulk_create(channels)
        for channel in created:
            if channel.enabled:
                lifecycle.enable_on_commit(channel)
    return created


def channel_update(*, channel: Channel, data: Mapping[str, Any]) -> Channel:
    """Apply `config` (merged key by key; a masked secret sent back keeps the stored one; null
    removes a key), `allowlist`, `enabled` and `name`, then re-validate the whole config."""
    was_enabled = channel.enabled
    old_config = channel.config
    old_credential = channel.credential_key
    enabled = data.get("enabled", channel.enabled)
    merged = dict(old_config)
    if "config" in data:
        incoming = data["config"]
        if not isinstance(incoming, Mapping):
            raise InvalidConfig(
                "config must be a JSON object.", details={"config": ["Must be a JSON object."]}
            )
        secret_keys = adapter_for(channel.platform).secret_keys()
        for key, value in incoming.items():
            if value is None:
                merged.pop(key, None)
            elif key in secret_keys and key in old_config and value == mask_secret(str(old_config[key])):
                continue  # the masked value came back: keep the secret
            else:
                merged[key] = value
    if "config" in data or enabled != was_enabled:
        _apply_config(channel, merged, enabled=enabled)
    if "allowlist" in data:
        channel.allowlist = _normalise_allowlist(data["allowlist"] or [])
    if "name" in data:
        channel.name = data["name"] or ""
    channel.enabled = enabled
    new_config = channel.config
    claims = channel.enabled and (not was_enabled or channel.credential_key != old_credential)
    with transaction.atomic():
        if claims:
            _check_public_credential(channel, lock=True)
        channel.save()
        setup_changed = any(
            old_config.get(k) != new_config.get(k) for k in adapter_for(channel.platform).enable_keys
        )
        if channel.enabled and (not was_enabled or setup_changed):
            lifecycle.enable_on_commit(channel)
        elif was_enabled and not channel.enabled:
            lifecycle.disable_on_commit(channel, old_config)
    channel.refresh_from_db()
    return channel


def channel_delete(*, channel: Channel) -> None:
    with transaction.atomic():
        if channel.enabled:
            lifecycle.disable_after_delete(channel)
        channel.delete()
