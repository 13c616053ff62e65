"""Webhook throughput: signed Telegram updates vs a bare Django view, same gunicorn, same run.

    .venv/bin/python bench/webhooks.py [--seconds 20] [--rounds 4] [--concurrency 8]
                                       [--workers 2] [--threads 4]

Starts the service under gunicorn as the Procfile does (2 workers × 4 threads by default) with
its production settings (plus one bench-only bare view)
on PostgreSQL (database `integrations_bench_webhooks` on 127.0.0.1; BENCH_DATABASE_URL picks
another, e.g. the server's Unix socket `postgres://postgres@%2Fvar%2Frun%2Fpostgresql/...`) and
Redis (db 10; BENCH_BROKER_URL), creates one Telegram
channel, then for a fixed time posts valid updates (distinct update ids, the right secret header)
from several client processes on 127.0.0.1, and the same load on `POST /bench/bare`. The time
of each path is split in rounds that alternate the two paths (bare, webhook, webhook, bare, ...)
so that a change of background load on a shared machine hits both alike. Prints requests per
second and p50/p99 latency of each, their ratio (overall and per round pair), the CPU spent per
request by the server, by PostgreSQL and by the clients (and the ratio of those sums, which is
steadier than the throughput ratio on a shared machine), and checks nothing was lost: every
update answered 200 is a row in the database, due for the relay (common.outbox). No relay and no
Celery worker run during the measure (the rows wait in the outbox), so the figure is the web
path alone: verify and one INSERT.
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
from typing import Any

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


def start_server(port: int, workers: int, threads: int) -> subprocess.Popen:
    process = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "gunicorn"),
            "bench.bench_wsgi:application",
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            str(workers),
            "--threads",
            str(threads),
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


def _process_cpu(pid: int) -> tuple[int, float] | None:
    """(parent pid, user + system CPU seconds) of a process, from Linux /proc."""
    try:
        fields = (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return int(fields[1]), (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def server_cpu_seconds(master_pid: int) -> float:
    """CPU of the gunicorn master and its workers, for the per-request cost."""
    total = 0.0
    for entry in Path("/proc").iterdir():
        sample = _process_cpu(int(entry.name)) if entry.name.isdigit() else None
        if sample and master_pid in (int(entry.name), sample[0]):
            total += sample[1]
    return total


def database_cpu_seconds() -> dict[int, float]:
    """CPU of each PostgreSQL backend connected to the bench database (the gunicorn workers'
    persistent connections), by backend pid. Needs the server on this machine."""
    import psycopg

    with psycopg.connect(DB_URL, autocommit=True) as conn:
        pids = conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()", (DB_NAME,)
        ).fetchall()
    return {pid: sample[1] for (pid,) in pids if (sample := _process_cpu(pid))}


def _database_delta(before: dict[int, float], after: dict[int, float]) -> float:
    return sum(cpu - before.get(pid, 0.0) for pid, cpu in after.items())


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
    cpu_started = time.process_time()
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
    results.put((latencies, ok, errors, time.process_time() - cpu_started))


_PHASE = iter(range(1, 1000))


def run_load(port: int, path: str, channel_id: str, seconds: float, concurrency: int) -> dict[str, Any]:
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
    return {
        "latencies": [lat for item in gathered for lat in item[0]],
        "ok": sum(item[1] for item in gathered),
        "errors": sum(item[2] for item in gathered),
        "client_cpu": sum(item[3] for item in gathered),
        "elapsed": time.monotonic() - started,
    }


def measured_phase(server_pid: int, port: int, path: str, channel_id: str, seconds: float, concurrency: int):
    """One phase of load on `path`, with the CPU the server and the database spent meanwhile."""
    db0, cpu0 = database_cpu_seconds(), server_cpu_seconds(server_pid)
    result = run_load(port, path, channel_id, seconds, concurrency)
    result["server_cpu"] = server_cpu_seconds(server_pid) - cpu0
    result["db_cpu"] = _database_delta(db0, database_cpu_seconds())
    return result


def summarise(phases: list[dict[str, Any]]) -> dict[str, float]:
    latencies = sorted(lat for phase in phases for lat in phase["latencies"])
    requests = len(latencies)
    per_request = max(requests, 1)
    return {
        "requests": requests,
        "ok": sum(phase["ok"] for phase in phases),
        "errors": sum(phase["errors"] for phase in phases),
        "rps": requests / sum(phase["elapsed"] for phase in phases),
        "p50_ms": statistics.median(latencies) * 1000 if latencies else 0.0,
        "p99_ms": latencies[min(requests - 1, int(requests * 0.99))] * 1000 if latencies else 0.0,
        "server_ms": sum(phase["server_cpu"] for phase in phases) * 1000 / per_request,
        "db_ms": sum(phase["db_cpu"] for phase in phases) * 1000 / per_request,
        "client_ms": sum(phase["client_cpu"] for phase in phases) * 1000 / per_request,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0, help="load time of each path (all rounds)")
    parser.add_argument("--n", type=float, dest="seconds", help="alias of --seconds (to shrink the run)")
    parser.add_argument("--rounds", type=int, default=4, help="alternating phases per path")
    parser.add_argument("--concurrency", type=int, default=8, help="client processes")
    # The web process of the Procfile: WEB_CONCURRENCY workers × WEB_THREADS threads.
    parser.add_argument(
        "--workers", type=int, default=int(os.environ.get("WEB_CONCURRENCY", 2)), help="gunicorn workers (2)"
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=int(os.environ.get("WEB_THREADS", 4)),
        help="gunicorn threads per worker (4; 1: sync workers)",
    )
    parser.add_argument("--port", type=int, default=8765)
    args = parser.parse_args()

    load_before = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    ensure_database()
    channel_id = prepare()
    server = start_server(args.port, args.workers, args.threads)
    bare_path, hook_path = "/bench/bare", "/webhooks/telegram"
    phase_seconds = args.seconds / max(args.rounds, 1)
    try:
        run_load(args.port, bare_path, channel_id, 2, args.concurrency)  # warm-up
        run_load(args.port, hook_path, channel_id, 2, args.concurrency)
        from channels_app.models import INBOUND, ChannelMessage

        def due_rows() -> int:
            return ChannelMessage.objects.filter(INBOUND.active, relay_due_at__isnull=False).count()

        warm_rows = ChannelMessage.objects.count()
        warm_tasks = due_rows()
        bare_phases: list[dict[str, Any]] = []
        hook_phases: list[dict[str, Any]] = []
        for round_index in range(max(args.rounds, 1)):
            order = [bare_path, hook_path] if round_index % 2 == 0 else [hook_path, bare_path]
            for path in order:
                phase = measured_phase(
                    server.pid, args.port, path, channel_id, phase_seconds, args.concurrency
                )
                (bare_phases if path == bare_path else hook_phases).append(phase)
    finally:
        server.terminate()
        server.wait(timeout=30)
    load_after = " ".join(Path("/proc/loadavg").read_text().split()[:3])

    bare, hook = summarise(bare_phases), summarise(hook_phases)
    rows = ChannelMessage.objects.count() - warm_rows
    tasks = due_rows() - warm_tasks
    print(
        f"gunicorn workers={args.workers} threads={args.threads}, clients={args.concurrency}, "
        f"{args.seconds:g}s per path in {args.rounds} alternating rounds, cpus={os.cpu_count()}"
    )
    print(f"load average before the run: {load_before}; after: {load_after}")
    print(f"database: {DB_URL.split('@', 1)[-1]}; broker: {BROKER_URL.split('@', 1)[-1]}")
    print(
        f"{'path':<20}{'requests':>9}{'rps':>8}{'p50 ms':>8}{'p99 ms':>8}{'errors':>7}"
        f"{'CPU ms/req: server':>20}{'db':>6}{'clients':>8}"
    )
    for name, result in (("bare Django view", bare), ("telegram webhook", hook)):
        print(
            f"{name:<20}{result['requests']:>9}{result['rps']:>8.1f}{result['p50_ms']:>8.2f}"
            f"{result['p99_ms']:>8.2f}{result['errors']:>7}{result['server_ms']:>20.2f}"
            f"{result['db_ms']:>6.2f}{result['client_ms']:>8.2f}"
        )
    per_round = [
        len(h["latencies"]) / h["elapsed"] / (len(b["latencies"]) / b["elapsed"])
        for b, h in zip(bare_phases, hook_phases, strict=True)
    ]
    print(
        f"throughput ratio webhook/bare: {hook['rps'] / bare['rps']:.2f} "
        f"(per round: {', '.join(f'{r:.2f}' for r in per_round)})"
    )
    cpu_bare = bare["server_ms"] + bare["db_ms"] + bare["client_ms"]
    cpu_hook = hook["server_ms"] + hook["db_ms"] + hook["client_ms"]
    print(
        f"CPU per request, server + db + clients: bare {cpu_bare:.2f} ms, webhook {cpu_hook:.2f} ms; "
        f"their ratio {cpu_bare / cpu_hook:.2f} (what the throughput ratio tends to when the machine "
        "is CPU-bound; Redis not counted)"
    )
    lost = hook["ok"] - rows
    print(f"accepted updates: {hook['ok']}, rows stored: {rows}, due for the relay: {tasks}, lost: {lost}")
    if lost or tasks != hook["ok"]:
        sys.exit("some accepted updates were lost")


if __name__ == "__main__":
    main()
