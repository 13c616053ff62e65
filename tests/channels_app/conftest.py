"""Fixtures of the channel tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from django.conf import settings

from tests.channels_app.helpers import BrokerQueue


@pytest.fixture
def broker() -> Iterator[BrokerQueue]:
    """The test broker's default queue, empty at the start and at the end of the test."""
    queue = BrokerQueue(settings.CELERY_BROKER_URL)
    queue.redis.delete("celery")
    yield queue
    queue.redis.delete("celery")
