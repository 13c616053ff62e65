"""The real-worker test support starts a worker that answers on the test broker."""

import pytest

from integrations_project.celery import app

pytestmark = pytest.mark.e2e


def test_worker_answers_ping(celery_worker):
    replies = app.control.ping(timeout=5)
    assert replies, "no worker answered"
    assert any(name.startswith("test-") for reply in replies for name in reply)
