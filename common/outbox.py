"""The outbox: background jobs are stored rows, and one relay publishes their tasks.

A request or a service only writes rows, in its own transaction. A row that needs its task has
`relay_due_at` set (now, on creation); the relay (`relay_pass`, looped by `manage.py
run_relay`) claims due rows with `FOR UPDATE SKIP LOCKED`, marks them with a new attempt number
and moves `relay_due_at` one lease ahead, commits, and then publishes their tasks through
Celery's public API (one per row, or one per OUTBOX_MESSAGE_ROWS rows for a batched kind). Code
that creates rows in bulk can publish them itself after its commit (`created_fields`,
`publish_created`: the scheduler's dispatcher does). The task claims its attempt
with a conditional UPDATE (`outbox_step`): a duplicate message, or a message of an older attempt,
finds nothing to claim and does nothing. A task that finishes clears `relay_due_at`; one that
wants another try later sets it to that time; one whose worker died leaves it at the lease's
end, and the relay publishes the row again then. One mechanism for every kind of job, instead of
a reaper or requeue sweep per app.

Kinds (which rows, which task) are registered by the apps (`register`); this module imports no
app. On PostgreSQL an INSERT trigger (see `notify_trigger_sql`) and `outbox_wake` send a
`NOTIFY` that wakes the relay within milliseconds; elsewhere it polls.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from celery import current_app
from celery.exceptions import CeleryError
from celery.utils import uuid
from django.conf import settings
from django.db import DatabaseError, connections, models, router, transaction
from django.db.models import Case, F, Q, When
from django.utils import timezone
from kombu.exceptions import KombuError

logger = logging.getLogger(__name__)

CHANNEL = "outbox"
BROKER_ERRORS = (OSError, KombuError, CeleryError)
"""What a publish raises when the broker is unreachable (after Celery's retries)."""


class OutboxRow(models.Model):
    """Fields every job row carries for the relay (mixed into each job model).

    `relay_due_at`: when the relay should publish the row's task (NULL: nothing to publish).
    `publish_attempt`: the attempt number of the last published message; `run_attempt`: the
    attempt a task claimed last (a message of an attempt already claimed is a duplicate).
    """

    relay_due_at = models.DateTimeField(null=True, blank=True, default=timezone.now, editable=False)
    published_at = models.DateTimeField(null=True, blank=True, editable=False)
    publish_attempt = models.PositiveIntegerField(default=0, editable=False)
    run_attempt = models.PositiveIntegerField(default=0, editable=False)

    class Meta:
        abstract = True


def outbox_index(name: str) -> models.Index:
    """The relay's look-up of due rows: a partial index, so finished rows cost nothing."""
    return models.Index(fields=["relay_due_at"], condition=Q(relay_due_at__isnull=False), name=name)


@dataclass(frozen=True)
class OutboxKind:
    """One kind of job: the rows of `model` matching `active` are served by task `task`."""

    label: str
    model: type[models.Model]
    task: str
    active: Q
    queue: str | None = None
    # Jobs that mostly wait on a network peer (an agent, a platform): when several are due, the
    # relay puts OUTBOX_MESSAGE_ROWS of them in one message, run side by side (`outbox_run_rows`).
    batched: bool = False
    # A task of the kind's own for such a message (same arguments as `outbox.run_rows`), for a
    # kind that does better with its rows together (schedule runs claim theirs in one transaction).
    rows_task: str | None = None


_KINDS: dict[str, OutboxKind] = {}


def register(kind: OutboxKind) -> OutboxKind:
    _KINDS[kind.label] = kind
    return kind


def kinds() -> list[OutboxKind]:
    return list(_KINDS.values())


def kind_get(label: str) -> OutboxKind:
    return _KINDS[label]


def lease() -> timedelta:
    return timedelta(seconds=settings.OUTBOX_LEASE_SECONDS)


# --- the relay ----------------------------------------------------------------------------------


RUN_ROWS_TASK = "outbox.run_rows"


def _messages(kind: OutboxKind, rows: list[tuple[Any, int]]) -> list[tuple[str, tuple[Any, ...]]]:
    """(task name, args) of each message for `rows`: one per row (the kind's task with the row's
    id and next attempt), or, for a batched kind with several rows due, one `outbox.run_rows`
    per OUTBOX_MESSAGE_ROWS rows (a message costs the relay far more than a row)."""
    if not kind.batched or len(rows) < 2:
        return [(kind.task, (str(pk), attempt + 1)) for pk, attempt in rows]
    size = settings.OUTBOX_MESSAGE_ROWS
    chunks = [rows[start : start + size] for start in range(0, len(rows), size)]
    task = kind.rows_task or RUN_ROWS_TASK
    return [(task, (kind.label, [[str(pk), attempt + 1] for pk, attempt in chunk])) for chunk in chunks]


def _publish(kind: OutboxKind, rows: list[tuple[Any, int]], producer: Any) -> None:
    """The messages of `rows`: Celery's own messages (`app.amqp.create_task_message`), sent
    with `app.amqp.send_task_message` on one producer, all on the kind's task's route (worked
    out once per batch) and the queue declared with the first message only (what `send_task`
    does per call, minus the per-call option merging). Celery's publish retry policy applies;
    past it, the pass fails and is retried whole."""
    app = current_app
    if producer is None:  # eager mode: run the task here, as `delay()` would
        app.loader.import_default_modules()  # the apps' task modules (autodiscovery is lazy)
        for pk, attempt in rows:
            app.tasks[kind.task].apply(args=[str(pk), attempt + 1])
        return
    amqp = app.amqp
    route = amqp.router.route({"queue": kind.queue} if kind.queue else {}, kind.task)
    for index, (task, args) in enumerate(_messages(kind, rows)):
        message = amqp.create_task_message(
            uuid(), task, args, {}, argsrepr=repr(args), kwargsrepr="{}", ignore_result=True
        )
        extra: dict[str, Any] = {"declare": []} if index else {}
        amqp.send_task_message(producer, task, message, **route, **extra)


def relay_kind(
    kind: OutboxKind, *, now: datetime | None = None, batch_size: int | None = None, producer: Any = None
) -> int:
    """Publish one batch of due rows of `kind` (through `producer`, by default one from the
    app's pool); the number published.

    The rows are claimed and marked (next attempt, due again when the lease ends) and committed
    first, then published: a worker that gets a message at once finds its row already marked,
    instead of waiting for the relay's transaction. A relay that dies between the commit and
    the publish leaves the rows to their lease; a broker that refuses gets them unmarked (due
    again, as before the pass) and the error raised (BROKER_ERRORS)."""
    now = now or timezone.now()
    size = batch_size or settings.OUTBOX_BATCH_SIZE
    with transaction.atomic(using=router.db_for_write(kind.model)):
        rows = list(
            kind.model.objects.select_for_update(skip_locked=True)
            .filter(kind.active, relay_due_at__lte=now)
            .order_by("relay_due_at")
            .values_list("pk", "publish_attempt")[:size]
        )
        if not rows:
            return 0
        _mark(kind, rows, now)
    if current_app.conf.task_always_eager:  # tests and one-process tools: the tasks run here
        _publish(kind, rows, None)
        return len(rows)
    try:
        with current_app.producer_or_acquire(producer) as acquired:
            _publish(kind, rows, acquired)
    except BROKER_ERRORS:
        _unmark(kind, rows, now)
        raise
    return len(rows)


def _unmark(kind: OutboxKind, rows: list[tuple[Any, int]], now: datetime) -> None:
    """Undo `_mark` for rows whose messages the broker refused (none of them was claimed: a
    message that did go out and is claimed later finds its attempt published again)."""
    kind.model.objects.filter(pk__in=[pk for pk, _ in rows], run_attempt__lt=F("publish_attempt")).update(
        publish_attempt=F("publish_attempt") - 1,
        # Never published: no time (an earlier attempt's exact time is not kept).
        published_at=Case(When(publish_attempt=1, then=None), default=F("published_at")),
        relay_due_at=now,
    )


def _mark(kind: OutboxKind, rows: list[tuple[Any, int]], now: datetime) -> None:
    kind.model.objects.filter(pk__in=[pk for pk, _ in rows]).update(
        publish_attempt=F("publish_attempt") + 1, published_at=now, relay_due_at=now + lease()
    )


def created_fields(now: datetime | None = None) -> dict[str, Any]:
    """Outbox fields of rows whose creator publishes them itself right after its commit
    (`publish_created`): already attempt 1, due only when its lease ends, so the relay does not
    publish them again (and needs no UPDATE to mark them) unless the creator died in between."""
    now = now or timezone.now()
    if current_app.conf.task_always_eager:
        return {"relay_due_at": now}  # tests and one-process tools: the relay runs them
    return {"publish_attempt": 1, "published_at": now, "relay_due_at": now + lease()}


def publish_created(kind: OutboxKind, pks: list[Any]) -> None:
    """After the commit that created rows with `created_fields`: publish attempt 1 of each (one
    message per OUTBOX_MESSAGE_ROWS rows for a batched kind). If the broker refuses, the rows are
    made due and the relay publishes them when it can; nothing is lost either way."""
    if not pks or current_app.conf.task_always_eager:
        return
    try:
        with current_app.producer_or_acquire() as producer:
            _publish(kind, [(pk, 0) for pk in pks], producer)
    except BROKER_ERRORS:
        logger.warning("%s: broker unavailable; %d rows left to the relay", kind.label, len(pks))
        kind.model.objects.filter(pk__in=pks, run_attempt=0).update(relay_due_at=timezone.now())


def relay_pass(*, now: datetime | None = None, batch_size: int | None = None, producer: Any = None) -> int:
    """One batch of every kind, then the clean-up of finished rows; the number published."""
    now = now or timezone.now()
    published = 0
    for kind in kinds():
        published += relay_kind(kind, now=now, batch_size=batch_size, producer=producer)
    _forget_finished(now)
    return published


def relay_drain(*, timeout: float = 10.0) -> int:
    """Relay passes until nothing is due (tests and tools); the number published."""
    deadline = time.monotonic() + timeout
    total = 0
    while time.monotonic() < deadline:
        published = relay_pass()
        total += published
        if not published:
            break
    return total


def _forget_finished(now: datetime) -> None:
    """Rows due again but no longer active for any kind (finished meanwhile): not due any more."""
    by_model: dict[type[models.Model], Q] = {}
    for kind in kinds():
        by_model[kind.model] = by_model.get(kind.model, Q(pk__in=[])) | kind.active
    for model, active in by_model.items():
        model.objects.filter(relay_due_at__lte=now).exclude(active).update(relay_due_at=None)


def run_relay(*, stop: Callable[[], bool] = lambda: False, using: str = "default") -> None:
    """The relay loop: a pass, then wait for a NOTIFY (PostgreSQL) or the poll interval."""
    waiter = _Waiter(using)
    backoff = 0.0
    try:
        while not stop():
            try:
                published = relay_pass()
                backoff = 0.0
            except BROKER_ERRORS:
                backoff = min(max(backoff * 2, 0.5), 30.0)
                logger.warning("relay: broker unavailable; rows stay due (next try in %.1f s)", backoff)
                published = 0
            except DatabaseError:
                backoff = min(max(backoff * 2, 0.5), 30.0)
                logger.warning("relay: database unavailable (next try in %.1f s)", backoff)
                connections[using].close()
                waiter.close()
                published = 0
            if published and not backoff:
                continue  # more may be due: no wait
            waiter.wait(backoff or settings.OUTBOX_POLL_SECONDS)
    finally:
        waiter.close()


class _Waiter:
    """Waits for the next `NOTIFY outbox` on its own connection (PostgreSQL), or sleeps."""

    def __init__(self, using: str) -> None:
        self.using = using
        self.connection: Any = None

    def _connect(self) -> Any:
        if self.connection is None:
            db = connections[self.using]
            if db.vendor != "postgresql":
                return None
            import psycopg

            params = db.get_connection_params()
            params.pop("cursor_factory", None)
            params.pop("context", None)
            params.pop("prepare_threshold", None)
            self.connection = psycopg.connect(**params, autocommit=True)
            self.connection.execute(f"LISTEN {CHANNEL}")
        return self.connection

    def wait(self, seconds: float) -> None:
        try:
            connection = self._connect()
            if connection is None:
                time.sleep(seconds)
                return
            for _ in connection.notifies(timeout=seconds, stop_after=1):
                pass
        except Exception:  # noqa: BLE001 - a lost listening connection: reconnect next time
            self.close()
            time.sleep(min(seconds, 1.0))

    def close(self) -> None:
        if self.connection is not None:
            with suppress(Exception):  # already broken: nothing to report
                self.connection.close()
            self.connection = None


def outbox_wake(*, using: str = "default") -> None:
    """After a commit that made rows due by an UPDATE: wake the relay now (INSERTs wake it by
    trigger). Never raises: the relay polls anyway."""
    db = connections[using]
    try:
        if db.vendor == "postgresql":
            with db.cursor() as cursor:
                cursor.execute(f"NOTIFY {CHANNEL}")
    except DatabaseError:
        logger.warning("relay not woken: the database refused NOTIFY; it will poll")


def wake_on_commit(*, using: str = "default") -> None:
    transaction.on_commit(lambda: outbox_wake(using=using), using=using)


def notify_trigger_sql(table: str) -> tuple[str, str]:
    """(forward, reverse) SQL of the statement-level INSERT trigger that wakes the relay."""
    function = f"{table}_outbox_notify"
    forward = (
        f"CREATE OR REPLACE FUNCTION {function}() RETURNS trigger LANGUAGE plpgsql AS $$ "
        f"BEGIN PERFORM pg_notify('{CHANNEL}', ''); RETURN NULL; END $$; "
        f"CREATE TRIGGER {function} AFTER INSERT ON {table} "
        f"FOR EACH STATEMENT EXECUTE FUNCTION {function}();"
    )
    reverse = f"DROP TRIGGER IF EXISTS {function} ON {table}; DROP FUNCTION IF EXISTS {function}();"
    return forward, reverse


# --- the task side --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Attempt:
    """Attempt `number` of row `pk` of `kind`, as published by the relay (or by the code that
    created the row, `publish_created`).

    A job claims its attempt with one conditional UPDATE: `claimable()` is the condition (the
    first message of the latest attempt, on a row still active), `claim_fields()` what it sets
    (this attempt, and a lease that starts now). Most jobs let `outbox_step` do that; a job on
    a hot path folds the condition and the fields into its own UPDATE (a schedule run claims the
    attempt and the run in one statement), so the claim costs no statement of its own.
    """

    kind: OutboxKind
    pk: Any
    number: int
    until: datetime  # the end of the lease a claim made now starts (the claim's mark)

    @classmethod
    def start(cls, *, kind: OutboxKind, pk: Any, number: int) -> Attempt:
        return cls(kind=kind, pk=pk, number=int(number), until=timezone.now() + lease())

    def claimable(self) -> Q:
        return self.kind.active & Q(pk=self.pk, publish_attempt=self.number, run_attempt__lt=self.number)

    def claim_fields(self) -> dict[str, Any]:
        return {"run_attempt": self.number, "relay_due_at": self.until}

    def relay_still_marking(self) -> bool:
        """A safety net for a message that arrives before the transaction that marked its row
        with this attempt has committed (the relay and `publish_created` commit before they
        publish, so only a publisher that did not would cause it): a claim's UPDATE then sees
        the row's previous version and skips it. Wait for the row lock (held until that commit)
        and say whether the row now carries this attempt, so the claim can be tried again."""
        with transaction.atomic(using=self.using):
            # Locked by key only: a condition on the attempt would be judged on the old version
            # without waiting for the lock.
            marked = (
                self.kind.model.objects.select_for_update()
                .filter(pk=self.pk)
                .values_list("publish_attempt", flat=True)
            )
            return self.number in marked

    def settle(self, due: datetime | None) -> None:
        """The claimed attempt's outcome: due again at `due` (None: done). A row re-armed
        meanwhile (a new install request on the same row, say) keeps its new due time."""
        self.kind.model.objects.filter(pk=self.pk, run_attempt=self.number, relay_due_at=self.until).update(
            relay_due_at=due
        )

    def retry_soon(self) -> None:
        """After a database error (a connection lost mid-attempt, claimed or not): publish the
        row again after OUTBOX_RETRY_SECONDS, on a fresh connection, unless a newer attempt was
        published meanwhile. If even that fails, the lease brings the row back."""
        connections[self.using].close()
        due = timezone.now() + timedelta(seconds=settings.OUTBOX_RETRY_SECONDS)
        try:
            self.kind.model.objects.filter(self.kind.active, pk=self.pk, publish_attempt=self.number).update(
                relay_due_at=due
            )
        except DatabaseError:
            connections[self.using].close()

    @property
    def using(self) -> str:
        return router.db_for_write(self.kind.model)


def outbox_claim(*, kind: OutboxKind, pk: Any, attempt: int) -> datetime | None:
    """Claim attempt `attempt` of row `pk` for this task (see `Attempt`). Returns the end of the
    lease that starts now (the claim's mark: `outbox_step` settles the row only if nobody
    re-armed it meanwhile), or None."""
    job = Attempt.start(kind=kind, pk=pk, number=attempt)
    return job.until if _claim(job) else None


def _claim(job: Attempt) -> bool:
    claimable = job.kind.model.objects.filter(job.claimable())
    claimed = claimable.update(**job.claim_fields())
    if not claimed and job.relay_still_marking():
        claimed = claimable.update(**job.claim_fields())
    return bool(claimed)


def outbox_step(*, kind: OutboxKind, pk: Any, attempt: int, body: Callable[[], float | None]) -> bool:
    """Run `body` for attempt `attempt` of row `pk` if this message can claim it; False if not.

    `body` returns None when the job needs no more tasks, or seconds before the next try (the
    relay publishes the row again then). A database error (a connection lost mid-task) is
    retried after `OUTBOX_RETRY_SECONDS` on a fresh connection, or, if even that fails, when the
    lease ends; another exception is logged by Celery and left to the lease too.
    """
    job = Attempt.start(kind=kind, pk=pk, number=attempt)
    if not _claim(job):
        return False
    try:
        delay = body()
    except DatabaseError:
        logger.warning("%s %s: database error; retried in %ss", kind.label, pk, settings.OUTBOX_RETRY_SECONDS)
        job.retry_soon()
        return True
    settle_after(job, delay)
    return True


def settle_after(job: Attempt, delay: float | None) -> None:
    """Settle a claimed attempt: done (`delay` None), or due again in `delay` seconds, waking the
    relay at once when that is sooner than its poll."""
    if delay is None:
        job.settle(None)
        return
    job.settle(timezone.now() + timedelta(seconds=delay))
    if delay <= settings.OUTBOX_POLL_SECONDS:
        outbox_wake(using=job.using)


def outbox_run_rows(kind_label: str, rows: list[list[Any]]) -> None:
    """The body of `outbox.run_rows`: each row's task body (`Task.run`, with the row's id and
    attempt) in a thread of its own, side by side, as if each had its own message. On the I/O
    worker (gevent) the threads are greenlets sharing the connection pool; each gives its
    database connection back when done. A row that fails is logged and left to its lease, like a task that raised."""
    name = kind_get(kind_label).task
    if name not in current_app.tasks:  # a process that has not loaded the apps' task modules yet
        current_app.loader.import_default_modules()
    task = current_app.tasks[name]

    def run_one(pk: Any, attempt: int) -> None:
        try:
            task.run(str(pk), int(attempt))
        except Exception:
            logger.exception("%s %s: attempt %s failed", kind_label, pk, attempt)

    side_by_side([partial(run_one, pk, attempt) for pk, attempt in rows])


def side_by_side(calls: list[Callable[[], None]]) -> None:
    """Run `calls` each in a thread of its own and wait for all. On the I/O worker (gevent) the
    threads are greenlets sharing the connection pool; elsewhere at most UNPOOLED_ROW_THREADS run
    at once. Each thread gives its database connections back when done; `calls` handle their
    own errors."""
    gate = threading.BoundedSemaphore(_row_threads(len(calls)))

    def gated(call: Callable[[], None]) -> None:
        with gate:
            try:
                call()
            finally:
                connections.close_all()

    threads = [threading.Thread(target=gated, args=(call,), daemon=True) for call in calls]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


UNPOOLED_ROW_THREADS = 8
"""Rows run at once by one message where each thread opens a database connection of its own (no
connection pool: a prefork or threads worker, SQLite), so a message cannot take more than this
many of PostgreSQL's connections."""


def _row_threads(rows: int) -> int:
    """All rows at once when the process shares a connection pool (the gevent agents worker);
    at most UNPOOLED_ROW_THREADS otherwise."""
    pooled = "pool" in (connections["default"].settings_dict.get("OPTIONS") or {})
    return max(1, rows if pooled else min(rows, UNPOOLED_ROW_THREADS))


def pending_count(*, now: datetime | None = None) -> dict[str, int]:
    """Rows due per kind (for operators and tests)."""
    now = now or timezone.now()
    return {
        kind.label: kind.model.objects.filter(kind.active, relay_due_at__lte=now).count() for kind in kinds()
    }


def notify_trigger_operation(table: str) -> Any:
    """A migration operation installing the INSERT trigger on PostgreSQL (nothing elsewhere)."""
    from django.db import migrations

    forward_sql, reverse_sql = notify_trigger_sql(table)

    def run(sql: str) -> Callable[[Any, Any], None]:
        def apply(_apps: Any, schema_editor: Any) -> None:
            if schema_editor.connection.vendor == "postgresql":
                schema_editor.execute(sql)

        return apply

    return migrations.RunPython(run(forward_sql), run(reverse_sql))
