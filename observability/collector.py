"""Levels read at scrape time: a handful of aggregate queries and one broker round trip.

Each query is an aggregate (a count or a minimum, grouped by a status), over an index where the
table is large, so a scrape costs the same few statements whatever the number of rows. A part that cannot be read is left
out of the scrape and reported by `integrations_scrape_ok{part}` = 0, rather than failing the
whole scrape.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Count, Min, Q, QuerySet
from django.utils import timezone
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from observability.metrics import PREFIX

logger = logging.getLogger(__name__)


def _gauge(name: str, documentation: str, labels: list[str] | None = None) -> GaugeMetricFamily:
    return GaugeMetricFamily(f"{PREFIX}_{name}", documentation, labels=labels)


def _by_status(
    queryset: QuerySet, expected: list[tuple[str, ...]], *fields: str
) -> dict[tuple[str, ...], int]:
    """{(field values...): count} in one GROUP BY, every expected combination present (0 if absent)."""
    rows = queryset.values(*fields).annotate(n=Count("pk")).order_by()
    found = {tuple(row[field] for field in fields): row["n"] for row in rows}
    return {key: found.get(key, 0) for key in [*expected, *found]}


def _each(values: list[str]) -> list[tuple[str, ...]]:
    return [(value,) for value in values]


def scheduler_metrics(now: datetime) -> Iterator[Metric]:
    from schedules.models import RunStatus, ScheduleRun
    from schedules.selectors import schedule_dispatch_backlog, scheduler_last_tick_at

    due, lag = schedule_dispatch_backlog(now=now)
    yield _with(_gauge("schedules_due", "Enabled schedules whose slot has passed but not dispatched."), due)
    yield _with(
        _gauge("schedules_due_oldest_seconds", "How late the oldest undispatched due schedule is."), lag
    )
    tick = scheduler_last_tick_at()
    yield _with(
        _gauge(
            "scheduler_last_tick_timestamp_seconds", "When the dispatcher last completed a pass (0: never)."
        ),
        tick.timestamp() if tick else 0,
    )
    pending = ScheduleRun.objects.filter(Q(status=RunStatus.QUEUED) | Q(status=RunStatus.RUNNING))
    runs = _gauge("schedule_runs", "Schedule runs not finished yet, by status.", ["status"])
    for (status,), count in _by_status(
        pending, _each([RunStatus.QUEUED, RunStatus.RUNNING]), "status"
    ).items():
        runs.add_metric([status], count)
    yield runs


def delivery_metrics(now: datetime) -> Iterator[Metric]:
    from workspaces.models import AgentDelivery
    from workspaces.selectors import DELIVERY_STALE_MARGIN_SECONDS

    fresh = now - timedelta(seconds=settings.A2A_TIMEOUT_SECONDS + DELIVERY_STALE_MARGIN_SECONDS)
    yield _with(
        _gauge("agent_deliveries_in_flight", "A2A calls to agents in progress right now."),
        AgentDelivery.objects.filter(started_at__gte=fresh).count(),
    )


def channel_metrics(now: datetime) -> Iterator[Metric]:
    from channels_app.models import ChannelMessage, Direction, MessageStatus

    waiting = ChannelMessage.objects.filter(
        Q(direction=Direction.INBOUND, status=MessageStatus.RECEIVED)
        | Q(direction=Direction.OUTBOUND, status=MessageStatus.QUEUED)
    )
    expected = [(Direction.INBOUND, MessageStatus.RECEIVED), (Direction.OUTBOUND, MessageStatus.QUEUED)]
    family = _gauge(
        "channel_messages_pending",
        "Channel messages not handled yet: inbound received (agent not answered), outbound queued.",
        ["direction", "status"],
    )
    for (direction, status), count in _by_status(waiting, expected, "direction", "status").items():
        family.add_metric([direction, status], count)
    yield family


def job_metrics(now: datetime) -> Iterator[Metric]:
    from plugins_app.models import InstalledPlugin, PluginStatus
    from templates_app.models import BundleImportJob, JobStatus, TemplateImportJob

    plugins = _gauge("plugin_installs", "Installed-plugin rows by install status.", ["status"])
    for (status,), count in _by_status(
        InstalledPlugin.objects.all(), _each(PluginStatus.values), "status"
    ).items():
        plugins.add_metric([status], count)
    yield plugins
    jobs = _gauge("import_jobs", "Template and bundle import jobs by status.", ["kind", "status"])
    for kind, model in (("template", TemplateImportJob), ("bundle", BundleImportJob)):
        for (status,), count in _by_status(model.objects.all(), _each(JobStatus.values), "status").items():
            jobs.add_metric([kind, status], count)
    yield jobs


def approval_metrics(now: datetime) -> Iterator[Metric]:
    from approvals.selectors import approval_pending_count

    yield _with(
        _gauge("approvals_pending", "Approvals waiting for a decision (not past their expiry)."),
        approval_pending_count(now=now),
    )


def outbox_metrics(now: datetime) -> Iterator[Metric]:
    """The relay's backlog: rows due for publishing (new, or whose lease ran out), per job kind,
    and how long the oldest has waited; one aggregate per kind over its partial due index."""
    from common.outbox import kinds

    backlog = _gauge("outbox_due", "Job rows the relay has yet to publish (new or lease expired).", ["kind"])
    oldest = _gauge(
        "outbox_oldest_due_seconds", "How long the oldest row due for the relay has waited.", ["kind"]
    )
    for kind in kinds():
        due = kind.model.objects.filter(kind.active, relay_due_at__lte=now).aggregate(
            n=Count("pk"), first=Min("relay_due_at")
        )
        backlog.add_metric([kind.label], due["n"])
        oldest.add_metric([kind.label], (now - due["first"]).total_seconds() if due["first"] else 0.0)
    yield backlog
    yield oldest


def broker_metrics(now: datetime) -> Iterator[Metric]:
    from common.broker import broker_probe, celery_queue_names

    probe = broker_probe(queues=celery_queue_names())
    yield _with(_gauge("broker_up", "1 when the Celery broker answered this scrape."), int(probe.ok))
    if not probe.ok:
        return
    yield _with(
        _gauge("broker_latency_seconds", "Connecting to the broker and reading every queue's length."),
        probe.latency_seconds or 0.0,
    )
    depths = _gauge("celery_queue_depth", "Messages waiting in each Celery queue.", ["queue"])
    for queue, depth in probe.depths.items():
        depths.add_metric([queue], depth)
    yield depths


def _with(family: GaugeMetricFamily, value: float) -> GaugeMetricFamily:
    family.add_metric([], value)
    return family


PARTS: dict[str, Callable[[datetime], Iterator[Metric]]] = {
    "scheduler": scheduler_metrics,
    "deliveries": delivery_metrics,
    "channels": channel_metrics,
    "jobs": job_metrics,
    "approvals": approval_metrics,
    "outbox": outbox_metrics,
    "broker": broker_metrics,
}


class StateCollector(Collector):
    """The database- and broker-derived gauges, computed when Prometheus scrapes."""

    def collect(self) -> Iterator[Metric]:
        now = timezone.now()
        health = _gauge("scrape_ok", "1 when this part of the scrape could be read.", ["part"])
        for part, read in PARTS.items():
            try:
                families = list(read(now))
            except Exception:
                logger.warning("metrics: %s could not be read", part, exc_info=True)
                health.add_metric([part], 0)
                continue
            health.add_metric([part], 1)
            yield from families
        yield health
