"""Scheduler benchmark: N enabled schedules due at once.

Prints
  (a) how long the dispatcher takes to claim all of them and record their runs, then how long the
      relay (common.outbox) takes to publish those runs, and the rate per second of both together;
  (b) the end-to-end time until a local A2A agent has received every prompt, with the
      Procfile's relay and workers (runs go to the `agents` gevent worker), and the number of
      duplicate deliveries (must be 0);
  (c) side by side, django-celery-beat's DatabaseScheduler holding the same N as one PeriodicTask
      each: how long it takes to load them and find the due ones, as a ratio to (a).

Usage: .venv/bin/python bench/scheduler.py [--n 10000] [--workspaces 100] [--skip-e2e]
Uses its own PostgreSQL database (integrations_bench_schedules) and Redis db 9 by default.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from collections import Counter
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

DB_NAME = os.environ.get("BENCH_DB_NAME", "integrations_bench_schedules")
DATABASE_URL = os.environ.get("BENCH_DATABASE_URL", f"postgres://postgres@127.0.0.1:5432/{DB_NAME}")
BROKER_URL = os.environ.get("BENCH_BROKER_URL", "redis://127.0.0.1:6379/9")
os.environ["DATABASE_URL"] = DATABASE_URL
os.environ["CELERY_BROKER_URL"] = BROKER_URL
os.environ["DJANGO_SETTINGS_MODULE"] = "integrations_project.settings"
os.environ.setdefault("LOG_LEVEL", "WARNING")
os.environ.setdefault("SECRET_KEY", "bench-only-secret-key-" + "x" * 40)  # manage.py run_relay checks it


def ensure_database() -> None:
    import psycopg

    admin_url = DATABASE_URL.rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DB_NAME,)).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{DB_NAME}"')


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=10_000, help="number of due schedules (default 10,000)")
    parser.add_argument("--workspaces", type=int, default=100, help="workspaces sharing the schedules")
    parser.add_argument(
        "--worker-concurrency", type=int, default=None, help="WORKER_CONCURRENCY of the prefork worker in (b)"
    )
    parser.add_argument("--skip-e2e", action="store_true", help="only (a) and (c)")
    parser.add_argument("--timeout", type=float, default=900, help="give up (b) after this many seconds")
    args = parser.parse_args()

    ensure_database()
    import django

    from integrations_project.procfile import procfile_argv

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)

    import redis
    from django.db import connection
    from django.utils import timezone
    from django_celery_beat.models import CrontabSchedule, PeriodicTask

    from schedules import services
    from schedules.models import RunStatus, Schedule, ScheduleRun
    from workspaces.echo_agent import start_echo_agent
    from workspaces.models import Workspace
    from workspaces.services import workspace_create

    n = args.n
    print(f"Scheduler benchmark: N={n:,} schedules over {args.workspaces} workspaces, {os.cpu_count()} CPUs")
    print(f"  database {DATABASE_URL}, broker {BROKER_URL}")

    def reset() -> None:
        redis.Redis.from_url(BROKER_URL).flushdb()
        ScheduleRun.objects.all().delete()
        Schedule.objects.all().delete()
        Workspace.objects.all().delete()
        PeriodicTask.objects.filter(task="bench.noop").delete()

    reset()
    agent = start_echo_agent()
    workspaces = [
        workspace_create(name=f"bench-{i}", url=agent.url, max_concurrent_tasks=10)
        for i in range(args.workspaces)
    ]

    def make_due() -> None:
        """N schedules, every minute, all due now (one bulk insert, as imports do)."""
        Schedule.objects.all().delete()
        due = timezone.now().replace(microsecond=0) - timedelta(seconds=1)
        prepared = []
        for i in range(n):
            schedule = services.schedule_prepare(
                workspace=workspaces[i % len(workspaces)], expression="* * * * *", prompt=f"bench prompt {i}"
            )
            schedule.next_run_at = due
            prepared.append(schedule)
        for start in range(0, n, 5000):
            services.schedule_bulk_create(schedules=prepared[start : start + 5000])
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE schedules_schedule")

    # (a) dispatcher alone: claim, create runs, advance, commit, enqueue -----------------------------
    from common.outbox import relay_pass

    make_due()
    started = time.perf_counter()
    created = services.schedule_dispatch_due()
    claim_seconds = time.perf_counter() - started
    relay_started = time.perf_counter()
    while relay_pass():  # what `manage.py run_relay` does on the dispatcher's NOTIFY
        pass
    relay_seconds = time.perf_counter() - relay_started
    dispatch_seconds = claim_seconds + relay_seconds
    queued = sum(redis.Redis.from_url(BROKER_URL).llen(q) for q in ("celery", "agents"))
    assert created == n, f"dispatcher created {created} runs, expected {n}"
    print()
    print("(a) dispatcher (claim + record) and relay (publish)")
    print(f"    runs created       {created:,} (messages on the broker: {queued:,})")
    print(
        f"    time               {dispatch_seconds:.2f} s (dispatcher {claim_seconds:.2f} s, relay {relay_seconds:.2f} s)"
    )
    print(f"    rate               {n / dispatch_seconds:,.0f} schedules/s (target >= 10,000)")

    # (b) end to end with a real worker ------------------------------------------------------------------
    e2e_seconds = None
    duplicates = None
    statuses: Counter = Counter()
    if not args.skip_e2e:
        reset_runs_and_broker = redis.Redis.from_url(BROKER_URL)
        reset_runs_and_broker.flushdb()
        ScheduleRun.objects.all().delete()
        make_due()
        agent.received.clear()
        log_path = ROOT / "var" / "bench-scheduler-worker.log"
        log_path.parent.mkdir(exist_ok=True)
        log = log_path.open("w")
        env = dict(os.environ)
        env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
        if args.worker_concurrency:
            env["WORKER_CONCURRENCY"] = str(args.worker_concurrency)
        # The Procfile's two workers, as `make run` starts them: runs go to the `agents` one.
        workers = [
            subprocess.Popen(
                procfile_argv(name),
                cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
            )
            for name in ("worker", "agents")
        ]  # fmt: skip
        worker = workers[1]
        relay = subprocess.Popen(
            [sys.executable, "manage.py", "run_relay"], cwd=ROOT, env=dict(os.environ), stdout=log, stderr=subprocess.STDOUT
        )  # fmt: skip
        try:
            from integrations_project.celery import app

            deadline = time.monotonic() + 60
            while len(app.control.ping(timeout=0.5)) < len(workers):
                if worker.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(f"worker did not start; see {log_path}")
            started = time.perf_counter()
            services.schedule_dispatch_due()
            loaded_dispatch = time.perf_counter() - started
            deadline = time.monotonic() + args.timeout
            while len(agent.received) < n and time.monotonic() < deadline:
                time.sleep(0.05)
            e2e_seconds = time.perf_counter() - started
            received = len(agent.received)
            # let the last runs record their outcome, then look for duplicates
            settle = time.monotonic() + 30
            while (
                ScheduleRun.objects.exclude(
                    status__in=[RunStatus.SUCCESS, RunStatus.ERROR, RunStatus.SKIPPED]
                ).exists()
                and time.monotonic() < settle
            ):
                time.sleep(0.2)
            time.sleep(1)
            ids = Counter(message["messageId"] for message in agent.received)
            duplicates = sum(count - 1 for count in ids.values() if count > 1)
            statuses = Counter(ScheduleRun.objects.values_list("status", flat=True))
        finally:
            relay.terminate()
            for process in workers:
                process.terminate()
            for process in workers:
                try:
                    process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    process.kill()
            log.close()
        print()
        print("(b) end to end (the Procfile's worker and agents processes, local A2A echo agent)")
        print(f"    dispatch under load {loaded_dispatch:.2f} s")
        print(f"    prompts received   {received:,} / {n:,}")
        print(f"    time               {e2e_seconds:.1f} s ({received / e2e_seconds:,.0f} runs/s)")
        print(f"    duplicates         {duplicates}")
        print(f"    run statuses       {dict(statuses)}")

    # (c) django-celery-beat DatabaseScheduler with N PeriodicTasks ------------------------------------
    from django_celery_beat.schedulers import DatabaseScheduler

    from integrations_project.celery import app

    crontab, _ = CrontabSchedule.objects.get_or_create(
        minute="*", hour="*", day_of_week="*", day_of_month="*", month_of_year="*", timezone="UTC"
    )
    last = timezone.now() - timedelta(minutes=2)
    PeriodicTask.objects.bulk_create(
        [
            PeriodicTask(
                name=f"bench-{i}", task="bench.noop", crontab=crontab, enabled=True, last_run_at=last
            )
            for i in range(n)
        ],
        batch_size=5000,
    )
    started = time.perf_counter()
    scheduler = DatabaseScheduler(app=app)
    entries = scheduler.schedule
    load_seconds = time.perf_counter() - started
    started = time.perf_counter()
    due = [name for name, entry in entries.items() if entry.task == "bench.noop" and entry.is_due().is_due]
    find_seconds = time.perf_counter() - started
    beat_seconds = load_seconds + find_seconds
    PeriodicTask.objects.filter(task="bench.noop").delete()

    # the same question asked of our table: which of the N are due (no locking, nothing written)
    make_due()
    started = time.perf_counter()
    ours_due = list(
        Schedule.objects.filter(enabled=True, next_run_at__lte=timezone.now()).values_list(
            "id", "expression", "timezone", "next_run_at"
        )
    )
    ours_find_seconds = time.perf_counter() - started
    print()
    print(f"(c) django-celery-beat DatabaseScheduler, {n:,} PeriodicTasks (crontab * * * * *)")
    print(f"    load               {load_seconds:.2f} s")
    print(f"    find due           {find_seconds:.2f} s ({len(due):,} due)")
    print(f"    load + find due    {beat_seconds:.2f} s, without sending anything")
    print(f"    ours, find due     {ours_find_seconds:.2f} s ({len(ours_due):,} due, one indexed query)")
    print(f"    ratio (find due)   beat / ours = {beat_seconds / ours_find_seconds:,.0f}x")
    print(
        "    ratio (full tick)  beat load + find / our claim + record + enqueue = "
        f"{beat_seconds / dispatch_seconds:.1f}x"
    )

    reset()
    agent.shutdown()
    agent.server_close()


if __name__ == "__main__":
    main()
