"""The service's own Prometheus instruments, updated where the events happen.

Only counters and histograms live in processes: in prometheus_client's multiprocess mode each
process writes them to a file of PROMETHEUS_MULTIPROC_DIR and a scrape sums the files, which is
right for these two kinds even after a process exits. Levels (backlogs, in-flight, pending) are
read from the database and the broker at scrape time instead (`observability.collector`).

Label values come from short fixed lists, never from user input, so the series stay few.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from prometheus_client import Counter, Histogram

PREFIX = "integrations"
UNKNOWN = "unknown"

# Agents answer in milliseconds (echo) to minutes (a model thinking); the A2A timeout is 300 s.
AGENT_CALL_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)
# A slot normally starts within a tick (10 s); minutes mean a backlog or a stopped worker.
DISPATCH_LAG_BUCKETS = (0.5, 1, 2.5, 5, 10, 15, 30, 60, 120, 300, 900, 3600)

agent_call_seconds = Histogram(
    f"{PREFIX}_agent_call_duration_seconds",
    "Time of one A2A call to a workspace agent, by caller and outcome (ok, error, transient).",
    ["source", "outcome"],
    buckets=AGENT_CALL_BUCKETS,
)
schedule_dispatch_lag_seconds = Histogram(
    f"{PREFIX}_schedule_dispatch_lag_seconds",
    "Seconds between a cron slot and the start of its run.",
    buckets=DISPATCH_LAG_BUCKETS,
)
schedule_runs_finished = Counter(
    f"{PREFIX}_schedule_runs_finished",
    "Schedule runs closed, by final status (success, error, skipped).",
    ["status"],
)
webhook_requests = Counter(
    f"{PREFIX}_webhook_requests",
    "Inbound platform webhooks, by platform and outcome (stored, ignored, rejected).",
    ["platform", "outcome"],
)
channel_sends = Counter(
    f"{PREFIX}_channel_sends",
    "Outbound channel message attempts, by platform and result (sent, retry, failed).",
    ["platform", "status"],
)

AGENT_SOURCES = frozenset({"schedule", "channel", "approval"})
PLATFORMS = frozenset({"telegram", "slack", "discord", "lark"})


def _bounded(value: str, allowed: frozenset[str]) -> str:
    return value if value in allowed else UNKNOWN


@contextmanager
def agent_call_timer(*, source: str) -> Iterator[None]:
    """Time the enclosed agent call; an A2AError's `transient` flag picks the outcome."""
    started = time.perf_counter()
    outcome = "ok"
    try:
        yield
    except Exception as exc:
        outcome = "transient" if getattr(exc, "transient", False) else "error"
        raise
    finally:
        agent_call_seconds.labels(_bounded(source, AGENT_SOURCES), outcome).observe(
            time.perf_counter() - started
        )


def webhook_counted(*, platform: str, outcome: str) -> None:
    webhook_requests.labels(_bounded(platform, PLATFORMS), outcome).inc()


def channel_send_counted(*, platform: str, status: str) -> None:
    channel_sends.labels(_bounded(platform, PLATFORMS), status).inc()


def schedule_run_finished(*, status: str) -> None:
    schedule_runs_finished.labels(status).inc()


def schedule_run_started(*, lag_seconds: float) -> None:
    schedule_dispatch_lag_seconds.observe(max(0.0, lag_seconds))
