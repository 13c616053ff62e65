"""`GET /health`: database, broker and scheduler liveness, for load balancers and operators."""

from __future__ import annotations

import logging
from typing import Any

from django.db import connection
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from tokens.permissions import PublicAccess

logger = logging.getLogger(__name__)
DISPATCHER_TASK = "schedules.dispatch_due"


def database_ok() -> bool:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
        return True
    except Exception:
        logger.warning("health: database unreachable", exc_info=True)
        return False


def broker_ok() -> bool:
    from integrations_project.celery import app

    try:
        with app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=2)
        return True
    except Exception:
        logger.warning("health: broker unreachable", exc_info=True)
        return False


def scheduler_last_tick_at() -> Any:
    """When Celery Beat last sent the dispatcher (django-celery-beat keeps it per entry)."""
    from django_celery_beat.models import PeriodicTask

    return PeriodicTask.objects.filter(task=DISPATCHER_TASK).values_list("last_run_at", flat=True).first()


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
                    "scheduler_last_tick_at": serializers.DateTimeField(allow_null=True),
                },
            )
        },
    )
    def get(self, request: Request) -> Response:
        db = database_ok()
        broker = broker_ok()
        last_tick = None
        if db:
            try:
                last_tick = scheduler_last_tick_at()
            except Exception:
                logger.warning("health: scheduler state unreadable", exc_info=True)
        overall = "ok" if db and broker else ("degraded" if db else "error")
        body = {
            "status": overall,
            "database": "ok" if db else "error",
            "broker": "ok" if broker else "error",
            "scheduler_last_tick_at": last_tick.isoformat().replace("+00:00", "Z") if last_tick else None,
        }
        return Response(body, status=200 if db else 503)
