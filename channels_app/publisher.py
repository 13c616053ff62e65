"""Task publishing for the hot paths: one long-lived broker connection per process and thread.

`task.delay()` acquires a producer from Celery's pool for every call, and kombu's Redis channel
builds a new `redis.Redis` client object for every publish (its `conn_or_acquire`); together
they cost more CPU than the LPUSH itself, and the inbound webhook publishes on every request.
`TaskPublisher` keeps its own producer per thread (kombu producers and channels are not
thread-safe), created lazily, dropped after a fork and after a failed publish, and on Redis a
channel that keeps one client for its connection pool. The message is Celery's own (built by
`create_task_message`, or by `apply_async` when the task has routes or options of its own), so
workers see what `delay()` would have sent.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Any

from celery import current_app
from celery.app.routes import MapRoute
from celery.app.task import extract_exec_options
from celery.utils import uuid
from kombu import Connection, Producer
from kombu.transport import redis as kombu_redis


class ReusedClientRedisChannel(kombu_redis.Channel):
    """kombu's Redis channel, keeping one `redis.Redis` client per connection pool instead of
    building one per command (a client is thread-safe: each command checks a connection out of
    the pool)."""

    _reused_client: tuple[Any, Any] | None = None

    @contextmanager
    def conn_or_acquire(self, client: Any = None) -> Iterator[Any]:
        if client:
            yield client
            return
        pool = self.pool
        cached = self._reused_client
        if cached is None or cached[0] is not pool:  # a new pool after a fork or a reconnect
            cached = (pool, self._create_client())
            self._reused_client = cached
        yield cached[1]


class ReusedClientRedisTransport(kombu_redis.Transport):
    Channel = ReusedClientRedisChannel


class _State(threading.local):
    producer: Producer | None = None
    pid: int = 0
    declared: bool = False


class TaskPublisher:
    """Publishes Celery tasks through a producer that outlives the call.

    `url` overrides the broker URL of the Celery app (tests point it at a closed port to play
    a broker outage); by default the app's write URL and transport options are used.
    """

    def __init__(self, *, url: str | None = None) -> None:
        self._url = url
        self._state = _State()
        self._routes: dict[str, dict[str, Any] | None] = {}

    def _connect(self) -> Connection:
        app = current_app
        connection = app.connection_for_write(url=self._url)
        if type(connection.transport) is kombu_redis.Transport:
            connection.release()
            connection = app.connection_for_write(url=self._url, transport=ReusedClientRedisTransport)
        return connection

    def producer(self) -> Producer:
        """This thread's producer; a new one after a fork (never reuse a parent's socket)."""
        state = self._state
        pid = os.getpid()
        if state.producer is None or state.pid != pid:
            state.producer = current_app.amqp.Producer(self._connect())
            state.pid = pid
            state.declared = False
        return state.producer

    def reset(self) -> None:
        """Forget this thread's producer (closing its connection if this process owns it)."""
        state = self._state
        producer, owned = state.producer, state.pid == os.getpid()
        state.producer = None
        if producer is not None and owned:
            with suppress(Exception):  # the connection is already broken: nothing to report
                producer.connection.release()

    def _route(self, task: Any) -> dict[str, Any] | None:
        """Where Celery routes `task`, worked out once per task; None when only `apply_async`
        can tell: a router that may look at the call (not a name map), or options on the task."""
        if task.name not in self._routes:
            app = task.app
            own = {k: v for k, v in extract_exec_options(task).items() if v is not None}
            if own.get("serializer") == app.conf.task_serializer:
                del own["serializer"]  # the app's default, which send_task_message applies too
            by_name_only = all(isinstance(route, MapRoute) for route in app.amqp.router.routes)
            plain = by_name_only and not own
            self._routes[task.name] = app.amqp.router.route({}, task.name, (), {}, task) if plain else None
        return self._routes[task.name]

    def publish(self, task: Any, *args: Any) -> None:
        """`task.delay(*args)` through the long-lived producer. Raises what the broker raises
        (OSError, KombuError, ...) after Celery's publish retries, and starts afresh next time.

        A plain task (no routes, no options of its own) skips `apply_async`'s per-call option
        merging and routing: the message is built and sent by Celery's own `create_task_message`
        and `send_task_message`, with the same headers, parent and root ids as `delay()`.
        """
        app = task.app
        producer = self.producer()
        route = None if app.conf.task_always_eager else self._route(task)
        declare: dict[str, Any] = {}
        if self._state.declared:
            # The first publish on this producer declared the queue; kombu would only find it
            # in its cache again, after copying and binding the queue entity on every call.
            declare["declare"] = []
        try:
            if route is None:
                task.apply_async(
                    args=args, producer=producer, argsrepr=repr(args), kwargsrepr="{}", **declare
                )
            else:
                self._send(app, task, args, producer, {**route, **declare})
        except BaseException:
            self.reset()
            raise
        self._state.declared = True

    @staticmethod
    def _send(
        app: Any, task: Any, args: tuple[Any, ...], producer: Producer, options: dict[str, Any]
    ) -> None:
        parent = app.current_worker_task  # inside a task: link the new one to it, as delay() does
        parent_id = parent.request.id if parent else None
        root_id = (parent.request.root_id or parent_id) if parent else None
        message = app.amqp.create_task_message(
            uuid(),
            task.name,
            args,
            {},
            root_id=root_id,
            parent_id=parent_id,
            reply_to=app.thread_oid,
            create_sent_event=app.conf.task_send_sent_event,
            ignore_result=task.ignore_result,
            argsrepr=repr(args),  # ids only: no need for Celery's size-capped saferepr
            kwargsrepr="{}",
        )
        app.amqp.send_task_message(producer, task.name, message, **options)


default_publisher = TaskPublisher()
