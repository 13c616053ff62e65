"""Approvals benchmark: the pending queue with many rows, and decisions under contention.

    .venv/bin/python bench/approvals.py [--n 10000] [--threads 50]

Uses its own PostgreSQL database (BENCH_DATABASE_URL, default
postgres://postgres@127.0.0.1:5432/integrations_bench_approvals), created and migrated if
needed, and emptied of approvals at the start. Prints figures; not a test.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DB_URL = os.environ.get(
    "BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/integrations_bench_approvals"
)
os.environ["DATABASE_URL"] = DB_URL
os.environ.setdefault("CELERY_BROKER_URL", "redis://127.0.0.1:6379/14")
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "integrations_project.settings")
os.environ.setdefault("ALLOWED_HOSTS", "localhost,127.0.0.1,testserver")


def ensure_database() -> None:
    import psycopg

    name = DB_URL.rsplit("/", 1)[1]
    with psycopg.connect(DB_URL.rsplit("/", 1)[0] + "/postgres", autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=10_000, help="pending approvals in the queue")
    parser.add_argument("--threads", type=int, default=50, help="concurrent deciders per approval")
    parser.add_argument("--rounds", type=int, default=20, help="contended approvals to decide")
    args = parser.parse_args()

    ensure_database()
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection
    from django.test import Client
    from django.utils import timezone

    call_command("migrate", verbosity=0)
    # The task queue is not needed here: keep decisions from enqueueing real notifications.
    import approvals.services as approval_services
    from approvals.models import Approval
    from approvals.services import approval_create
    from tokens.services import admin_token_create
    from workspaces.models import Workspace

    approval_services._enqueue_notification = lambda approval_id: None

    Approval.objects.all().delete()
    Workspace.objects.filter(name__startswith="bench-").delete()
    workspaces = [Workspace.objects.create(name=f"bench-{i}", runtime="langgraph") for i in range(20)]
    now = timezone.now()
    started = time.perf_counter()
    Approval.objects.bulk_create(
        [
            Approval(
                workspace=workspaces[i % 20],
                action=f"action {i}",
                metadata={"i": i},
                options=["a", "b"],
                expires_at=now + timedelta(hours=1),
                created_at=now - timedelta(seconds=args.n - i),
            )
            for i in range(args.n)
        ],
        batch_size=2000,
    )
    print(f"seeded {args.n} pending approvals in {time.perf_counter() - started:.2f}s")

    admin = admin_token_create(name="bench", created_by="bench").plaintext
    client = Client(HTTP_AUTHORIZATION=f"Bearer {admin}")
    timings = []
    for page in range(20):
        begin = time.perf_counter()
        response = client.get("/approvals/pending", {"limit": 50})
        timings.append(time.perf_counter() - begin)
        assert response.status_code == 200 and len(response.json()) == 50, page
    print(
        f"GET /approvals/pending?limit=50 over {args.n} rows: "
        f"p50 {statistics.median(timings) * 1000:.1f} ms, max {max(timings) * 1000:.1f} ms"
    )

    winners = 0
    conflicts = 0
    durations = []
    lock = threading.Lock()
    for _round in range(args.rounds):
        target = approval_create(workspace=workspaces[0], action="contended", created_by="bench")
        path = f"/workspaces/{workspaces[0].id}/approvals/{target.id}/decide"
        barrier = threading.Barrier(args.threads)

        def decide(index: int, path: str = path, barrier: threading.Barrier = barrier) -> None:
            nonlocal winners, conflicts
            try:
                local = Client(HTTP_AUTHORIZATION=f"Bearer {admin}")
                barrier.wait()
                begin = time.perf_counter()
                response = local.post(
                    path,
                    {"decision": "approve" if index % 2 else "reject"},
                    content_type="application/json",
                )
                elapsed = time.perf_counter() - begin
                with lock:
                    durations.append(elapsed)
                    if response.status_code == 200:
                        winners += 1
                    elif response.status_code == 409:
                        conflicts += 1
            finally:
                connection.close()

        threads = [threading.Thread(target=decide, args=(i,)) for i in range(args.threads)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    print(
        f"{args.rounds} approvals x {args.threads} concurrent deciders: {winners} won "
        f"(expected {args.rounds}), {conflicts} got 409; decide latency "
        f"p50 {statistics.median(durations) * 1000:.1f} ms, "
        f"p95 {statistics.quantiles(durations, n=20)[18] * 1000:.1f} ms"
    )
    started = time.perf_counter()
    Approval.objects.filter(workspace__name__startswith="bench-", status="pending").update(
        expires_at=timezone.now() - timedelta(seconds=1)
    )
    from approvals.services import approval_expire_due

    expired = 0
    while True:
        batch = approval_expire_due()
        if not batch:
            break
        expired += batch
    print(f"sweep expired {expired} approvals in {time.perf_counter() - started:.2f}s (batches of 500)")


if __name__ == "__main__":
    main()
