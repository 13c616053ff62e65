"""Benchmark: install a generated 90 MiB plugin from a fake GitHub server through a real worker.

Prints the install time and the worker process's peak memory above its baseline: the archive is
streamed (network → gunzip → tar members → files), so the peak must stay far below the archive
size (target: under 32 MiB above baseline).

    .venv/bin/python bench/plugins.py [--mib 90] [--database-url ...] [--broker-url ...]

Not a test; uses its own database (integrations_bench_plugins) and Redis db 11 by default.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHA = "9" * 40


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--mib", "--n", dest="mib", type=int, default=90, help="plugin size in MiB (default 90)"
    )
    parser.add_argument(
        "--database-url", default="postgres://postgres@127.0.0.1:5432/integrations_bench_plugins"
    )
    parser.add_argument("--broker-url", default="redis://127.0.0.1:6379/11")
    return parser.parse_args()


def ensure_database(url: str) -> None:
    import psycopg

    name = url.rsplit("/", 1)[1]
    admin_url = url.rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')


def build_archive(work: Path, mib: int) -> Path:
    """`mib` MiB of incompressible files plus plugin.yaml, as GitHub would serve them."""
    tree = work / f"acme-big-{SHA[:7]}"
    (tree / "data").mkdir(parents=True)
    (tree / "plugin.yaml").write_text("name: big\nversion: '1.0'\ndescription: benchmark plugin\n")
    for index in range(mib):
        (tree / "data" / f"blob-{index:03d}.bin").write_bytes(os.urandom(1024 * 1024))
    archive = work / "big.tar.gz"
    with tarfile.open(archive, "w:gz", compresslevel=1) as tar:
        tar.add(tree, arcname=tree.name)
    shutil.rmtree(tree)
    return archive


def serve(archive: Path) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:
            return

        def do_GET(self) -> None:
            if self.path == "/api/repos/acme/big":
                return self._json({"default_branch": "main"})
            if self.path == "/api/repos/acme/big/commits/main":
                return self._json({"sha": SHA})
            if self.path == f"/codeload/acme/big/tar.gz/{SHA}":
                self.send_response(200)
                self.send_header("Content-Type", "application/x-gzip")
                self.send_header("Content-Length", str(archive.stat().st_size))
                self.end_headers()
                with archive.open("rb") as handle:
                    shutil.copyfileobj(handle, self.wfile, 64 * 1024)
                return None
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return None

        def _json(self, body: dict) -> None:
            payload = json.dumps(body).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def rss_kib(pid: int, field: str = "VmRSS") -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def main() -> None:
    args = parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-plugins-"))
    print(f"generating a {args.mib} MiB plugin archive ...", flush=True)
    archive = build_archive(work, args.mib)
    server = serve(archive)
    base = f"http://127.0.0.1:{server.server_address[1]}"
    env = {
        "DJANGO_SETTINGS_MODULE": "integrations_project.settings",
        "DATABASE_URL": args.database_url,
        "CELERY_BROKER_URL": args.broker_url,
        "PLUGINS_DIR": str(ROOT / "plugins"),
        "PLUGIN_STORAGE_DIR": str(work / "storage"),
        "GITHUB_API_BASE_URL": f"{base}/api",
        "GITHUB_ARCHIVE_BASE_URL": f"{base}/codeload",
        "LOG_LEVEL": "WARNING",
    }
    os.environ.update(env)
    sys.path.insert(0, str(ROOT))
    ensure_database(args.database_url)

    import django

    django.setup()
    import redis
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    redis.Redis.from_url(args.broker_url).flushdb()

    from plugins_app.models import InstalledPlugin
    from plugins_app.services import plugin_install_request
    from workspaces.services import workspace_create

    log_path = work / "worker.log"
    with log_path.open("w") as log:
        worker = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "integrations_project", "worker", "--pool", "solo",
             "--loglevel", "INFO", "--without-gossip", "--without-mingle", "--without-heartbeat"],
            cwd=ROOT, env={**os.environ, **env}, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while " ready." not in log_path.read_text():
            if worker.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"worker did not start:\n{log_path.read_text()}")
            time.sleep(0.2)
        workspace = workspace_create(name="bench-plugins")

        def install(source: str, name: str) -> tuple[InstalledPlugin, float, int]:
            started = time.monotonic()
            plugin_install_request(workspace=workspace, source=source)
            peak = 0
            while True:
                peak = max(peak, rss_kib(worker.pid))
                row = InstalledPlugin.objects.get(workspace=workspace, name=name)
                if row.status != "installing":
                    return row, time.monotonic() - started, peak
                time.sleep(0.02)

        # Warm-up: the first task opens the database connection and imports lazily loaded code.
        warm, _, _ = install("local://web-search", "web-search")
        assert warm.status == "installed", warm.error
        time.sleep(0.5)
        baseline = rss_kib(worker.pid)
        try:
            Path(f"/proc/{worker.pid}/clear_refs").write_text("5")  # reset the peak (VmHWM)
            hwm_reset = True
        except OSError:
            hwm_reset = False
        row, elapsed, polled_peak = install("github://acme/big", "big")
        assert row.status == "installed", row.error
        hwm = rss_kib(worker.pid, "VmHWM")
        peak = max(polled_peak, hwm if hwm_reset else 0)
        size = archive.stat().st_size
        print(f"archive: {size / 2**20:.1f} MiB compressed, tree {args.mib} MiB + plugin.yaml")
        print(f"install time (request → installed): {elapsed:.2f} s ({size / 2**20 / elapsed:.1f} MiB/s)")
        print(f"worker RSS baseline: {baseline / 1024:.1f} MiB; peak during install: {peak / 1024:.1f} MiB")
        print(f"worker peak above baseline: {(peak - baseline) / 1024:.1f} MiB (target < 32 MiB)")
        print(
            f"peak measured by: {'VmHWM after clear_refs + ' if hwm_reset else ''}polling VmRSS every 20 ms"
        )
        from workspaces.services import workspace_delete

        workspace_delete(workspace=workspace)
    finally:
        worker.terminate()
        worker.wait(timeout=30)
        server.shutdown()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
