"""PublishBatcher: the request that finds the linger passed sends at once, later ids wait for the
background thread (or `flush`) and leave together; broker errors never reach the caller.

A recording publisher stands in for `TaskPublisher` and, where the linger matters, a clock the
test moves stands in for the batcher module's `time`, so no assertion depends on how fast this
machine is: the tests only wait (up to a few seconds) for something to happen."""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import pytest
from celery.exceptions import CeleryError
from kombu.exceptions import KombuError, OperationalError

from channels_app import batcher as batcher_module
from channels_app.batcher import PublishBatcher
from channels_app.tasks import process_inbound

THREAD_NAME = "inbound-publisher"


def wait_until(condition: Callable[[], Any], timeout: float = 5.0) -> bool:
    """Poll `condition` until it is truthy; False after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.002)
    return bool(condition())


class FakeTask:
    def __init__(self, name: str = "tests.fake_task", *, eager: bool = False) -> None:
        self.name = name
        self.app = SimpleNamespace(conf=SimpleNamespace(task_always_eager=eager))


class RecordingPublisher:
    """Records each `publish_many` call: (task name, argument tuples, calling thread's name).
    `failures` are raised, one per call, before anything is recorded."""

    def __init__(self) -> None:
        self.batches: list[tuple[str, list[tuple[Any, ...]], str]] = []
        self.failures: list[BaseException] = []
        self.lock = threading.Lock()

    def publish_many(self, task: Any, calls: Any) -> None:
        with self.lock:
            if self.failures:
                raise self.failures.pop(0)
            self.batches.append((task.name, [tuple(c) for c in calls], threading.current_thread().name))

    def ids(self) -> list[list[Any]]:
        with self.lock:
            return [[args[0] for args in calls] for _, calls, _ in self.batches]

    def count(self) -> int:
        with self.lock:
            return len(self.batches)


class FakeTime:
    """The batcher module's `time`: `monotonic` is a clock the test moves; `sleep` takes a moment
    of real time (so the thread ticks) and does not move the clock."""

    def __init__(self) -> None:
        self.now = 50_000.0
        self.sleeps = 0

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps += 1
        time.sleep(0.002)


@pytest.fixture
def fake_time(monkeypatch) -> FakeTime:
    clock = FakeTime()
    monkeypatch.setattr(batcher_module, "time", clock)
    return clock


@pytest.fixture
def publisher() -> RecordingPublisher:
    return RecordingPublisher()


@pytest.fixture
def make_batcher(publisher):
    """Batchers on the recording publisher with a fixed linger; at the end each one sends what
    it holds and its thread, if any, parks (while the fake clock is still in place)."""
    made: list[PublishBatcher] = []

    def make(linger: float, target: Any = None) -> PublishBatcher:
        instance = PublishBatcher(publisher_factory=lambda: target or publisher, linger=lambda: linger)
        made.append(instance)
        return instance

    yield make
    for instance in made:
        instance.flush()
        assert wait_until(lambda b=instance: b._parked or b._thread is None)


# --- linger 0 and eager mode: sent by the caller ----------------------------------------------------------


def test_linger_zero_sends_every_submit_inline_in_order(make_batcher, publisher):
    batcher = make_batcher(0.0)
    task = FakeTask()
    for ids in (["a"], ["b", "c"], [], ["d"]):
        before = publisher.count()
        batcher.submit(task, ids)
        assert publisher.count() == before + (1 if ids else 0)  # sent before submit returned
    assert publisher.batches == [
        ("tests.fake_task", [("a",)], "MainThread"),
        ("tests.fake_task", [("b",), ("c",)], "MainThread"),
        ("tests.fake_task", [("d",)], "MainThread"),
    ]
    assert batcher._thread is None and batcher._pending == []


def test_eager_mode_sends_inline_even_with_a_long_linger(fake_time, make_batcher, publisher):
    batcher = make_batcher(3600.0)
    task = FakeTask(eager=True)
    for ids in (["a"], ["b"], ["c", "d"]):
        batcher.submit(task, ids)  # the clock does not move: never "due"
    assert publisher.ids() == [["a"], ["b"], ["c", "d"]]
    assert {thread for _, _, thread in publisher.batches} == {"MainThread"}
    assert batcher._thread is None and batcher._pending == []


def test_ids_of_different_tasks_go_in_one_call_per_task(make_batcher, publisher):
    batcher = make_batcher(0.0)
    first, second = FakeTask("tests.first"), FakeTask("tests.second")
    batcher._pending = [(first, "1"), (second, "2"), (first, "3")]
    assert batcher.flush()
    assert [(name, calls) for name, calls, _ in publisher.batches] == [
        ("tests.first", [("1",), ("3",)]),
        ("tests.second", [("2",)]),
    ]


# --- a linger: the first goes at once, the rest wait and leave together --------------------------------------


def _held_after_first(fake_time, make_batcher, publisher, linger: float = 0.3):
    """A batcher whose first submit went at once and whose next three ids are held."""
    batcher = make_batcher(linger)
    task = FakeTask()
    batcher.submit(task, ["a"])
    assert publisher.batches == [("tests.fake_task", [("a",)], "MainThread")]  # at once
    fake_time.now += linger / 3  # inside the window
    batcher.submit(task, ["b"])
    batcher.submit(task, ["c", "d"])
    # The thread ticks a few times and finds the linger not over yet.
    ticks = fake_time.sleeps
    assert wait_until(lambda: fake_time.sleeps >= ticks + 5)
    assert publisher.ids() == [["a"]]
    assert [message_id for _, message_id in batcher._pending] == ["b", "c", "d"]
    return batcher, task


def test_held_ids_are_sent_together_by_the_thread(fake_time, make_batcher, publisher):
    batcher, _task = _held_after_first(fake_time, make_batcher, publisher)
    fake_time.now += 0.3
    assert wait_until(lambda: publisher.count() == 2)
    assert publisher.batches[1] == ("tests.fake_task", [("b",), ("c",), ("d",)], THREAD_NAME)
    assert batcher._pending == []
    # Later ids inside the new window wait for the thread again.
    fake_time.now += 0.1
    batcher.submit(_task, ["e"])
    assert publisher.count() == 2
    fake_time.now += 0.3
    assert wait_until(lambda: publisher.count() == 3)
    assert publisher.batches[2] == ("tests.fake_task", [("e",)], THREAD_NAME)


def test_flush_sends_the_held_ids_from_the_caller(fake_time, make_batcher, publisher):
    batcher, _task = _held_after_first(fake_time, make_batcher, publisher)
    assert batcher.flush() is True
    assert publisher.batches[1] == ("tests.fake_task", [("b",), ("c",), ("d",)], "MainThread")
    assert batcher._pending == []
    assert batcher.flush() is True  # nothing left: nothing sent
    fake_time.now += 1
    time.sleep(0.05)
    assert publisher.count() == 2


def test_flush_with_nothing_pending_is_true_and_sends_nothing(make_batcher, publisher):
    batcher = make_batcher(0.3)
    assert batcher.flush() is True
    assert publisher.batches == []


def test_the_thread_parks_when_idle_and_a_submit_wakes_it(fake_time, make_batcher, publisher):
    batcher, task = _held_after_first(fake_time, make_batcher, publisher)
    thread = batcher._thread
    assert thread is not None and thread.is_alive() and batcher._parked is False
    fake_time.now += 0.3
    assert wait_until(lambda: publisher.count() == 2)
    assert wait_until(lambda: batcher._parked)
    assert fake_time.sleeps >= PublishBatcher.PARK_AFTER_IDLE_CHECKS
    parked_at = fake_time.sleeps
    time.sleep(0.05)  # a ticking thread would have slept ~25 times meanwhile
    assert fake_time.sleeps == parked_at
    # A submit inside the window wakes the same thread, which sends it once the linger is over.
    batcher.submit(task, ["e"])
    assert batcher._parked is False and batcher._thread is thread
    assert wait_until(lambda: fake_time.sleeps > parked_at)
    assert publisher.count() == 2
    fake_time.now += 0.3
    assert wait_until(lambda: publisher.count() == 3)
    assert publisher.batches[2] == ("tests.fake_task", [("e",)], THREAD_NAME)
    assert thread.is_alive() and batcher._thread is thread


# --- failures are logged, never raised ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "error",
    [
        ConnectionRefusedError("refused"),
        OSError("down"),
        OperationalError("down"),
        KombuError("x"),
        CeleryError("x"),
    ],
    ids=["refused", "oserror", "operational", "kombu", "celery"],
)
def test_a_broker_error_is_a_warning_and_later_batches_still_go(make_batcher, publisher, caplog, error):
    batcher = make_batcher(0.0)
    task = FakeTask()
    publisher.failures.append(error)
    with caplog.at_level(logging.WARNING, logger="channels_app.batcher"):
        batcher.submit(task, ["lost-1", "lost-2"])  # does not raise
    (record,) = [r for r in caplog.records if r.name == "channels_app.batcher"]
    assert record.levelno == logging.WARNING
    assert record.getMessage() == (
        "broker unavailable: up to 2 tests.fake_task message(s) left for the requeue sweep"
    )
    batcher.submit(task, ["next"])
    assert publisher.ids() == [["next"]]


@pytest.mark.parametrize("error", [RuntimeError("bug"), KeyError("bug"), AssertionError("bug")])
def test_any_other_error_is_logged_with_its_traceback_and_not_raised(make_batcher, publisher, caplog, error):
    batcher = make_batcher(0.0)
    task = FakeTask()
    publisher.failures.append(error)
    with caplog.at_level(logging.WARNING, logger="channels_app.batcher"):
        batcher.submit(task, ["x"])
    (record,) = [r for r in caplog.records if r.name == "channels_app.batcher"]
    assert record.levelno == logging.ERROR and record.exc_info[1] is error
    assert record.getMessage() == "publishing 1 tests.fake_task message(s) failed"
    batcher.submit(task, ["y"])
    assert publisher.ids() == [["y"]]


def test_the_thread_survives_a_failed_batch(fake_time, make_batcher, publisher, caplog):
    batcher, task = _held_after_first(fake_time, make_batcher, publisher)
    thread = batcher._thread
    publisher.failures.append(RuntimeError("bug"))
    with caplog.at_level(logging.WARNING, logger="channels_app.batcher"):
        fake_time.now += 0.3
        assert wait_until(lambda: any(r.name == "channels_app.batcher" for r in caplog.records))
    assert wait_until(lambda: not batcher._sending.locked())
    assert batcher._pending == [] and publisher.ids() == [["a"]]  # b, c, d: left for the sweep
    fake_time.now += 0.1
    batcher.submit(task, ["e"])
    fake_time.now += 0.3
    assert wait_until(lambda: publisher.count() == 2)
    assert publisher.batches[1] == ("tests.fake_task", [("e",)], THREAD_NAME)
    assert batcher._thread is thread and thread.is_alive()


# --- fork ---------------------------------------------------------------------------------------------------


def test_start_afresh_leaves_nothing_pending_and_no_thread(fake_time, make_batcher, publisher):
    batcher, task = _held_after_first(fake_time, make_batcher, publisher)
    fake_time.now += 0.3
    assert wait_until(lambda: publisher.count() == 2)
    assert wait_until(lambda: batcher._parked)  # the old thread waits on the old condition
    old_condition = batcher._condition
    batcher._pending.append((task, "held-at-fork"))
    batcher._sending.acquire()  # as if a batch was being sent when the process forked
    batcher._start_afresh()
    assert batcher._pending == [] and not batcher._sending.locked()
    assert batcher._thread is None and batcher._parked is True
    assert batcher._condition is not old_condition  # never a lock held at the fork
    # It works afresh: the first submit goes at once.
    batcher.submit(task, ["after"])
    assert publisher.batches[-1] == ("tests.fake_task", [("after",)], "MainThread")


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_child_starts_with_nothing_pending_and_no_thread(fake_time, make_batcher, publisher):
    batcher, task = _held_after_first(fake_time, make_batcher, publisher)
    assert batcher._thread is not None and batcher._pending
    sent_before = publisher.count()
    pid = os.fork()
    if pid == 0:  # the child: report through the exit status only, and never run pytest's exit
        code = 0
        try:
            checks = [
                batcher._pending == [],
                batcher._thread is None,
                not batcher._sending.locked(),
                batcher._parked is True,
                batcher.flush(timeout=1) is True,
                publisher.count() == sent_before,  # the parent's held ids are not sent twice
            ]
            code = next((index + 10 for index, ok in enumerate(checks) if not ok), 0)
            if code == 0:
                batcher.submit(task, ["from-child"])  # never sent before: goes at once
                code = 0 if publisher.ids()[-1] == ["from-child"] else 20
        except BaseException:  # any failure is an exit status for the parent
            code = 30
        finally:
            os._exit(code)
    deadline = time.monotonic() + 10
    status = None
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        time.sleep(0.01)
    else:
        os.kill(pid, 9)
        os.waitpid(pid, 0)
        pytest.fail("the forked child did not finish")
    assert os.waitstatus_to_exitcode(status) == 0
    # The parent still holds its ids and sends them.
    assert batcher.flush()
    assert publisher.ids()[-1] == ["b", "c", "d"]


# --- races between requests and the thread ----------------------------------------------------------


class GatedPublisher(RecordingPublisher):
    """Blocks the batcher thread's sends until `gate` is set (records after the gate)."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = threading.Event()
        self.entered = threading.Event()

    def publish_many(self, task: Any, calls: Any) -> None:
        if threading.current_thread().name == THREAD_NAME:
            self.entered.set()
            self.gate.wait(5)
        super().publish_many(task, calls)


def test_a_submit_while_the_thread_sends_does_not_overtake_it(fake_time, make_batcher):
    gated = GatedPublisher()
    batcher = make_batcher(0.3, target=gated)
    task = FakeTask()
    batcher.submit(task, ["a"])
    fake_time.now += 0.1
    batcher.submit(task, ["b"])
    fake_time.now += 0.3
    try:
        assert gated.entered.wait(5), "the thread never sent the held batch"
        batcher.submit(task, ["c"])  # while [b] is in flight
    finally:
        gated.gate.set()
    assert wait_until(lambda: not batcher._sending.locked() and ["b"] in gated.ids())
    fake_time.now += 1  # after [b] left: whatever is still held is overdue now
    assert wait_until(lambda: sum(len(ids) for ids in gated.ids()) == 3)
    assert [i for ids in gated.ids() for i in ids] == ["a", "b", "c"]


class HookedCondition(threading.Condition):
    """Calls `hook` when the batcher thread is about to take the lock in order to park."""

    def __init__(self, hook: Callable[[], None]) -> None:
        super().__init__()
        self.hook: Callable[[], None] | None = hook

    def __enter__(self) -> bool:
        frame = sys._getframe(1)
        if (
            self.hook is not None
            and frame.f_code is PublishBatcher._run.__code__
            and frame.f_locals.get("idle_checks", 0) >= PublishBatcher.PARK_AFTER_IDLE_CHECKS
        ):
            hook, self.hook = self.hook, None
            hook()
        return super().__enter__()


def test_an_id_submitted_just_before_the_thread_parks_is_still_sent(fake_time, make_batcher, publisher):
    batcher, task = _held_after_first(fake_time, make_batcher, publisher)
    fake_time.now += 0.3
    assert wait_until(lambda: publisher.count() == 2)
    at_park, go = threading.Event(), threading.Event()

    def pause_before_parking() -> None:
        at_park.set()
        go.wait(5)

    with batcher._condition:
        batcher._condition = HookedCondition(pause_before_parking)
    try:
        assert at_park.wait(5), "the thread never came to park"
        fake_time.now += 1
        batcher.submit(task, ["due"])  # the linger is over: sent at once, by this request
        batcher.submit(task, ["held"])  # inside the new window: for the thread
    finally:
        go.set()
    assert publisher.ids()[-1] == ["due"]
    fake_time.now += 1
    assert wait_until(lambda: publisher.ids()[-1] == ["held"], timeout=2)


# --- the real publisher ---------------------------------------------------------------------------------------


def test_thirty_ids_become_thirty_celery_messages_in_order(fake_time, broker):
    """Through the process's real publisher: the first id at once, the other 29 held and sent by
    the thread in one batch (one LPUSH), as Celery messages of `channels.process_inbound`."""
    batcher = PublishBatcher(linger=lambda: 0.3)
    ids = [f"00000000-0000-0000-0000-{n:012d}" for n in range(30)]
    try:
        batcher.submit(process_inbound, ids[:1])
        assert broker.redis.llen("celery") == 1
        fake_time.now += 0.1
        for message_id in ids[1:]:
            batcher.submit(process_inbound, [message_id])
        assert broker.redis.llen("celery") == 1
        fake_time.now += 0.3
        assert wait_until(lambda: broker.redis.llen("celery") == 30)
    finally:
        batcher.flush()
        wait_until(lambda: batcher._parked)
    messages = broker.messages()
    assert [m["headers"]["task"] for m in messages] == ["channels.process_inbound"] * 30
    assert [m["args"] for m in messages] == [[message_id] for message_id in ids]
    assert [m["kwargs"] for m in messages] == [{}] * 30
    assert len({m["headers"]["id"] for m in messages}) == 30


def test_ids_from_many_threads_are_each_published_once(broker):
    """Real time, a short linger, four submitting threads: every id reaches the broker exactly
    once, whichever thread sent it."""
    batcher = PublishBatcher(linger=lambda: 0.01)
    ids = [[f"t{thread}-{n:03d}" for n in range(25)] for thread in range(4)]

    def submit_all(mine: list[str]) -> None:
        for message_id in mine:
            batcher.submit(process_inbound, [message_id])

    threads = [threading.Thread(target=submit_all, args=(mine,)) for mine in ids]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert wait_until(lambda: broker.redis.llen("celery") == 100)
    assert batcher.flush()
    published = [m["args"][0] for m in broker.messages()]
    assert sorted(published) == sorted(i for mine in ids for i in mine)
