"""`GET /health`: database, broker and scheduler liveness, for load balancers and operators.

Everything here is measured, not assumed: the tick is written by the dispatcher task when it has
run (not by Beat when it sends), the lag is read from the due schedules themselves, and the broker
latency is a real round trip.
"""

from __future__ import annotations

import logging
from typing import Any

from django.db import connection
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from access.permissions import PublicAccess

logger = logging.getLogger(__name__)


def database_ok() -> bool:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
        return True
    except Exception:
        logger.warning("health: database unreachable", exc_info=True)
        return False


def broker_latency() -> float | None:
    """Seconds to connect to the broker and read the default queue's length; None: unreachable."""
    from common.broker import broker_probe, celery_queue_names

    return broker_probe(queues=celery_queue_names()[:1]).latency_seconds


def scheduler_state() -> tuple[Any, float | None]:
    """(last dispatcher tick, dispatch lag in seconds) as the dispatcher itself records them."""
    from schedules.selectors import schedule_dispatch_backlog, scheduler_last_tick_at

    _due, lag = schedule_dispatch_backlog()
    return scheduler_last_tick_at(), lag


class HealthView(APIView):
    authentication_classes: list[Any] = []
    permission_classes = [PublicAccess]

    @extend_schema(
        summary="Service health",
        auth=[],
        responses={
            (200, "application/json"): inline_serializer(
                "Health",
                {
                    "status": serializers.ChoiceField(choices=["ok", "degraded", "error"]),
                    "database": serializers.CharField(help_text="ok or error"),
                    "broker": serializers.CharField(help_text="ok or error"),
                    "broker_latency_ms": serializers.FloatField(
                        allow_null=True, help_text="connect + one queue read; null when unreachable"
                    ),
                    "scheduler_last_tick_at": serializers.DateTimeField(
                        allow_null=True, help_text="when the dispatcher last completed a pass"
                    ),
                    "dispatch_lag_seconds": serializers.FloatField(
                        allow_null=True,
                        help_text="how late the oldest due, undispatched schedule is (0: none)",
                    ),
                },
            )
        },
    )
    def get(self, request: Request) -> Response:
        db = database_ok()
        latency = broker_latency()
        broker = latency is not None
        last_tick = lag = None
        if db:
            try:
                last_tick, lag = scheduler_state()
            except Exception:
                logger.warning("health: scheduler state unreadable", exc_info=True)
        overall = "ok" if db and broker else ("degraded" if db else "error")
        body = {
            "status": overall,
            "database": "ok" if db else "error",
            "broker": "ok" if broker else "error",
            "broker_latency_ms": round(latency * 1000, 1) if latency is not None else None,
            "scheduler_last_tick_at": last_tick.isoformat().replace("+00:00", "Z") if last_tick else None,
            "dispatch_lag_seconds": round(lag, 3) if lag is not None else None,
        }
        return Response(body, status=200 if db else 503)
