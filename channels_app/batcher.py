"""Task publishing off the request path, several messages per broker command.

Publishing from the webhook itself costs a broker round trip per update, inside the request.
`PublishBatcher` collects the message ids of a process and sends them in batches through the
long-lived publisher (`publisher.TaskPublisher.publish_many`: on Redis, one LPUSH per batch). A
batch leaves at most every `CHANNEL_PUBLISH_LINGER_SECONDS`: the request that finds that time
passed sends it (so the first message after a quiet spell goes at once), and a background
thread sends a batch that no later request picked up; it checks once per linger while messages
come in and sleeps on a condition otherwise. Under load, each LPUSH carries what
arrived during that time from several requests.

Nothing is lost if the process dies with a batch pending: the rows are stored before the
webhook answers, with no attempt yet, and the requeue sweep (`channels.requeue_stale`)
publishes them again, as it does when the broker is down. A process that exits normally sends
what is pending first (`atexit`).
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from django.conf import settings

from channels_app import publisher

logger = logging.getLogger(__name__)


class PublishBatcher:
    """Collects `task(message_id)` publishes of this process and sends them in batches, from
    the request that finds a batch due or from a background thread.

    `publisher_factory` gives the `TaskPublisher` at each batch (so a test can swap the
    process's default publisher); `linger` gives the least time between two batches.
    """

    PARK_AFTER_IDLE_CHECKS = 20
    MIN_CHECK_SECONDS = 0.005

    def __init__(
        self,
        *,
        publisher_factory: Callable[[], publisher.TaskPublisher] = lambda: publisher.default_publisher,
        linger: Callable[[], float] = lambda: settings.CHANNEL_PUBLISH_LINGER_SECONDS,
    ) -> None:
        self._publisher_factory = publisher_factory
        self._linger = linger
        self._start_afresh()
        # A child process starts with no thread and must not inherit a lock held at the fork.
        os.register_at_fork(after_in_child=self._start_afresh)
        atexit.register(self.flush)

    def _start_afresh(self) -> None:
        self._condition = threading.Condition()
        self._sending = threading.Lock()  # one batch at a time: batches reach the broker in order
        self._pending: list[tuple[Any, str]] = []
        self._thread: threading.Thread | None = None
        self._parked = True  # the thread, when there is one, waits for a submit to wake it
        self._last_batch = 0.0  # when the last batch was taken

    def submit(self, task: Any, message_ids: Iterable[str]) -> None:
        """Queue one publish of `task` per id. The caller sends the batch itself when the last
        one was taken at least `linger` ago and no batch is in flight (so the first message
        after a quiet spell goes at once); otherwise a later request or the background thread
        sends it. In eager mode the task runs now, in the caller, as `delay()` would run it."""
        ids = list(message_ids)
        if task.app.conf.task_always_eager:
            self._send([(task, message_id) for message_id in ids])
            return
        with self._condition:
            self._pending.extend((task, message_id) for message_id in ids)
            due = time.monotonic() - self._last_batch >= self._linger()
        if due and self._send_pending(wait=False):
            return
        with self._condition:
            thread_gone = self._thread is None or not self._thread.is_alive()
            if self._pending and (self._parked or thread_gone):
                if thread_gone:
                    self._thread = threading.Thread(target=self._run, name="inbound-publisher", daemon=True)
                    self._thread.start()
                self._parked = False
                self._condition.notify()

    def flush(self, timeout: float = 5.0) -> bool:
        """Send what is pending now from the calling thread, after any batch in flight; True when
        nothing is left. Called at exit, and by tests before they look at the broker."""
        self._send_pending(wait=True, timeout=timeout)
        with self._condition:
            return not self._pending

    def _run(self) -> None:
        """Send batches no request picked up, checking once per `linger` while messages come,
        parked after `PARK_AFTER_IDLE_CHECKS` checks found nothing.

        A steady tick rather than a wake-up per batch: every wake-up of this thread takes
        Python's interpreter lock from the request being served, and under load the requests
        send the batches themselves, so a tick usually finds nothing to do.
        """
        idle_checks = 0
        while True:
            with self._condition:
                # Parking and the submit's "is it parked?" are decided under the same lock, and
                # only with nothing pending: no id can be left behind by a thread going to sleep.
                if idle_checks >= self.PARK_AFTER_IDLE_CHECKS and not self._pending:
                    self._parked = True
                    while self._parked:
                        self._condition.wait()
                    idle_checks = 0
            linger = self._linger()
            time.sleep(max(linger, self.MIN_CHECK_SECONDS))
            with self._condition:
                overdue = bool(self._pending) and time.monotonic() - self._last_batch >= linger
                idle_checks = 0 if self._pending else idle_checks + 1
            if overdue:
                self._send_pending(wait=True)

    def _send_pending(self, *, wait: bool, timeout: float = -1) -> bool:
        """Take what is pending and send it as one batch; False, sending nothing, when another
        batch is in flight and `wait` is false (or `timeout` passed)."""
        if not self._sending.acquire(blocking=wait, timeout=timeout if wait else -1):
            return False
        try:
            with self._condition:
                batch, self._pending = self._pending, []
                if batch:
                    self._last_batch = time.monotonic()
            if batch:
                self._send(batch)
        finally:
            self._sending.release()
        return True

    def _send(self, batch: list[tuple[Any, str]]) -> None:
        by_task: dict[Any, list[tuple[str]]] = {}
        for task, message_id in batch:
            by_task.setdefault(task, []).append((message_id,))
        for task, calls in by_task.items():
            try:
                self._publisher_factory().publish_many(task, calls)
            except publisher.BROKER_ERRORS:
                logger.warning(
                    "broker unavailable: up to %d %s message(s) left for the requeue sweep",
                    len(calls),
                    task.name,
                )
            except Exception:  # a bug must not kill the thread; the sweep still has the rows
                logger.exception("publishing %d %s message(s) failed", len(calls), task.name)


inbound_batcher = PublishBatcher()
