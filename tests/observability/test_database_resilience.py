"""CONN_HEALTH_CHECKS: a PostgreSQL connection killed under a running web process costs no request.

The service runs as in production (gunicorn, a kept connection, CONN_MAX_AGE 60); its backend is
terminated from another connection, and the next request must still succeed.
"""

from __future__ import annotations

import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import psycopg
import pytest
from django.db import connection

from tests.support.fake_http import free_port
from tests.support.worker import _worker_env  # the environment the test worker gets

ROOT = Path(__file__).resolve().parents[2]
ADMIN = "a" * 40


def _get(url: str) -> int:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {ADMIN}"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


def _terminate_backends_of(database: str) -> int:
    """pg_terminate_backend on every connection to the test database except this one."""
    db = connection.settings_dict
    dsn = f"host={db['HOST'] or '127.0.0.1'} port={db['PORT'] or 5432} user={db['USER'] or 'postgres'} dbname=postgres"
    with psycopg.connect(dsn, autocommit=True) as admin:
        rows = admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = %s AND pid <> pg_backend_pid() AND pid <> %s",
            (database, connection.connection.info.backend_pid),
        ).fetchall()
    return len(rows)


@pytest.mark.django_db(transaction=True)
def test_next_request_succeeds_after_the_connections_are_killed():
    connection.ensure_connection()
    port = free_port()
    env = _worker_env({"ADMIN_TOKEN": ADMIN, "LOG_LEVEL": "WARNING"})
    # One process, one thread: the connection that was killed is certainly the one reused.
    server = subprocess.Popen(
        [
            *(sys.executable, "-m", "gunicorn", "integrations_project.wsgi:application"),
            *("--bind", f"127.0.0.1:{port}", "--workers", "1", "--threads", "1"),
        ],
        cwd=ROOT,
        env={**env, "DJANGO_SETTINGS_MODULE": "integrations_project.settings_test"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}/workspaces"
    try:
        for _ in range(150):
            try:
                if _get(url) == 200:
                    break
            except OSError:
                time.sleep(0.2)
        else:
            pytest.fail("gunicorn did not start")
        assert _get(url) == 200  # the connection is now kept between requests
        assert _terminate_backends_of(connection.settings_dict["NAME"]) >= 1
        assert [_get(url) for _ in range(3)] == [200, 200, 200]
    finally:
        server.terminate()
        server.wait(timeout=20)
