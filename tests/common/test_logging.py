"""Log output: LOG_FORMAT=json gives one JSON object per line with the request id (web and
worker), and the embedded filesystem broker connects without kombu's "No hostname" warning."""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from common.logging import JsonFormatter, RequestIdFilter

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def json_lines():
    """The root logger also writes JSON lines (the formatter and filter LOG_FORMAT=json uses)."""
    buffer = io.StringIO()
    handler = logging.StreamHandler(buffer)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(RequestIdFilter())
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        yield lambda: [json.loads(line) for line in buffer.getvalue().splitlines()]
    finally:
        root.removeHandler(handler)


@pytest.mark.django_db
def test_json_lines_carry_the_request_id(api, json_lines):
    response = api.post("/workspaces", {"name": "x"}, format="json", HTTP_X_REQUEST_ID="req-4711")
    assert response.status_code == 401 and response["X-Request-Id"] == "req-4711"
    lines = json_lines()
    assert lines, "the refused request is logged"
    line = next(line for line in lines if line["logger"] == "django.request")
    assert line["request_id"] == "req-4711" and line["level"] == "WARNING"
    assert line["message"].startswith("Unauthorized: /workspaces")
    assert line["time"].endswith("Z")


def test_json_formatter_keeps_one_object_per_line_with_tracebacks(json_lines):
    log = logging.getLogger("tests.json")
    try:
        raise ValueError("two\nlines")
    except ValueError:
        log.exception("failed:\n%s", "detail", extra={"channel_id": "c-1"})
    [line] = [line for line in json_lines() if line["logger"] == "tests.json"]
    assert line["message"] == "failed:\ndetail" and line["channel_id"] == "c-1"
    assert "ValueError: two\nlines" in line["exc_info"] and line["request_id"] == "-"


def _python(code: str, **env: str) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if k not in {"CELERY_BROKER_URL", "REDIS_URL", "LOG_FORMAT"}}
    clean.update(env)
    clean["DJANGO_SETTINGS_MODULE"] = "integrations_project.settings"
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, env=clean, timeout=120
    )


def test_log_format_setting_selects_json_and_refuses_unknown_values(tmp_path):
    code = "import django, logging; django.setup(); logging.getLogger('probe').warning('hello %s', 1)"
    plain = _python(code, VAR_DIR=str(tmp_path))
    assert plain.returncode == 0, plain.stderr
    assert "WARNING probe [-] hello 1" in plain.stderr
    as_json = _python(code, VAR_DIR=str(tmp_path), LOG_FORMAT="JSON")
    [line] = [json.loads(text) for text in as_json.stderr.splitlines() if text.startswith("{")]
    assert (line["logger"], line["message"], line["request_id"]) == ("probe", "hello 1", "-")
    bad = _python(code, VAR_DIR=str(tmp_path), LOG_FORMAT="xml")
    assert bad.returncode != 0 and "LOG_FORMAT must be one of plain, json" in bad.stderr


def test_celery_workers_log_with_the_service_format(tmp_path):
    """Celery's setup_logging signal is answered with the service's LOGGING, so a worker's lines
    are JSON too instead of Celery's own format."""
    code = (
        "import django; django.setup(); import logging\n"
        "from integrations_project.celery import app\n"
        "from celery.signals import setup_logging\n"
        "assert setup_logging.send(sender=None, loglevel=30, logfile=None, format='', colorize=False)\n"
        "logging.getLogger('celery.app.trace').info('Task x succeeded')\n"
        "logging.getLogger('channels_app.services').warning('send failed')\n"
    )
    result = _python(code, VAR_DIR=str(tmp_path), LOG_FORMAT="json", LOG_LEVEL="INFO")
    assert result.returncode == 0, result.stderr
    # One JSON line: the worker's --loglevel (WARNING here) wins over LOG_LEVEL.
    [line] = [json.loads(text) for text in result.stderr.splitlines() if text.startswith("{")]
    assert line["logger"] == "channels_app.services" and line["message"] == "send failed"


@pytest.mark.parametrize("url", [None, "filesystem://localhost/"])
def test_filesystem_broker_connects_without_the_no_hostname_warning(tmp_path, url):
    code = (
        "import django, logging; django.setup()\n"
        "from django.conf import settings\n"
        "from integrations_project.celery import app\n"
        "with app.connection_for_write() as conn:\n"
        "    conn.ensure_connection(max_retries=1)\n"
        "    queue = conn.SimpleQueue('probe')\n"
        "    queue.put({'n': 1}); message = queue.get(timeout=5); message.ack(); queue.close()\n"
        "    print(settings.CELERY_BROKER_URL, conn.info()['hostname'], message.payload)\n"
    )
    env = {"VAR_DIR": str(tmp_path)}
    if url is not None:
        env["CELERY_BROKER_URL"] = url
    result = _python(code, **env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["filesystem://localhost/", "localhost", "{'n':", "1}"]
    assert "No hostname was supplied" not in result.stderr
    assert (tmp_path / "celery-broker").is_dir()
