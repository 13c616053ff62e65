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


@pytest.fixture(params=["outside a task", "inside a task"])
def calling_context(request):
    """Publishing from a web request, or from a running task (whose id the new task records)."""
    if request.param == "outside a task":
        yield None
        return
    from celery._state import _task_stack

    send_message.push_request(id="parent-task-id", root_id="root-task-id", called_directly=False)
    _task_stack.push(send_message)
    yield ("parent-task-id", "root-task-id")
    _task_stack.pop()
    send_message.pop_request()


def _comparable(message):
    varying_headers = {"id", "argsrepr"}  # a fresh task id; a tuple's repr vs a list's
    varying_properties = {"correlation_id", "delivery_tag", "argsrepr", "kwargsrepr"}
    return (
        message["args"],
        message["kwargs"],
        message["content_type"],
        {k: v for k, v in message["headers"].items() if k not in varying_headers},
        {k: v for k, v in message["properties"].items() if k not in varying_properties},
    )


def test_message_is_the_one_delay_would_send(publisher, broker, calling_context):
    process_inbound.delay("same-id")
    publisher.publish(process_inbound, "same-id")  # declares the queue
    publisher.publish(process_inbound, "same-id")  # skips the declaration
    by_delay, first, second = broker.messages()
    if calling_context is None:  # its own root
        for message in (by_delay, first, second):
            message["headers"]["root_id"] = message["headers"]["id"] = "own"
    assert _comparable(first) == _comparable(by_delay) == _comparable(second)
    assert first["args"] == ["same-id"] and first["headers"]["argsrepr"] == "('same-id',)"
    if calling_context:
        assert (first["headers"]["parent_id"], first["headers"]["root_id"]) == calling_context


def test_a_task_with_options_of_its_own_is_sent_by_apply_async(publisher, broker, monkeypatch):
    monkeypatch.setattr(process_inbound, "time_limit", 30)
    monkeypatch.setattr(process_inbound, "_exec_options", None)  # Celery caches them per task
    publisher.publish(process_inbound, "limited")
    (message,) = broker.messages()
    assert message["headers"]["timelimit"] == [30, None]
    assert message["args"] == ["limited"]


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


def test_static_task_routes_keep_the_fast_path(publisher, broker, monkeypatch):
    """The project routes the scheduler's tasks by name (CELERY_TASK_ROUTES); such routes depend
    only on the task name, so they must not push every publish through `apply_async`."""
    assert process_inbound.app.amqp.router.routes, "the project configures task routes"

    def refuse(*args, **kwargs):
        raise AssertionError("apply_async used although the route is static")

    monkeypatch.setattr(process_inbound, "apply_async", refuse)
    publisher.publish(process_inbound, "fast")
    (message,) = broker.messages()
    assert message["headers"]["task"] == "channels.process_inbound"
    assert message["args"] == ["fast"]
