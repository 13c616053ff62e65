"""A real Celery worker (subprocess) on the test database and the test Redis broker.

Use with `transactional_db` (or `live_server`) so the worker sees committed rows:

    def test_x(transactional_db, celery_worker): ...
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import redis
from django.conf import settings
from django.db import connection

from integrations_project.procfile import procfile_argv

ROOT = Path(__file__).resolve().parents[2]
# Nothing listens there: a broker outage without touching the shared Redis.
CLOSED_BROKER_URL = "redis://127.0.0.1:1/0"


class BrokerQueue:
    """The test Redis db seen as Celery's default queue: what was published, oldest first."""

    def __init__(self, url: str) -> None:
        self.redis = redis.Redis.from_url(url)

    def messages(self, queue: str | None = None) -> list[dict[str, Any]]:
        """Messages of `queue`, or of every queue of the project (queue by queue)."""
        names = [queue] if queue else [q.name for q in settings.CELERY_TASK_QUEUES]
        raws = [
            raw for name in names for raw in reversed(self.redis.lrange(name, 0, -1))
        ]  # LPUSH: newest first
        decoded = []
        for raw in raws:
            envelope = json.loads(raw)
            args, kwargs, _embed = json.loads(base64.b64decode(envelope["body"]))
            decoded.append(
                {
                    "headers": envelope["headers"],
                    "properties": envelope["properties"],
                    "content_type": envelope["content-type"],
                    "args": args,
                    "kwargs": kwargs,
                }
            )
        return decoded


def purge_broker() -> None:
    """Drop queued tasks left by earlier tests so the worker only runs this test's work."""
    redis.Redis.from_url(settings.CELERY_BROKER_URL).flushdb()


def _worker_env(extra: dict[str, str] | None) -> dict[str, str]:
    db = connection.settings_dict
    env = dict(os.environ)
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "integrations_project.settings_test",
            "TEST_DATABASE_URL": (
                f"postgres://{db['USER'] or 'postgres'}@{db['HOST'] or '127.0.0.1'}:"
                f"{db['PORT'] or 5432}/{db['NAME']}"
            ),
            "TEST_BROKER_URL": settings.CELERY_BROKER_URL,
            "PYTHONUNBUFFERED": "1",
        }
    )
    env.update(extra or {})
    return env


@contextmanager
def run_worker(
    *,
    env: dict[str, str] | None = None,
    concurrency: int = 2,
    ready_timeout: float = 90.0,
    relay: bool = True,
    pool: str = "prefork",
) -> Iterator[subprocess.Popen]:
    """Start `celery worker` (and, unless `relay` is false, the outbox relay with the same
    environment), wait until it is ready, stop it afterwards."""
    if relay:
        with (
            run_relay(env=env, ready_timeout=ready_timeout),
            run_worker(env=env, concurrency=concurrency, ready_timeout=ready_timeout, relay=False) as process,
        ):
            yield process
        return
    purge_broker()
    log_path = Path(settings.VAR_DIR) / f"test-worker-{os.getpid()}.log"
    log = log_path.open("w")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "integrations_project",
            "worker",
            "--loglevel",
            "INFO",
            "--concurrency",
            str(concurrency),
            "--pool",
            pool,
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
            "--hostname",
            f"test-{os.getpid()}@%h",
        ],
        cwd=ROOT,
        env=_worker_env(env),
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + ready_timeout
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"worker exited early:\n{log_path.read_text()}")
            if " ready." in log_path.read_text():
                break
            time.sleep(0.2)
        else:
            raise RuntimeError(f"worker not ready in {ready_timeout}s:\n{log_path.read_text()}")
        yield process
    finally:
        _stop(process)
        log.close()


def _stop(process: subprocess.Popen) -> None:
    """Terminate, and kill what does not exit within 15 s."""
    process.terminate()
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@contextmanager
def run_relay(
    *, env: dict[str, str] | None = None, ready_timeout: float = 90.0
) -> Iterator[subprocess.Popen]:
    """Start `manage.py run_relay` (the outbox relay), wait until it is ready, stop it afterwards."""
    with _logged_process(
        "relay", [sys.executable, "manage.py", "run_relay"], _worker_env(env), "relay ready.", ready_timeout
    ) as process:
        yield process


@contextmanager
def run_procfile_process(
    name: str, *, env: dict[str, str] | None = None, ready: str = " ready.", ready_timeout: float = 90.0
) -> Iterator[subprocess.Popen]:
    """Start process `name` exactly as the Procfile spells it (through the shell, as honcho
    does), on the test database and broker; wait for `ready` in its log; stop it afterwards."""
    purge_broker()
    process_env = _worker_env(env)
    # The venv's `celery` and `python` first, as `make run` puts them.
    process_env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{process_env.get('PATH', '')}"
    with _logged_process(name, procfile_argv(name), process_env, ready, ready_timeout) as process:
        yield process


@contextmanager
def _logged_process(
    name: str, argv: list[str], env: dict[str, str], ready: str, ready_timeout: float
) -> Iterator[subprocess.Popen]:
    """Run `argv` with its output in a log file until `ready` shows there; stop it afterwards
    (the log is kept with KEEP_TEST_LOGS=1)."""
    log_path = Path(settings.VAR_DIR) / f"test-{name}-{os.getpid()}-{time.monotonic_ns()}.log"
    log = log_path.open("w")
    process = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + ready_timeout
        while ready not in log_path.read_text():
            if process.poll() is not None:
                raise RuntimeError(f"{name} exited early:\n{log_path.read_text()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{name} not ready in {ready_timeout}s:\n{log_path.read_text()}")
            time.sleep(0.1)
        yield process
    finally:
        _stop(process)
        log.close()
        if not os.environ.get("KEEP_TEST_LOGS"):
            log_path.unlink(missing_ok=True)


class CaptureTasks(list):
    """Records (task name, args) of every task published while open (Celery's
    `before_task_publish` signal); the messages themselves are purged from the test broker."""

    def __enter__(self) -> CaptureTasks:
        from celery.signals import before_task_publish

        before_task_publish.connect(self._record)
        return self

    def __exit__(self, *exc: object) -> None:
        from celery.signals import before_task_publish

        before_task_publish.disconnect(self._record)
        purge_broker()

    def _record(self, sender: str | None = None, body: Any = None, **_: Any) -> None:
        self.append((sender, list(body[0])))


def run_due_jobs(timeout: float = 30.0, passes: int | None = None) -> int:
    """Run every due job in this process, as the relay and a worker would (Celery's eager mode),
    until nothing is due; the number of tasks run. For tests of the job bodies."""
    from celery import current_app

    from common.outbox import relay_pass

    eager = current_app.conf.task_always_eager
    current_app.conf.task_always_eager = True
    ran = 0
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and passes != 0:
            published = relay_pass()
            if not published:
                break
            ran += published
            passes = None if passes is None else passes - 1
    finally:
        current_app.conf.task_always_eager = eager
    return ran


def wait_for(predicate, timeout: float = 20.0, interval: float = 0.1, message: str = "condition"):
    """Poll `predicate` until it returns a truthy value, or fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {message}")
