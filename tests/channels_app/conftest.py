"""Fixtures of the channel tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from django.conf import settings

from channels_app import batcher
from tests.channels_app.helpers import BrokerQueue


@pytest.fixture
def broker() -> Iterator[BrokerQueue]:
    """The test broker's default queue, empty at the start and at the end of the test."""
    queue = BrokerQueue(settings.CELERY_BROKER_URL)
    queue.redis.delete("celery")
    yield queue
    batcher.inbound_batcher.flush()  # what the test left pending goes before the queue is emptied
    queue.redis.delete("celery")


@pytest.fixture
def frozen_clock(monkeypatch):
    """Sets the clock of the signature windows: `frozen_clock(unix_seconds)`."""
    from channels_app.adapters import base as adapter_base

    def freeze(at: float) -> None:
        monkeypatch.setattr(adapter_base, "current_timestamp", lambda: at)

    return freeze


@pytest.fixture
def handed_over(monkeypatch) -> list[tuple[str, str]]:
    """(task name, message id) of every publish the webhook hands to the inbound batcher, in
    order; recorded instead of published."""
    handed: list[tuple[str, str]] = []

    def record(task, message_ids):
        handed.extend((task.name, message_id) for message_id in message_ids)

    monkeypatch.setattr(batcher.inbound_batcher, "submit", record)
    return handed
