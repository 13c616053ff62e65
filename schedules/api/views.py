"""Schedule endpoints (SPEC §4). Thin: parse, call a service or selector, serialize."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response

from access.views import WorkspaceScopedView
from common.serializers import ErrorSerializer
from schedules import selectors, services
from schedules.api.serializers import (
    PreviewInputSerializer,
    PreviewSerializer,
    RunNowInputSerializer,
    ScheduleInputSerializer,
    ScheduleRunSerializer,
    ScheduleSerializer,
)
from schedules.filters import ScheduleFilter, ScheduleRunFilter
from schedules.models import Schedule, ScheduleRun

ERRORS = {400: ErrorSerializer, 401: ErrorSerializer, 403: ErrorSerializer, 404: ErrorSerializer}
TAGS = ["schedules"]


class ScheduleListCreateView(WorkspaceScopedView):
    queryset = Schedule.objects.none()
    serializer_class = ScheduleSerializer
    filterset_class = ScheduleFilter
    ordering = ("created_at", "id")

    @extend_schema(
        summary="List schedules (oldest first)",
        tags=TAGS,
        responses={200: ScheduleSerializer(many=True), **ERRORS},
    )
    def get(self, request: Request, workspace_id: Any) -> Response:
        queryset = self.filter_queryset(selectors.schedule_list(workspace=self.workspace))
        page = self.paginate_queryset(queryset)
        return self.get_paginated_response(ScheduleSerializer(page, many=True).data)

    @extend_schema(
        summary="Create a schedule",
        description="`source` is always `runtime`. Errors: `invalid_expression`, `invalid_timezone`, "
        "`invalid_request` (prompt), `conflict` (name already used in the workspace).",
        tags=TAGS,
        request=ScheduleInputSerializer,
        responses={201: ScheduleSerializer, 409: ErrorSerializer, **ERRORS},
    )
    def post(self, request: Request, workspace_id: Any) -> Response:
        serializer = ScheduleInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        schedule = services.schedule_create(workspace=self.workspace, **serializer.validated_data)
        return Response(ScheduleSerializer(schedule).data, status=status.HTTP_201_CREATED)


class ScheduleDetailView(WorkspaceScopedView):
    serializer_class = ScheduleSerializer

    def get_schedule(self, schedule_id: Any) -> Schedule:
        return selectors.schedule_get(workspace=self.workspace, schedule_id=schedule_id)

    @extend_schema(summary="Get a schedule", tags=TAGS, responses={200: ScheduleSerializer, **ERRORS})
    def get(self, request: Request, workspace_id: Any, schedule_id: Any) -> Response:
        return Response(ScheduleSerializer(self.get_schedule(schedule_id)).data)

    @extend_schema(
        summary="Update a schedule",
        description="`next_run_at` is recomputed from now when expression, timezone or enabled "
        "changes; editing a template schedule makes it a `runtime` one.",
        tags=TAGS,
        request=ScheduleInputSerializer(partial=True),
        responses={200: ScheduleSerializer, 409: ErrorSerializer, **ERRORS},
    )
    def patch(self, request: Request, workspace_id: Any, schedule_id: Any) -> Response:
        schedule = self.get_schedule(schedule_id)
        serializer = ScheduleInputSerializer(data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        schedule = services.schedule_update(schedule=schedule, data=dict(serializer.validated_data))
        return Response(ScheduleSerializer(schedule).data)

    @extend_schema(summary="Delete a schedule and its history", tags=TAGS, responses={204: None, **ERRORS})
    def delete(self, request: Request, workspace_id: Any, schedule_id: Any) -> Response:
        services.schedule_delete(schedule=self.get_schedule(schedule_id))
        return Response(status=status.HTTP_204_NO_CONTENT)


class ScheduleRunNowView(WorkspaceScopedView):
    serializer_class = ScheduleRunSerializer

    @extend_schema(
        summary="Run a schedule now",
        description='Queues a run with `trigger="manual"`, whether the schedule is enabled or not. '
        "Takes no body (any field is a 400 `unknown_field`).",
        tags=TAGS,
        request=None,
        responses={202: ScheduleRunSerializer, **ERRORS},
    )
    def post(self, request: Request, workspace_id: Any, schedule_id: Any) -> Response:
        schedule = selectors.schedule_get(workspace=self.workspace, schedule_id=schedule_id)
        if request.data:  # no body, or `{}`
            RunNowInputSerializer(data=request.data).is_valid(raise_exception=True)
        run = services.schedule_run_now(schedule=schedule)
        return Response(ScheduleRunSerializer(run).data, status=status.HTTP_202_ACCEPTED)


class ScheduleHistoryView(WorkspaceScopedView):
    queryset = ScheduleRun.objects.none()
    serializer_class = ScheduleRunSerializer
    filterset_class = ScheduleRunFilter
    ordering = ("-created_at", "-id")

    @extend_schema(
        summary="Run history of a schedule (newest first)",
        tags=TAGS,
        responses={200: ScheduleRunSerializer(many=True), **ERRORS},
    )
    def get(self, request: Request, workspace_id: Any, schedule_id: Any) -> Response:
        schedule = selectors.schedule_get(workspace=self.workspace, schedule_id=schedule_id)
        queryset = self.filter_queryset(selectors.run_list(schedule=schedule))
        page = self.paginate_queryset(queryset)
        return self.get_paginated_response(ScheduleRunSerializer(page, many=True).data)


class SchedulePreviewView(WorkspaceScopedView):
    serializer_class = PreviewSerializer

    @extend_schema(
        summary="Preview the next fire times of an expression (nothing is saved)",
        tags=TAGS,
        request=PreviewInputSerializer,
        responses={200: PreviewSerializer, **ERRORS},
    )
    def post(self, request: Request, workspace_id: Any) -> Response:
        serializer = PreviewInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        description, next_runs = selectors.schedule_preview(**serializer.validated_data)
        return Response(PreviewSerializer({"description": description, "next_runs": next_runs}).data)
