"""Agent I/O benchmark: N workspaces whose agents answer after L seconds, all fired at once.

Runs the Procfile's processes (relay, `worker`, `agents`) on PostgreSQL and Redis, against a
fake agent and a fake Telegram API served by one asyncio loop in this process, and prints for
each phase:
  - the time until every agent got its prompt, and until every run / message is recorded;
  - the peak number of calls in flight at the agents;
  - the peak PostgreSQL connections of the agent worker (and of the whole database);
  - CPU per run: the CPU time of the relay and both workers, divided by the runs;
  - duplicates (a prompt received twice) and losses (a run or message never finished).

Phases: (1) schedules: half of the N workspaces have a cron schedule due now (the dispatcher
turns them into runs), the other half get a run-now; (2) chats: one inbound Telegram update per
workspace, through the webhook view, to the same slow agents; the replies are sent to the fake
Telegram API.

Usage: .venv/bin/python bench/agents.py [--n 2000] [--latency 5] [--agent-concurrency 2000]
Uses its own PostgreSQL database (integrations_bench_agents) and Redis db 10 by default.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import threading
import time
from collections import Counter
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

DB_NAME = os.environ.get("BENCH_DB_NAME", "integrations_bench_agents")
DATABASE_URL = os.environ.get("BENCH_DATABASE_URL", f"postgres://postgres@127.0.0.1:5432/{DB_NAME}")
BROKER_URL = os.environ.get("BENCH_BROKER_URL", "redis://127.0.0.1:6379/10")
os.environ["DATABASE_URL"] = DATABASE_URL
os.environ["CELERY_BROKER_URL"] = BROKER_URL
os.environ["DJANGO_SETTINGS_MODULE"] = "integrations_project.settings"
os.environ.setdefault("LOG_LEVEL", "WARNING")
os.environ.setdefault("SECRET_KEY", "bench-only-secret-key-" + "x" * 40)
AGENT_APPLICATION_NAME = "integrations-agents"  # the Procfile's agents line
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def ensure_database() -> None:
    import psycopg

    admin_url = DATABASE_URL.rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DB_NAME,)).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{DB_NAME}"')


class SlowPeers:
    """A2A agents answering after `latency` seconds, and a Telegram Bot API answering at once,
    on one asyncio loop (thousands of held connections cost one thread)."""

    def __init__(self, latency: float) -> None:
        self.latency = latency
        self.lock = threading.Lock()
        self.in_flight = 0
        self.peak = 0
        self.prompts: list[str] = []
        self.sent_chats: list[str] = []
        self.loop = asyncio.new_event_loop()
        self.port = 0
        ready = threading.Event()
        threading.Thread(target=self._serve, args=(ready,), daemon=True, name="slow-peers").start()
        ready.wait(10)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def reset(self) -> None:
        with self.lock:
            self.peak, self.prompts, self.sent_chats = 0, [], []

    def _serve(self, ready: threading.Event) -> None:
        asyncio.set_event_loop(self.loop)

        async def start() -> None:
            server = await asyncio.start_server(self._client, "127.0.0.1", 0, backlog=4096)
            self.port = server.sockets[0].getsockname()[1]
            ready.set()

        self.loop.run_until_complete(start())
        self.loop.run_forever()

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                path = lines[0].split(" ")[1]
                length = 0
                for line in lines[1:]:
                    if line.lower().startswith("content-length:"):
                        length = int(line.split(":", 1)[1])
                body = json.loads(await reader.readexactly(length)) if length else {}
                answer = await self._answer(path, body)
                data = json.dumps(answer).encode()
                writer.write(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                    + f"Content-Length: {len(data)}\r\n\r\n".encode()
                    + data
                )
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def _answer(self, path: str, body: dict) -> dict:
        if path.startswith("/bot"):  # Telegram: sendMessage, sendChatAction, ...
            if path.endswith("/sendMessage"):
                with self.lock:
                    self.sent_chats.append(str(body.get("chat_id")))
            return {"ok": True, "result": {"message_id": 1}}
        message = (body.get("params") or {}).get("message") or {}
        with self.lock:
            self.prompts.append(str(message.get("messageId")))
            self.in_flight += 1
            self.peak = max(self.peak, self.in_flight)
        try:
            await asyncio.sleep(self.latency)
        finally:
            with self.lock:
                self.in_flight -= 1
        reply = {"messageId": "r", "contextId": "c", "role": "ROLE_AGENT", "parts": [{"text": "done"}]}
        return {"jsonrpc": "2.0", "id": body.get("id"), "result": {"message": reply}}


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU of the processes and their reaped children (/proc/<pid>/stat)."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except FileNotFoundError:
            continue
        total += sum(int(value) for value in fields[11:15])  # utime stime cutime cstime
    return total / CLOCK_TICKS


def tree_pids(root: int) -> list[int]:
    """`root` and its live descendants (prefork children count too)."""
    pids, frontier = [root], [root]
    while frontier:
        pid = frontier.pop()
        try:
            children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        except FileNotFoundError:
            continue
        pids += [int(c) for c in children]
        frontier += [int(c) for c in children]
    return pids


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=2000, help="workspaces (default 2,000)")
    parser.add_argument("--latency", type=float, default=5.0, help="seconds each agent takes (default 5)")
    parser.add_argument(
        "--agent-concurrency", type=int, default=2000, help="AGENT_CONCURRENCY of the agents worker"
    )
    parser.add_argument(
        "--agent-processes",
        type=int,
        default=1,
        help="agents worker processes (default 1, as the Procfile starts; more: docs/operations.md)",
    )
    parser.add_argument(
        "--agent-db-connections",
        type=int,
        default=20,
        help="PostgreSQL connections of all agents processes together (AGENT_DB_POOL_SIZE each: this / processes)",
    )
    parser.add_argument("--skip-chats", action="store_true", help="only the schedules phase")
    parser.add_argument("--timeout", type=float, default=600)
    args = parser.parse_args()
    n = args.n

    ensure_database()
    import django

    from integrations_project.procfile import procfile_argv

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)

    import redis
    from django.db import connection
    from django.test import Client
    from django.utils import timezone

    from channels_app.models import Channel, ChannelMessage, Direction, MessageStatus
    from channels_app.services import channel_create
    from schedules import services as schedule_services
    from schedules.models import RunStatus, Schedule, ScheduleRun
    from workspaces.models import Workspace
    from workspaces.services import workspace_create

    peers = SlowPeers(args.latency)
    print(
        f"Agent I/O benchmark: N={n:,} workspaces, agents answer after {args.latency:g} s, {os.cpu_count()} CPUs"
    )
    print(
        f"  database {DATABASE_URL}, broker {BROKER_URL}, {args.agent_processes} agents processes"
        f" (AGENT_CONCURRENCY={args.agent_concurrency}, {args.agent_db_connections} PG connections in all)"
    )

    redis.Redis.from_url(BROKER_URL).flushdb()
    ChannelMessage.objects.all().delete()
    Channel.objects.all().delete()
    ScheduleRun.objects.all().delete()
    Schedule.objects.all().delete()
    Workspace.objects.all().delete()
    workspaces = [
        workspace_create(name=f"agent-{i}", url=f"{peers.url}/agents/{i}", a2a_protocol="1.0")
        for i in range(n)
    ]

    env = dict(os.environ)
    env.update(
        {
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
            "TELEGRAM_API_BASE_URL": peers.url,
            "AGENT_CONCURRENCY": str(args.agent_concurrency),
            "AGENT_DB_POOL_SIZE": str(max(2, args.agent_db_connections // args.agent_processes)),
            "CHANNEL_TYPING_INTERVAL_SECONDS": "60",
        }
    )
    log_path = ROOT / "var" / "bench-agents.log"
    log_path.parent.mkdir(exist_ok=True)
    log = log_path.open("w")
    # The Procfile's processes; `agents` as many times as asked (each is one gevent process, so
    # one per CPU at most), with distinct Celery node names.
    names = ["relay", "worker"] + [f"agents.{i}" for i in range(1, args.agent_processes + 1)]
    processes = {
        name: subprocess.Popen(
            procfile_argv(name.split(".")[0]), cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
            env={**env, "AGENT_NODE_SUFFIX": "." + name.split(".")[1]} if "." in name else env,
        )
        for name in names
    }  # fmt: skip

    def connections() -> tuple[int, int]:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(*) FILTER (WHERE application_name = %s), count(*) FROM pg_stat_activity"
                " WHERE datname = %s",
                [AGENT_APPLICATION_NAME, DB_NAME],
            )
            return cursor.fetchone()

    def measure(label: str, fire, received, recorded, total: int) -> None:
        peers.reset()
        pids = [pid for process in processes.values() for pid in tree_pids(process.pid)]
        cpu_before = cpu_seconds(pids)
        started = time.perf_counter()
        fire()
        fired = time.perf_counter() - started
        all_received = all_recorded = None
        peak_agent_conns = peak_conns = 0
        deadline = time.monotonic() + args.timeout
        while time.monotonic() < deadline:
            agent_conns, conns = connections()
            peak_agent_conns, peak_conns = max(peak_agent_conns, agent_conns), max(peak_conns, conns)
            if all_received is None and received() >= total:
                all_received = time.perf_counter() - started
            if recorded() >= total:
                all_recorded = time.perf_counter() - started
                break
            time.sleep(0.1)
        time.sleep(1)  # let late duplicates show
        pids = [pid for process in processes.values() for pid in tree_pids(process.pid)]
        cpu = cpu_seconds(pids) - cpu_before
        with peers.lock:
            counts = Counter(peers.prompts)
        duplicates = sum(c - 1 for c in counts.values() if c > 1)
        print()
        print(label)
        print(f"    fired in           {fired:.2f} s")
        print(
            f"    all prompts in     {all_received:.1f} s"
            if all_received
            else f"    prompts received   {len(counts):,} / {total:,} (timeout)"
        )
        print(
            f"    all recorded in    {all_recorded:.1f} s"
            if all_recorded
            else f"    recorded           {recorded():,} / {total:,} (timeout)"
        )
        print(f"    peak in flight     {peers.peak:,} calls at the agents")
        print(
            f"    peak PG conns      {peak_agent_conns} (agent worker), {peak_conns} (whole database, this process included)"
        )
        print(
            f"    CPU per run        {cpu / total * 1000:.1f} ms (relay + workers: {cpu:.1f} s for {total:,})"
        )
        print(f"    duplicates         {duplicates}")
        print(f"    lost               {total - recorded()}")  # fmt: skip

    try:
        from integrations_project.celery import app

        deadline = time.monotonic() + 90
        while len(app.control.ping(timeout=0.5)) < 1 + args.agent_processes:
            if any(p.poll() is not None for p in processes.values()) or time.monotonic() > deadline:
                raise SystemExit(f"workers did not start; see {log_path}")

        # (1) schedules: half cron (due now), half run-now ----------------------------------------
        due = timezone.now().replace(microsecond=0) - timedelta(seconds=1)
        schedules = []
        for i, workspace in enumerate(workspaces):
            schedule = schedule_services.schedule_prepare(
                workspace=workspace, expression="0 9 * * *", prompt=f"bench {i}"
            )
            schedule.next_run_at = due if i % 2 == 0 else timezone.now() + timedelta(days=1)
            schedules.append(schedule)
        schedule_services.schedule_bulk_create(schedules=schedules)

        def fire_schedules() -> None:
            schedule_services.schedule_dispatch_due()
            for schedule in schedules[1::2]:
                schedule_services.schedule_run_now(schedule=schedule)

        measure(
            "(1) schedules: N/2 cron due now + N/2 run-now",
            fire_schedules,
            received=lambda: len(set(peers.prompts)),
            recorded=lambda: ScheduleRun.objects.filter(status=RunStatus.SUCCESS).count(),
            total=n,
        )
        if args.skip_chats:
            return

        # (2) chats: one Telegram update per workspace, through the webhook view ---------------------
        channels = [
            channel_create(
                workspace=workspace,
                platform="telegram",
                config={"bot_token": f"{100000 + i}:AAbench-token-{i:05d}-abcdefghij", "webhook_secret": f"bench-secret-{i:05d}"},
            )
            for i, workspace in enumerate(workspaces)
        ]  # fmt: skip
        client = Client(HTTP_HOST="127.0.0.1")

        def fire_chats() -> None:
            for i, channel in enumerate(channels):
                update = {
                    "update_id": 10_000 + i,
                    "message": {
                        "message_id": i + 1,
                        "date": int(time.time()),
                        "chat": {"id": 700_000 + i, "type": "private"},
                        "from": {"id": 900 + i, "is_bot": False, "first_name": "Bench"},
                        "text": f"question {i}",
                    },
                }
                response = client.post(
                    f"/webhooks/telegram?channel={channel.pk}",
                    data=json.dumps(update),
                    content_type="application/json",
                    HTTP_X_TELEGRAM_BOT_API_SECRET_TOKEN=f"bench-secret-{i:05d}",
                )
                assert response.status_code == 200, response.content

        outbound = ChannelMessage.objects.filter(direction=Direction.OUTBOUND, status=MessageStatus.SENT)
        measure(
            "(2) chats: N inbound Telegram updates, replies sent back",
            fire_chats,
            received=lambda: len(set(peers.prompts)),
            recorded=outbound.count,
            total=n,
        )
    finally:
        for process in processes.values():
            process.terminate()
        for process in processes.values():
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
        log.close()


if __name__ == "__main__":
    main()
