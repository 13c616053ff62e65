"""Issue 11 item 11: production settings and SECRET_KEY rotation of channel lookup keys."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from django.core.checks import WARNING
from django.core.management import call_command

from channels_app.adapters.base import credential_digest
from channels_app.models import Channel, ChannelMessage
from common.checks import check_production_secrets, production_secret_problems
from tests.channels_app.helpers import TELEGRAM_SECRET, post_telegram, telegram_channel, telegram_update

REPO = Path(__file__).resolve().parents[2]
OLD_KEY = "old-secret-key-" + "o" * 40
NEW_KEY = "new-secret-key-" + "n" * 40
POSTGRES = "django.db.backends.postgresql"


def _ids(messages) -> list[str]:
    return sorted(m.id for m in messages)


PRODUCTION = {"debug": False, "engine": POSTGRES, "secret_key_set": True, "encryption_keys_set": True}


def test_production_needs_secret_key():
    assert _ids(production_secret_problems(**{**PRODUCTION, "secret_key_set": False})) == ["common.E004"]


def test_production_warns_without_encryption_keys():
    messages = production_secret_problems(**{**PRODUCTION, "encryption_keys_set": False})
    assert _ids(messages) == ["common.W005"]
    assert messages[0].level == WARNING


def test_production_with_both_is_clean():
    assert production_secret_problems(**PRODUCTION) == []


@pytest.mark.parametrize("change", [{"debug": True}, {"engine": "django.db.backends.sqlite3"}])
def test_development_setups_are_not_checked(change):
    bare = {**PRODUCTION, "secret_key_set": False, "encryption_keys_set": False, **change}
    assert production_secret_problems(**bare) == []


def test_the_registered_check_reads_the_settings(settings):
    """The test settings are production-like: DEBUG off on PostgreSQL."""
    settings.SECRET_KEY_FROM_ENVIRONMENT = False
    settings.ENCRYPTION_KEYS = []
    assert _ids(check_production_secrets()) == ["common.E004", "common.W005"]
    settings.SECRET_KEY_FROM_ENVIRONMENT = True
    settings.ENCRYPTION_KEYS = [Fernet.generate_key().decode()]
    assert check_production_secrets() == []


def _manage(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("SECRET_KEY", "DJANGO_", "SECURE_"))}
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=REPO,
        env={**base, "DJANGO_SETTINGS_MODULE": "integrations_project.settings", **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def _production_env(tmp_path) -> dict[str, str]:
    return {
        "DEBUG": "false",
        "VAR_DIR": str(tmp_path),
        "DATABASE_URL": "postgres://postgres@127.0.0.1:5432/unused",
        "CELERY_BROKER_URL": "redis://127.0.0.1:6379/1",
        "ALLOWED_HOSTS": "api.example.com",
        "CSRF_TRUSTED_ORIGINS": "https://api.example.com",
    }


def test_manage_check_refuses_production_without_secret_key(tmp_path):
    result = _manage(_production_env(tmp_path), "check")
    assert result.returncode != 0
    assert "common.E004" in result.stderr


def test_check_deploy_can_be_clean(tmp_path):
    env = {
        **_production_env(tmp_path),
        "SECRET_KEY": "k" * 20 + "Q7x!v9#Lm2@pR4$tW8^zY6&nB3*cF5(hJ1)dG0-s",
        "ENCRYPTION_KEYS": Fernet.generate_key().decode(),
        "SECURE_SSL_REDIRECT": "true",
        "SECURE_HSTS_SECONDS": "31536000",
        "SECURE_HSTS_INCLUDE_SUBDOMAINS": "true",
        "SECURE_HSTS_PRELOAD": "true",
        "SECURE_PROXY_SSL_HEADER": "HTTP_X_FORWARDED_PROTO,https",
        "SESSION_COOKIE_SECURE": "true",
        "CSRF_COOKIE_SECURE": "true",
    }
    result = _manage(env, "check", "--deploy", "--fail-level", "WARNING")
    assert result.returncode == 0, result.stderr
    assert "no issues" in result.stdout


def test_proxy_ssl_header_must_be_a_pair(tmp_path):
    result = _manage({"VAR_DIR": str(tmp_path), "SECURE_PROXY_SSL_HEADER": "HTTP_X_FORWARDED_PROTO"}, "check")
    assert result.returncode != 0
    assert "SECURE_PROXY_SSL_HEADER" in result.stderr


# --- SECRET_KEY rotation ----------------------------------------------------------------------------


@pytest.fixture
def rotation(settings, db):
    settings.SECRET_KEY = OLD_KEY
    settings.SECRET_KEY_FALLBACKS = []
    settings.ENCRYPTION_KEYS = []  # the development default: secrets encrypted with SECRET_KEY too
    settings.PUBLIC_BASE_URL = ""
    return settings


def test_channel_lookup_survives_rotation_with_fallbacks(rotation, workspace, client, broker):
    channel = telegram_channel(workspace)
    assert post_telegram(client, telegram_update(1)).status_code == 200
    rotation.SECRET_KEY = NEW_KEY
    rotation.SECRET_KEY_FALLBACKS = [OLD_KEY]
    assert post_telegram(client, telegram_update(2)).status_code == 200
    assert ChannelMessage.objects.filter(channel=channel, direction="inbound").count() == 2
    assert Channel.objects.get(pk=channel.pk).config["webhook_secret"] == TELEGRAM_SECRET


def test_rekey_then_drop_the_fallback(rotation, workspace, client, broker):
    channel = telegram_channel(workspace)
    rotation.SECRET_KEY = NEW_KEY
    rotation.SECRET_KEY_FALLBACKS = [OLD_KEY]
    call_command("rekey_channels", verbosity=0)
    stored = Channel.objects.get(pk=channel.pk)
    assert stored.lookup_key == credential_digest("telegram", TELEGRAM_SECRET, secret_key=NEW_KEY)
    # A channel created after the rotation shares the bot of the old one: the same credential key.
    twin = telegram_channel(workspace)
    assert Channel.objects.get(pk=twin.pk).credential_key == stored.credential_key
    call_command("rotate_encryption_keys", verbosity=0)
    rotation.SECRET_KEY_FALLBACKS = []
    assert post_telegram(client, telegram_update(3)).status_code == 200
    assert ChannelMessage.objects.filter(channel=channel, direction="inbound").count() == 1


def test_without_fallbacks_old_lookups_are_lost(rotation, workspace, client, broker):
    """Why the fallbacks matter: the control case of the rotation test."""
    telegram_channel(workspace)
    rotation.SECRET_KEY = NEW_KEY
    assert post_telegram(client, telegram_update(4)).status_code != 200
    assert not ChannelMessage.objects.exists()
