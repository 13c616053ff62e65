"""Webhook throughput: signed Telegram updates vs a bare Django view, same gunicorn, same run.

    .venv/bin/python bench/webhooks.py [--seconds 20] [--concurrency 8] [--workers 2]

Starts the service under gunicorn with its production settings (plus one bench-only bare view)
on PostgreSQL (database `integrations_bench_webhooks`) and Redis (db 10), creates one Telegram
channel, then for a fixed time posts valid updates (distinct update ids, the right secret header)
from several client processes on 127.0.0.1, and the same load on `POST /bench/bare`. Prints
requests per second and p50/p99 latency of each, their ratio, and checks nothing was lost: every
update answered 200 is a row in the database, with one task queued for it. No Celery worker runs
during the measure (the tasks wait in Redis), so the figure is the web path alone.
"""

from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

DB_NAME = os.environ.get("BENCH_DB_NAME", "integrations_bench_webhooks")
DB_URL = os.environ.get("BENCH_DATABASE_URL", f"postgres://postgres@127.0.0.1:5432/{DB_NAME}")
BROKER_URL = os.environ.get("BENCH_BROKER_URL", "redis://127.0.0.1:6379/10")
SECRET = "bench-webhook-secret-0123456789"
BOT_TOKEN = "123456:BENCHbenchBENCHbenchBENCHbench12"

ENV = {
    "DJANGO_SETTINGS_MODULE": "bench.bench_settings",
    "DATABASE_URL": DB_URL,
    "CELERY_BROKER_URL": BROKER_URL,
    "SECRET_KEY": "bench-secret-key-not-for-production-0123456789abcdef",
    "DEBUG": "false",
    "LOG_LEVEL": "WARNING",
    "PUBLIC_BASE_URL": "",
    "PYTHONPATH": str(ROOT),
}


def ensure_database() -> None:
    import psycopg

    admin_url = DB_URL.rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DB_NAME,)).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{DB_NAME}"')


def prepare() -> str:
    """Migrate, reset the channel tables and the broker db, create one channel; return its id."""
    os.environ.update(ENV)
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    import redis

    from channels_app.models import Channel, ChannelMessage
    from channels_app.services import channel_create
    from workspaces.models import Workspace
    from workspaces.services import workspace_create

    redis.Redis.from_url(BROKER_URL).flushdb()
    ChannelMessage.objects.all().delete()
    Channel.objects.all().delete()
    Workspace.objects.filter(name="bench").delete()
    workspace = workspace_create(name="bench", url="http://127.0.0.1:9/")
    channel = channel_create(
        workspace=workspace,
        platform="telegram",
        config={"bot_token": BOT_TOKEN, "webhook_secret": SECRET, "chat_ids": ["4242"]},
    )
    return str(channel.pk)


def start_server(port: int, workers: int) -> subprocess.Popen:
    process = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "gunicorn"),
            "bench.bench_wsgi:application",
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            str(workers),
            "--log-level",
            "warning",
        ],
        cwd=ROOT,
        env={**os.environ, **ENV},
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/health")
            if conn.getresponse().status == 200:
                return process
        except OSError:
            pass
        time.sleep(0.2)
    process.terminate()
    raise RuntimeError("gunicorn did not start")


def server_cpu_seconds(master_pid: int) -> float:
    """User + system CPU of the gunicorn master and its workers (Linux /proc), for per-request cost."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        pid, ppid = int(entry.name), int(fields[1])
        if pid == master_pid or ppid == master_pid:
            total += (int(fields[11]) + int(fields[12])) / tick
    return total


def _update(update_id: int) -> bytes:
    return json.dumps(
        {
            "update_id": update_id,
            "message": {
                "message_id": update_id,
                "date": 1700000000,
                "chat": {"id": 4242, "type": "private"},
                "from": {"id": 7, "is_bot": False, "first_name": "Bench"},
                "text": f"bench message {update_id}",
            },
        }
    ).encode()


def client(args: tuple[int, str, str, float, int, multiprocessing.Queue]) -> None:
    """One closed-loop client: posts until the deadline, reports latencies and accepted count.

    `index` is unique per client and phase, so every update id of the run is distinct.
    """
    port, path, channel_id, seconds, index, results = args
    latencies: list[float] = []
    ok = errors = 0
    update_id = index * 1_000_000
    headers = {"Content-Type": "application/json", "X-Telegram-Bot-Api-Secret-Token": SECRET}
    url = f"{path}?channel={channel_id}" if path.startswith("/webhooks") else path
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        update_id += 1
        body = _update(update_id)
        started = time.perf_counter()
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            conn.request("POST", url, body=body, headers=headers)
            response = conn.getresponse()
            response.read()
            conn.close()
        except OSError:
            errors += 1
            continue
        latencies.append(time.perf_counter() - started)
        if response.status == 200:
            ok += 1
        else:
            errors += 1
    results.put((latencies, ok, errors))


_PHASE = iter(range(1, 1000))


def run_load(port: int, path: str, channel_id: str, seconds: float, concurrency: int) -> dict[str, float]:
    results: multiprocessing.Queue = multiprocessing.Queue()
    phase = next(_PHASE)
    processes = [
        multiprocessing.Process(
            target=client, args=((port, path, channel_id, seconds, phase * 1000 + i + 1, results),)
        )
        for i in range(concurrency)
    ]
    started = time.monotonic()
    for process in processes:
        process.start()
    gathered = [results.get() for _ in processes]
    for process in processes:
        process.join()
    elapsed = time.monotonic() - started
    latencies = sorted(lat for item in gathered for lat in item[0])
    ok = sum(item[1] for item in gathered)
    errors = sum(item[2] for item in gathered)
    return {
        "requests": len(latencies),
        "ok": ok,
        "errors": errors,
        "rps": len(latencies) / elapsed,
        "p50_ms": statistics.median(latencies) * 1000 if latencies else 0.0,
        "p99_ms": latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000 if latencies else 0.0,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0, help="duration of each phase")
    parser.add_argument("--n", type=float, dest="seconds", help="alias of --seconds (to shrink the run)")
    parser.add_argument("--concurrency", type=int, default=8, help="client processes")
    parser.add_argument(
        "--workers", type=int, default=2 * (os.cpu_count() or 1) + 1, help="gunicorn workers (2 × CPUs + 1)"
    )
    parser.add_argument("--port", type=int, default=8765)
    args = parser.parse_args()

    load_before = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    ensure_database()
    channel_id = prepare()
    server = start_server(args.port, args.workers)
    try:
        run_load(args.port, "/bench/bare", channel_id, 2, args.concurrency)  # warm-up
        run_load(args.port, "/webhooks/telegram", channel_id, 2, args.concurrency)
        from channels_app.models import ChannelMessage

        warm_rows = ChannelMessage.objects.count()
        import redis

        warm_tasks = redis.Redis.from_url(BROKER_URL).llen("celery")
        cpu0 = server_cpu_seconds(server.pid)
        bare = run_load(args.port, "/bench/bare", channel_id, args.seconds, args.concurrency)
        cpu1 = server_cpu_seconds(server.pid)
        hook = run_load(args.port, "/webhooks/telegram", channel_id, args.seconds, args.concurrency)
        cpu2 = server_cpu_seconds(server.pid)
        bare["cpu_ms"] = (cpu1 - cpu0) * 1000 / max(bare["requests"], 1)
        hook["cpu_ms"] = (cpu2 - cpu1) * 1000 / max(hook["requests"], 1)
    finally:
        server.terminate()
        server.wait(timeout=30)

    rows = ChannelMessage.objects.count() - warm_rows
    tasks = redis.Redis.from_url(BROKER_URL).llen("celery") - warm_tasks
    print(
        f"gunicorn workers={args.workers}, clients={args.concurrency}, "
        f"{args.seconds:g}s per phase, cpus={os.cpu_count()}"
    )
    print(f"load average before the run: {load_before}")
    print(
        f"{'path':<22}{'requests':>10}{'rps':>10}{'p50 ms':>10}{'p99 ms':>10}{'errors':>8}{'cpu ms/req':>12}"
    )
    for name, result in (("bare Django view", bare), ("telegram webhook", hook)):
        print(
            f"{name:<22}{result['requests']:>10}{result['rps']:>10.1f}{result['p50_ms']:>10.2f}"
            f"{result['p99_ms']:>10.2f}{result['errors']:>8}{result['cpu_ms']:>12.2f}"
        )
    print(f"throughput ratio webhook/bare: {hook['rps'] / bare['rps']:.2f}")
    lost = hook["ok"] - rows
    print(f"accepted updates: {hook['ok']}, rows stored: {rows}, tasks queued: {tasks}, lost: {lost}")
    redis.Redis.from_url(BROKER_URL).flushdb()
    if lost or tasks != hook["ok"]:
        sys.exit("some accepted updates were lost")


if __name__ == "__main__":
    main()
