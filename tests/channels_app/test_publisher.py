"""The long-lived task publisher: one connection and one Redis client reused across publishes,
Celery's own message format, a fresh start after a broker failure or a fork."""

from __future__ import annotations

import time

import pytest
from django.conf import settings
from kombu.exceptions import OperationalError

from channels_app import publisher as publisher_module
from channels_app.publisher import ReusedClientRedisChannel, TaskPublisher
from channels_app.tasks import process_inbound, send_message
from tests.channels_app.helpers import CLOSED_BROKER_URL


@pytest.fixture
def publisher():
    instance = TaskPublisher()
    yield instance
    instance.reset()


def test_publishes_reuse_one_producer_and_one_redis_client(publisher, broker, monkeypatch):
    created = []
    original = ReusedClientRedisChannel._create_client

    def counting(self, *args, **kwargs):
        client = original(self, *args, **kwargs)
        created.append(client)
        return client

    monkeypatch.setattr(ReusedClientRedisChannel, "_create_client", counting)
    producer = publisher.producer()
    publisher.publish(process_inbound, "id-0")  # connects, declares the queue
    after_first = len(created)
    for index in range(1, 3):
        publisher.publish(process_inbound, f"id-{index}")
    publisher.publish(send_message, "id-out")
    assert publisher.producer() is producer
    assert isinstance(producer.channel, ReusedClientRedisChannel)
    assert len(created) == after_first  # kombu's own channel builds one client per publish
    assert [(m["headers"]["task"], m["args"], m["kwargs"]) for m in broker.messages()] == [
        ("channels.process_inbound", ["id-0"], {}),
        ("channels.process_inbound", ["id-1"], {}),
        ("channels.process_inbound", ["id-2"], {}),
        ("channels.send_message", ["id-out"], {}),
    ]


def test_message_is_the_one_delay_would_send(publisher, broker):
    process_inbound.delay("same-id")
    publisher.publish(process_inbound, "same-id")
    by_delay, by_publisher = broker.messages()
    assert by_publisher["args"] == by_delay["args"] == ["same-id"]
    assert by_publisher["kwargs"] == by_delay["kwargs"] == {}
    varying = {"id", "root_id", "argsrepr"}  # fresh task ids; a tuple's repr vs a list's
    assert {k: v for k, v in by_publisher["headers"].items() if k not in varying} == {
        k: v for k, v in by_delay["headers"].items() if k not in varying
    }
    assert by_publisher["headers"]["argsrepr"] == "('same-id',)"


def test_each_thread_has_its_own_producer(publisher):
    import threading

    seen = []
    thread = threading.Thread(target=lambda: seen.append(publisher.producer()))
    thread.start()
    thread.join()
    assert seen[0] is not publisher.producer()


def test_a_fork_gets_a_new_producer_and_leaves_the_parents_connection_open(publisher, monkeypatch):
    parent = publisher.producer()
    released = []
    monkeypatch.setattr(parent.connection, "release", lambda: released.append(True))
    monkeypatch.setattr(publisher_module.os, "getpid", lambda: -1)
    child = publisher.producer()
    assert child is not parent
    assert released == []


def test_broker_down_raises_after_retries_then_starts_afresh(monkeypatch):
    down = TaskPublisher(url=CLOSED_BROKER_URL)
    started = time.monotonic()
    with pytest.raises((OperationalError, OSError)):
        down.publish(process_inbound, "lost-for-now")
    assert time.monotonic() - started < 5  # Celery's publish retry policy, not a hang
    assert down._state.producer is None  # the broken connection is dropped
    # The next publish builds a new connection: here to the working test broker.
    down._url = settings.CELERY_BROKER_URL
    try:
        down.publish(process_inbound, "delivered")
    finally:
        down.reset()


def test_eager_mode_runs_the_task_in_process(publisher, settings, monkeypatch):
    from integrations_project.celery import app

    ran = []
    monkeypatch.setattr(app.conf, "task_always_eager", True)
    monkeypatch.setattr(
        "channels_app.services.message_process_inbound", lambda message_id: ran.append(message_id)
    )
    publisher.publish(process_inbound, "eager-id")
    assert ran == ["eager-id"]
