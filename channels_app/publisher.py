"""Task publishing for the hot paths: one long-lived broker connection per process and thread.

`task.delay()` acquires a producer from Celery's pool for every call, and kombu's Redis channel
builds a new `redis.Redis` client object for every publish (its `conn_or_acquire`); together
they cost more CPU than the LPUSH itself, and the inbound webhook publishes on every request.
`TaskPublisher` keeps its own producer per thread (kombu producers and channels are not
thread-safe), created lazily, dropped after a fork and after a failed publish, and on Redis a
channel that keeps one client for its connection pool. The message is Celery's own (built by
`create_task_message`, or by `apply_async` when the task has routes or options of its own), so
workers see what `delay()` would have sent.

On Redis, even that reused producer spends most of a publish in kombu's layers (retry wrappers,
exchange lookup, message preparation), around a single LPUSH. So the first publish of a plain
task goes through kombu, and the Redis channel records what it pushed and where; later publishes
of that task from outside a worker task reuse it as a frame (`RedisFrame`): only the task id,
the delivery tag, the arguments and their repr change, and the same LPUSH is sent on the same
client. Any failure there drops the frame and the producer and goes through kombu again, with
Celery's retry policy and errors.
"""

from __future__ import annotations

import base64
import json
import os
import re
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from typing import Any
from uuid import UUID

from celery import current_app
from celery.app.routes import MapRoute
from celery.app.task import extract_exec_options
from celery.exceptions import CeleryError
from celery.utils import uuid
from kombu import Connection, Producer
from kombu.exceptions import KombuError
from kombu.transport import redis as kombu_redis

BROKER_ERRORS = (OSError, KombuError, CeleryError)
"""What a publish raises when the broker is unreachable (after Celery's retries)."""


class ReusedClientRedisChannel(kombu_redis.Channel):
    """kombu's Redis channel, keeping one `redis.Redis` client per connection pool instead of
    building one per command (a client is thread-safe: each command checks a connection out of
    the pool), and recording the last plain LPUSH it made (`last_put`: key and message) so the
    publisher can reuse it as a frame."""

    _reused_client: tuple[Any, Any] | None = None
    last_put: tuple[str, dict[str, Any]] | None = None

    def _put(self, queue: str, message: dict[str, Any], **kwargs: Any) -> None:
        plain = kwargs.get("_publish_batch") is None and not (self._expires and queue in self._expires)
        super()._put(queue, message, **kwargs)
        if plain:
            priority = self._get_message_priority(message, reverse=False)
            self.last_put = (self._q_for_pri(queue, priority), message)

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


class RedisFrame:
    """A message kombu pushed for a task, to push again with a new id and new arguments.

    Built only when the recorded message has the shape the substitution relies on (a JSON body,
    base64-encoded, uncompressed, the task its own root, the arguments as sent); `None` from
    `from_put` otherwise, and the publisher keeps going through kombu. The message is serialised
    once with markers in the four places that change; `render` only replaces them.
    """

    __slots__ = ("embed_json", "key", "pieces")

    _MARKERS = tuple(f"@@frame-{name}-7b2e9c@@" for name in ("id", "tag", "argsrepr", "body"))
    _ID, _TAG, _ARGSREPR, _BODY = _MARKERS
    _SPLIT = re.compile("|".join(map(re.escape, _MARKERS)))

    def __init__(self, key: str, message: dict[str, Any], embed: Any) -> None:
        self.key = key
        self.embed_json = json.dumps(embed)
        template = json.dumps(
            {
                **message,
                "body": self._BODY,
                "headers": {
                    **message["headers"],
                    "id": self._ID,
                    "root_id": self._ID,
                    "argsrepr": self._ARGSREPR,
                },
                "properties": {
                    **message["properties"],
                    "correlation_id": self._ID,
                    "delivery_tag": self._TAG,
                },
            }
        )
        # Alternating constant text and marker names: render() only joins.
        self.pieces: list[str] = []
        position = 0
        for match in self._SPLIT.finditer(template):
            self.pieces += [template[position : match.start()], match.group()]
            position = match.end()
        self.pieces.append(template[position:])

    @classmethod
    def from_put(
        cls, put: tuple[str, dict[str, Any]], task_name: str, args: tuple[Any, ...]
    ) -> RedisFrame | None:
        key, message = put
        try:
            headers, properties = message["headers"], message["properties"]
            task_id = headers["id"]
            body = json.loads(base64.b64decode(message["body"]))
            usable = (
                message.get("content-type") == "application/json"
                and message.get("content-encoding") == "utf-8"
                and properties.get("body_encoding") == "base64"
                and "compression" not in headers
                and headers.get("task") == task_name
                and headers.get("root_id") == properties.get("correlation_id") == task_id
                and headers.get("parent_id") is None
                and headers.get("argsrepr") == repr(args)
                and isinstance(body, list)
                and len(body) == 3
                and body[0] == list(args)
                and body[1] == {}
                and not any(marker in json.dumps(message) for marker in cls._MARKERS)
            )
        except (KeyError, TypeError, ValueError):
            return None
        return cls(key, message, body[2]) if usable else None

    def render(self, args: tuple[Any, ...], randomness: bytes | None = None) -> str:
        """The message for a new task with `args`: a fresh id and delivery tag (version 4 UUIDs
        made of `randomness`, 32 bytes, so that a batch draws all of its at once), the arguments
        in the body (Celery's [args, kwargs, embed]) and in `argsrepr`."""
        random32 = randomness if randomness is not None and len(randomness) == 32 else os.urandom(32)
        values = {
            self._ID: str(UUID(bytes=random32[:16], version=4)),
            self._TAG: str(UUID(bytes=random32[16:], version=4)),
            self._ARGSREPR: json.dumps(repr(args))[1:-1],
            self._BODY: base64.b64encode(
                f"[{json.dumps(list(args))}, {{}}, {self.embed_json}]".encode()
            ).decode(),
        }
        pieces = self.pieces
        return "".join([values[piece] if index % 2 else piece for index, piece in enumerate(pieces)])

    def render_many(self, calls: Sequence[tuple[Any, ...]]) -> list[str]:
        randomness = os.urandom(32 * len(calls))
        return [self.render(args, randomness[32 * i : 32 * i + 32]) for i, args in enumerate(calls)]


class _State(threading.local):
    producer: Producer | None = None
    pid: int = 0
    declared: bool = False
    frames: dict[str, RedisFrame] | None = None


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
            state.frames = {}
        return state.producer

    def reset(self) -> None:
        """Forget this thread's producer (closing its connection if this process owns it)."""
        state = self._state
        producer, owned = state.producer, state.pid == os.getpid()
        state.producer = None
        state.frames = None
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
        and `send_task_message`, with the same headers, parent and root ids as `delay()`; after
        that, from outside a worker task, its frame is pushed instead (see the module's doc).
        """
        self.publish_many(task, [args])

    def publish_many(self, task: Any, calls: Sequence[Sequence[Any]]) -> None:
        """`publish(task, *args)` for each argument tuple of `calls`, in order; with a frame, all
        of them in one LPUSH. Raises like `publish`, leaving the rest unsent."""
        pending = [tuple(args) for args in calls]
        while pending:
            frame = self._frame(task)
            if frame is not None and self._push(frame, pending):
                return
            self._publish_through_kombu(task, pending.pop(0))

    def _frame(self, task: Any) -> RedisFrame | None:
        app = task.app
        state = self._state
        if app.conf.task_always_eager or app.current_worker_task is not None or state.pid != os.getpid():
            return None
        return (state.frames or {}).get(task.name)

    def _publish_through_kombu(self, task: Any, args: tuple[Any, ...]) -> None:
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
                if app.current_worker_task is None:
                    self._keep_frame(task, producer, args)
        except BaseException:
            self.reset()
            raise
        self._state.declared = True

    def _keep_frame(self, task: Any, producer: Producer, args: tuple[Any, ...]) -> None:
        """After a publish through kombu: keep what the Redis channel pushed as `task`'s frame."""
        channel = producer.channel  # connected by now: the publish went through
        if not isinstance(channel, ReusedClientRedisChannel) or channel.last_put is None:
            return
        put, channel.last_put = channel.last_put, None
        frame = RedisFrame.from_put(put, task.name, args)
        if frame is not None and self._state.frames is not None:
            self._state.frames[task.name] = frame

    def _push(self, frame: RedisFrame, calls: list[tuple[Any, ...]]) -> bool:
        """LPUSH one rendering of `frame` per call, on this thread's channel client, in one
        command (Celery's workers take the oldest first); False, with the producer dropped, if
        that failed: the caller goes through kombu, which retries and reports."""
        try:
            with self.producer().channel.conn_or_acquire() as client:
                client.lpush(frame.key, *frame.render_many(calls))
        except Exception:  # noqa: BLE001 - any failure: start afresh through kombu, which reports it
            self.reset()
            return False
        return True

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
