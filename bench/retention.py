"""Retention benchmark: prune N schedule-run rows while the dispatcher keeps writing.

Loads N finished runs (default 1,000,000) spread over 365 days across S schedules (default 100,
so each holds N/S runs: both the 90-day rule and the 1,000-per-schedule rule have work), then
runs `housekeeping.services.history_prune` with the default settings and prints
  - the rows deleted and the total time, the rate;
  - the longest single DELETE transaction (the longest any row lock is held) and the median;
  - meanwhile a writer thread does what the dispatcher does every tick (insert a run, update its
    schedule) every 50 ms: its slowest write is how long pruning could make the service wait.

Usage: .venv/bin/python bench/retention.py [--n 1000000] [--schedules 100] [--batch-size 1000]
Uses its own PostgreSQL database (integrations_bench_retention).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

DB_NAME = os.environ.get("BENCH_DB_NAME", "integrations_bench_retention")
DATABASE_URL = os.environ.get("BENCH_DATABASE_URL", f"postgres://postgres@127.0.0.1:5432/{DB_NAME}")
os.environ["DATABASE_URL"] = DATABASE_URL
os.environ.setdefault("CELERY_BROKER_URL", "redis://127.0.0.1:6379/9")
os.environ["DJANGO_SETTINGS_MODULE"] = "integrations_project.settings"
os.environ.setdefault("LOG_LEVEL", "WARNING")


def ensure_database() -> None:
    import psycopg

    admin_url = DATABASE_URL.rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DB_NAME,)).fetchone():
            conn.execute(f'CREATE DATABASE "{DB_NAME}"')


def load(n: int, schedules: int) -> None:
    """N finished runs in one INSERT ... SELECT generate_series (seconds, not minutes)."""
    from django.db import connection

    from schedules.models import Schedule, ScheduleRun
    from workspaces.models import Workspace

    ScheduleRun.objects.all().delete()
    Schedule.objects.all().delete()
    Workspace.objects.filter(name="bench-retention").delete()
    workspace = Workspace.objects.create(name="bench-retention", runtime="langgraph")
    made = Schedule.objects.bulk_create(
        Schedule(
            workspace=workspace, expression="* * * * *", prompt="p", name=f"s{i}", run_count=n // schedules
        )
        for i in range(schedules)
    )
    ids = [str(schedule.pk) for schedule in made]
    with connection.cursor() as cursor:
        cursor.execute(
            """
            INSERT INTO schedules_schedulerun
              (id, schedule_id, trigger, status, scheduled_for, started_at, finished_at, duration_ms,
               created_at)
            SELECT gen_random_uuid(), (%s::uuid[])[1 + g %% %s], 'cron',
                   (ARRAY['success', 'success', 'success', 'error', 'skipped'])[1 + g %% 5],
                   t, t, t + interval '2 seconds', 2000, t
            FROM generate_series(0, %s - 1) AS g,
                 LATERAL (SELECT now() - (g::float / %s) * interval '365 days' AS t) AS slot
            """,
            [ids, schedules, n, n],
        )
        cursor.execute("ANALYZE schedules_schedulerun")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=1_000_000, help="run rows to load (default 1,000,000)")
    parser.add_argument("--schedules", type=int, default=100, help="schedules sharing them (default 100)")
    parser.add_argument("--batch-size", type=int, default=None, help="rows per DELETE (default: setting)")
    args = parser.parse_args()

    ensure_database()
    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command
    from django.db import connection, transaction
    from django.utils import timezone

    from housekeeping.services import history_prune
    from schedules.models import Schedule, ScheduleRun

    call_command("migrate", verbosity=0)
    print(f"Retention benchmark: N={args.n:,} runs over {args.schedules} schedules, {os.cpu_count()} CPUs")
    started = time.perf_counter()
    load(args.n, args.schedules)
    print(f"  loaded in {time.perf_counter() - started:.1f} s; database {DATABASE_URL}")
    keep_days, keep_n = settings.SCHEDULE_RUNS_KEEP_DAYS, settings.SCHEDULE_RUNS_KEEP_PER_SCHEDULE
    print(
        f"  keep: {keep_days} days, {keep_n} per schedule; batch {args.batch_size or settings.RETENTION_BATCH_SIZE}"
    )

    started = time.perf_counter()
    expected = history_prune(dry_run=True)
    print(f"  dry run: {sum(expected.values()):,} rows would go ({time.perf_counter() - started:.1f} s)")

    stop = threading.Event()
    writes: list[float] = []
    # Its own schedule, so its new runs do not change what the pruning of the loaded ones finds.
    loaded = Schedule.objects.first()
    target = Schedule.objects.create(workspace_id=loaded.workspace_id, expression="* * * * *", prompt="w").pk

    def writer() -> None:
        """The dispatcher's writes on the same tables, every 50 ms."""
        try:
            while not stop.is_set():
                began = time.perf_counter()
                with transaction.atomic():
                    now = timezone.now()
                    ScheduleRun.objects.create(
                        schedule_id=target, trigger="manual", status="queued", scheduled_for=now
                    )
                    Schedule.objects.filter(pk=target).update(next_run_at=now)
                writes.append(time.perf_counter() - began)
                stop.wait(0.05)
        finally:
            connection.close()

    thread = threading.Thread(target=writer)
    thread.start()
    batches: list[float] = []
    started = time.perf_counter()
    report = history_prune(
        batch_size=args.batch_size, on_batch=lambda part, rows, seconds: batches.append(seconds)
    )
    elapsed = time.perf_counter() - started
    stop.set()
    thread.join()
    deleted = sum(report.values())
    left = ScheduleRun.objects.filter(trigger="cron").count()

    print()
    for part, count in report.items():
        if count:
            print(f"    {part:<26} {count:,}")
    print(f"  deleted              {deleted:,} rows in {len(batches):,} batches ({left:,} runs left)")
    print(f"  time                 {elapsed:.1f} s ({deleted / elapsed:,.0f} rows/s)")
    print(
        f"  longest transaction  {max(batches) * 1000:.0f} ms (median {statistics.median(batches) * 1000:.0f} ms)"
    )
    print(
        f"  concurrent writes    {len(writes)}, slowest {max(writes) * 1000:.0f} ms "
        f"(median {statistics.median(writes) * 1000:.1f} ms)"
    )
    assert deleted == sum(expected.values()), "the dry run and the prune disagree"


if __name__ == "__main__":
    main()
