"""Test settings: the real settings on real PostgreSQL and Redis (never SQLite).

Defaults point at the services on 127.0.0.1; override with TEST_DATABASE_URL / TEST_BROKER_URL
(helpers running suites side by side use different database names and Redis databases).
"""

import os

os.environ["DATABASE_URL"] = os.environ.get(
    "TEST_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/integrations"
)
os.environ["CELERY_BROKER_URL"] = os.environ.get("TEST_BROKER_URL", "redis://127.0.0.1:6379/15")
os.environ.setdefault("ENCRYPTION_KEYS", "")
# DEBUG off on PostgreSQL is production to the system checks (common.E004): commands the tests
# start in a subprocess (run_echo_agent) run them, so the tests set a key of their own.
os.environ.setdefault("SECRET_KEY", "tests-only-secret-key-" + "x" * 40)

from integrations_project.settings import *  # noqa: F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
