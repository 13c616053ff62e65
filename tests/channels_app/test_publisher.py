"""The long-lived task publisher: one connection and one Redis client reused across publishes,
Celery's own message format, a fresh start after a broker failure or a fork."""

from __future__ import annotations

import base64
import copy
import json
import time
from contextlib import contextmanager

import pytest
from django.conf import settings
from kombu import Producer
from kombu.exceptions import OperationalError

from channels_app import publisher as publisher_module
from channels_app.publisher import RedisFrame, ReusedClientRedisChannel, TaskPublisher
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


# --- frames: later publishes of a plain task are one LPUSH of a rendered message ---------------------------


def _own_root(message):
    """A message outside any task is its own root: make the two fresh-id fields comparable."""
    message = copy.deepcopy(message)
    message["headers"]["root_id"] = message["headers"]["id"] = "own"
    return message


def _refuse_kombu(monkeypatch) -> None:
    def refuse(*args, **kwargs):
        raise AssertionError("this publish went through kombu")

    monkeypatch.setattr(TaskPublisher, "_send", staticmethod(refuse))
    monkeypatch.setattr(process_inbound, "apply_async", refuse)
    monkeypatch.setattr(Producer, "publish", refuse)


@contextmanager
def _inside_a_task(parent_id: str = "parent-task-id", root_id: str = "root-task-id"):
    from celery._state import _task_stack

    send_message.push_request(id=parent_id, root_id=root_id, called_directly=False)
    _task_stack.push(send_message)
    try:
        yield
    finally:
        _task_stack.pop()
        send_message.pop_request()


def test_later_publishes_skip_kombu_and_equal_what_delay_sends(publisher, broker, monkeypatch):
    process_inbound.delay("by-delay")
    publisher.publish(process_inbound, "first")  # through kombu: keeps the frame
    assert set(publisher._state.frames) == {"channels.process_inbound"}
    _refuse_kombu(monkeypatch)
    publisher.publish(process_inbound, "second")
    publisher.publish_many(process_inbound, [("third",), ("fourth",)])
    by_delay, *ours = broker.messages()
    assert [m["args"] for m in ours] == [["first"], ["second"], ["third"], ["fourth"]]
    expected = _comparable(_own_root(by_delay))[1:]
    for message in ours:
        assert _comparable(_own_root(message))[1:] == expected
        assert message["headers"]["argsrepr"] == repr(tuple(message["args"]))


def test_publish_many_is_one_lpush_in_order(publisher, broker, monkeypatch):
    publisher.publish(process_inbound, "first")
    client = publisher.producer().channel._reused_client[1]
    pushes = []
    original = client.lpush

    def counting(key, *values):
        pushes.append((key, len(values)))
        return original(key, *values)

    monkeypatch.setattr(client, "lpush", counting)
    publisher.publish_many(process_inbound, [("a",), ("b",), ("c",)])
    assert pushes == [("celery", 3)]
    assert [m["args"] for m in broker.messages()] == [["first"], ["a"], ["b"], ["c"]]


def test_each_rendered_message_has_its_own_id_and_delivery_tag(publisher, broker):
    publisher.publish(process_inbound, "first")
    publisher.publish_many(process_inbound, [(f"id-{n}",) for n in range(5)])
    publisher.publish(process_inbound, "last")
    messages = broker.messages()
    assert len(messages) == 7
    for message in messages:
        headers, properties = message["headers"], message["properties"]
        assert headers["id"] == headers["root_id"] == properties["correlation_id"]
        assert headers["parent_id"] is None
    assert len({m["headers"]["id"] for m in messages}) == 7
    assert len({m["properties"]["delivery_tag"] for m in messages}) == 7


TRICKY_ARGS = [
    ('say "hi"',),
    ("it's",),
    ("back\\slash \\n \\u0041 \\\\",),
    ('\\"; DROP',),
    ("ünïcødé ✓ 😀 ",),
    ("line\nbreak\ttab\u2028\u2029\x7f",),
    ("",),
    ("{}, [], (), null, @@frame-",),
    ("x", 'two "args"', 3, None, ["nested", {"k": "v"}]),
]


@pytest.mark.parametrize("args", TRICKY_ARGS, ids=range(len(TRICKY_ARGS)))
def test_arguments_round_trip_through_the_frame(publisher, broker, args, monkeypatch):
    publisher.publish(process_inbound, "first")  # the frame
    with monkeypatch.context() as patched:
        _refuse_kombu(patched)
        publisher.publish(process_inbound, *args)
    through_kombu = TaskPublisher()  # its first publish goes through kombu
    try:
        through_kombu.publish(process_inbound, *args)
    finally:
        through_kombu.reset()
    _first, framed, plain = broker.messages()
    assert framed["args"] == plain["args"] == json.loads(json.dumps(list(args)))
    assert framed["headers"]["argsrepr"] == plain["headers"]["argsrepr"] == repr(args)
    assert _comparable(_own_root(framed)) == _comparable(_own_root(plain))


def test_an_argument_holding_a_marker_text_round_trips(publisher, broker):
    publisher.publish(process_inbound, "first")
    for marker in RedisFrame._MARKERS:
        publisher.publish(process_inbound, marker)
    messages = broker.messages()[1:]
    assert [m["args"] for m in messages] == [[marker] for marker in RedisFrame._MARKERS]
    assert [m["headers"]["argsrepr"] for m in messages] == [repr((marker,)) for marker in RedisFrame._MARKERS]


@pytest.fixture
def first_put(publisher, broker, monkeypatch):
    """The (key, message) kombu pushed for the first publish of `first`, as the frame saw it."""
    captured = []
    original = RedisFrame.from_put.__func__

    def spy(cls, put, task_name, args):
        captured.append(copy.deepcopy(put))
        return original(cls, put, task_name, args)

    monkeypatch.setattr(RedisFrame, "from_put", classmethod(spy))
    publisher.publish(process_inbound, "first")
    (put,) = captured
    monkeypatch.undo()
    return put


def _with_body(message, body) -> None:
    message["body"] = base64.b64encode(json.dumps(body).encode()).decode()


FRAME_REFUSALS = {
    "compression": lambda m: m["headers"].__setitem__("compression", "application/x-gzip"),
    "parent-id": lambda m: m["headers"].__setitem__("parent_id", "some-parent"),
    "root-id-of-another-task": lambda m: m["headers"].__setitem__("root_id", "another-root"),
    "correlation-id": lambda m: m["properties"].__setitem__("correlation_id", "other"),
    "argsrepr": lambda m: m["headers"].__setitem__("argsrepr", "('other',)"),
    "body-args": lambda m: _with_body(m, [["other"], {}, {}]),
    "body-kwargs": lambda m: _with_body(m, [["first"], {"k": 1}, {}]),
    "body-shape": lambda m: _with_body(m, {"args": ["first"]}),
    "body-not-base64-json": lambda m: m.__setitem__("body", "not base64 at all!"),
    "body-encoding": lambda m: m["properties"].__setitem__("body_encoding", "plain"),
    "content-type": lambda m: m.__setitem__("content-type", "application/x-python-serialize"),
    "task-name": lambda m: m["headers"].__setitem__("task", "channels.send_message"),
    "marker-inside": lambda m: m["headers"].__setitem__("origin", RedisFrame._ID),
    "no-headers": lambda m: m.pop("headers"),
}


def test_the_first_message_makes_a_frame(first_put):
    frame = RedisFrame.from_put(first_put, "channels.process_inbound", ("first",))
    assert frame is not None and frame.key == "celery"
    rendered = json.loads(frame.render(("again",)))
    assert json.loads(base64.b64decode(rendered["body"]))[:2] == [["again"], {}]
    assert rendered["headers"]["argsrepr"] == "('again',)"


@pytest.mark.parametrize("change", FRAME_REFUSALS.values(), ids=FRAME_REFUSALS.keys())
def test_from_put_refuses_a_message_the_substitution_cannot_rely_on(first_put, change):
    key, message = copy.deepcopy(first_put)
    change(message)
    assert RedisFrame.from_put((key, message), "channels.process_inbound", ("first",)) is None


def test_from_put_refuses_other_arguments(first_put):
    assert RedisFrame.from_put(first_put, "channels.process_inbound", ("other",)) is None
    assert RedisFrame.from_put(first_put, "channels.process_inbound", ("first", "second")) is None
    assert RedisFrame.from_put(first_put, "channels.send_message", ("first",)) is None


def test_a_failed_lpush_falls_back_to_kombu_and_the_message_arrives(publisher, broker, monkeypatch):
    import redis

    publisher.publish(process_inbound, "first")
    old_producer = publisher.producer()
    failures = [redis.exceptions.ConnectionError("connection reset")]
    original = redis.Redis.lpush

    def flaky(self, name, *values):
        if failures:
            raise failures.pop()
        return original(self, name, *values)

    through_kombu = []
    original_kombu = TaskPublisher._publish_through_kombu

    def spy(self, task, args):
        through_kombu.append(args)
        return original_kombu(self, task, args)

    monkeypatch.setattr(redis.Redis, "lpush", flaky)
    monkeypatch.setattr(TaskPublisher, "_publish_through_kombu", spy)
    publisher.publish(process_inbound, "second")
    assert failures == []  # the frame's LPUSH was tried, and failed
    assert through_kombu == [("second",)]  # then kombu sent it, on a new producer
    assert publisher.producer() is not old_producer
    publisher.publish(process_inbound, "third")  # a frame again
    assert through_kombu == [("second",)]
    assert [m["args"] for m in broker.messages()] == [["first"], ["second"], ["third"]]


@pytest.mark.parametrize("calling_context", ["inside a task"], indirect=True)
def test_inside_a_task_no_frame_is_kept_or_used(publisher, broker, calling_context, monkeypatch):
    pushes = []
    monkeypatch.setattr(TaskPublisher, "_push", lambda self, frame, calls: pushes.append(calls) or False)
    for n in range(3):
        publisher.publish(process_inbound, f"child-{n}")
    assert publisher._state.frames == {} and pushes == []
    messages = broker.messages()
    assert [m["args"] for m in messages] == [["child-0"], ["child-1"], ["child-2"]]
    for message in messages:
        assert (message["headers"]["parent_id"], message["headers"]["root_id"]) == calling_context
        assert message["headers"]["id"] == message["properties"]["correlation_id"]
        assert message["headers"]["id"] not in calling_context


def test_a_frame_kept_outside_a_task_is_not_used_inside_one(publisher, broker, monkeypatch):
    publisher.publish(process_inbound, "outside")
    assert "channels.process_inbound" in publisher._state.frames
    pushes = []
    original_push = TaskPublisher._push

    def spy(self, frame, calls):
        pushes.append(list(calls))
        return original_push(self, frame, calls)

    monkeypatch.setattr(TaskPublisher, "_push", spy)
    with _inside_a_task():
        publisher.publish_many(process_inbound, [("inside-1",), ("inside-2",)])
    assert pushes == []
    publisher.publish(process_inbound, "outside-again")  # the frame is still there for web requests
    assert pushes == [[("outside-again",)]]
    outside, inside_1, inside_2, again = broker.messages()
    for message in (inside_1, inside_2):
        assert (message["headers"]["parent_id"], message["headers"]["root_id"]) == (
            "parent-task-id",
            "root-task-id",
        )
    for message in (outside, again):
        assert message["headers"]["parent_id"] is None
        assert message["headers"]["root_id"] == message["headers"]["id"]
