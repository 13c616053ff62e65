"""Test settings: the real settings on real PostgreSQL and Redis (never SQLite).

Defaults point at the services on 127.0.0.1; override with TEST_DATABASE_URL / TEST_BROKER_URL
(helpers running suites side by side use different database names and Redis databases).
"""

import atexit
import os
import shutil
import tempfile

os.environ["DATABASE_URL"] = os.environ.get(
    "TEST_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/integrations"
)
os.environ["CELERY_BROKER_URL"] = os.environ.get("TEST_BROKER_URL", "redis://127.0.0.1:6379/15")
os.environ.setdefault("ENCRYPTION_KEYS", "")
if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    # A fresh metrics directory per test session (inherited by the workers the e2e tests start).
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="integrations-metrics-")
    atexit.register(shutil.rmtree, os.environ["PROMETHEUS_MULTIPROC_DIR"], ignore_errors=True)
# DEBUG off on PostgreSQL is production to the system checks (common.E004): commands the tests
# start in a subprocess (run_echo_agent) run them, so the tests set a key of their own.
os.environ.setdefault("SECRET_KEY", "tests-only-secret-key-" + "x" * 40)

from integrations_project.settings import *  # noqa: F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}

# Nothing listens on the discard port: a test that forgets to point a platform at its fake
# server fails fast on a refused loopback connection instead of reaching the internet (chat
# actions such as Telegram's "typing…" are sent by every delivery to a Telegram chat).
TELEGRAM_API_BASE_URL = os.environ.get("TELEGRAM_API_BASE_URL", "http://127.0.0.1:9")
