"""Benchmark: import and export a generated bundle of 1,000 workspaces (not a test).

    .venv/bin/python bench/bundles.py [--n 1000]

Uses its own database (integrations_bench_bundles, created if missing) and Redis db 12. The
tree has three levels; every workspace has memory entries and secret keys, and schedules and
channels when those apps are installed. Prints wall time and SQL query count of each step.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DB_NAME = os.environ.get("BENCH_DB_NAME", "integrations_bench_bundles")
os.environ.setdefault("DATABASE_URL", f"postgres://postgres@127.0.0.1:5432/{DB_NAME}")
os.environ.setdefault("CELERY_BROKER_URL", "redis://127.0.0.1:6379/12")
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "integrations_project.settings")
os.environ.setdefault("LOG_LEVEL", "WARNING")


def _ensure_database() -> None:
    import psycopg

    with psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres", autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DB_NAME,)).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{DB_NAME}"')


def generated_bundle(n: int, *, with_schedules: bool, with_channels: bool) -> dict:
    """A root, ~sqrt(n) leads, the rest spread under them as members."""
    leads = max(1, int((n - 1) ** 0.5))
    nodes = [_node("root", 0, with_schedules, with_channels)]
    lead_nodes = []
    for i in range(min(leads, n - 1)):
        lead = _node(f"lead-{i}", i, with_schedules, with_channels)
        lead_nodes.append(lead)
        nodes[0]["children"].append(lead)
    remaining = n - 1 - len(lead_nodes)
    for i in range(remaining):
        lead_nodes[i % len(lead_nodes)]["children"].append(
            _node(f"member-{i}", i, with_schedules, with_channels)
        )
    return {"format": "integrations-bundle", "version": 1, "workspace": nodes[0]}


def _node(name: str, i: int, with_schedules: bool, with_channels: bool) -> dict:
    node = {
        "name": name,
        "role": f"role of {name}",
        "runtime": "langgraph",
        "tier": 1 + i % 4,
        "url": f"http://127.0.0.1:9/{name}",
        "max_concurrent_tasks": 1 + i % 3,
        "config": {"system_prompt": f"You are {name}.", "n": i},
        "template": None,
        "secrets": ["API_KEY", "OTHER_TOKEN"],
        "memory": {"goal": f"goal {i}", "numbers": [i, i + 1], "notes": {"k": "v"}},
        "schedules": [],
        "channels": [],
        "plugins": [],
        "children": [],
    }
    if with_schedules:
        node["schedules"] = [
            {
                "name": "daily",
                "expression": f"{i % 60} 9 * * *",
                "timezone": "UTC",
                "prompt": "Daily report.",
            },
            {"name": "weekly", "expression": "0 10 * * MON", "timezone": "Europe/Paris", "prompt": "Weekly."},
        ]
    if with_channels:
        node["channels"] = [
            {
                "platform": "telegram",
                "name": "chat",
                "allowlist": [],
                "enabled": False,
                "config": {"chat_ids": [str(i)]},
            }
        ]
    return node


def measure(label: str, func):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as ctx:
        started = time.perf_counter()
        result = func()
        elapsed = time.perf_counter() - started
    print(f"{label:<28} {elapsed * 1000:9.0f} ms {len(ctx.captured_queries):6d} queries")
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=1000, help="workspaces in the tree (default 1000)")
    args = parser.parse_args()
    _ensure_database()

    import django

    django.setup()
    from django.apps import apps
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    from templates_app.bundles import bundle_export, bundle_import
    from workspaces.models import Workspace

    with_schedules = apps.is_installed("schedules")
    with_channels = apps.is_installed("channels_app")
    bundle = generated_bundle(args.n, with_schedules=with_schedules, with_channels=with_channels)
    print(f"tree: {args.n} workspaces, 3 levels; schedules={with_schedules} channels={with_channels}")
    created: list = []
    try:
        result = measure("import (generated)", lambda: bundle_import(bundle=bundle))
        created.append(result.root_id)
        root = Workspace.objects.get(pk=result.root_id)
        exported = measure("export", lambda: bundle_export(workspace=root))
        again = measure("import (exported bundle)", lambda: bundle_import(bundle=exported))
        created.append(again.root_id)
        measure(
            "export (round trip)", lambda: bundle_export(workspace=Workspace.objects.get(pk=again.root_id))
        )
    finally:
        for root_id in created:
            Workspace.objects.filter(pk=root_id).delete()


if __name__ == "__main__":
    main()
