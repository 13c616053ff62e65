"""Workspace endpoints (SPEC §3). Thin: parse, call a service or selector, serialize."""

from __future__ import annotations

from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.generics import GenericAPIView
from rest_framework.request import Request
from rest_framework.response import Response

from access.permissions import AdminAuth
from access.views import WorkspaceScopedView
from common.errors import ApplicationError, Forbidden
from common.filters import bool_param
from common.serializers import ErrorSerializer
from workspaces import selectors, services
from workspaces.api.serializers import (
    HeartbeatSerializer,
    MemorySerializer,
    MemoryValueSerializer,
    SecretSerializer,
    SecretValueSerializer,
    WorkspaceInputSerializer,
    WorkspaceSerializer,
    key_errors,
)
from workspaces.filters import WorkspaceFilter
from workspaces.models import MEMORY_KEY_PATTERN, SECRET_KEY_PATTERN, WorkspaceMemory, WorkspaceSecret

ADMIN_ONLY_FIELDS = ("runtime", "tier", "parent_id")
# Where the worker sends requests, how many at once and how it speaks to the agent: an agent
# token could otherwise point its workspace at an internal service (SSRF) or claim capacity.
OPERATOR_FIELDS = ("url", "max_concurrent_tasks", "a2a_protocol")
SECRET_KEY_PARAM = OpenApiParameter(
    "key",
    {"type": "string", "pattern": SECRET_KEY_PATTERN},
    OpenApiParameter.PATH,
    description="Secret name.",
)
MEMORY_KEY_PARAM = OpenApiParameter(
    "key", {"type": "string", "pattern": MEMORY_KEY_PATTERN}, OpenApiParameter.PATH, description="Memory key."
)
ERRORS = {400: ErrorSerializer, 401: ErrorSerializer, 403: ErrorSerializer, 404: ErrorSerializer}


def _keyed_value(request: Request, key: str, *, secret: bool, serializer_class: type) -> Any:
    """The `value` of a PUT on a keyed entry (secret or memory), after checking the path key."""
    errors = key_errors(key, secret=secret)
    if errors:
        raise ApplicationError("key: " + errors["key"][0], details=errors)
    serializer = serializer_class(data=request.data)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data["value"]


class WorkspaceListCreateView(GenericAPIView):
    permission_classes = [AdminAuth]
    serializer_class = WorkspaceSerializer
    filterset_class = WorkspaceFilter

    def get_queryset(self) -> Any:
        return selectors.workspace_list()

    @extend_schema(summary="List workspaces", responses={200: WorkspaceSerializer(many=True), **ERRORS})
    def get(self, request: Request) -> Response:
        queryset = self.filter_queryset(self.get_queryset())
        page = self.paginate_queryset(queryset)
        return self.get_paginated_response(WorkspaceSerializer(page, many=True).data)

    @extend_schema(
        summary="Create a workspace",
        request=WorkspaceInputSerializer,
        responses={201: WorkspaceSerializer, **ERRORS},
    )
    def post(self, request: Request) -> Response:
        serializer = WorkspaceInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        workspace = services.workspace_create(**serializer.validated_data)
        return Response(WorkspaceSerializer(workspace).data, status=status.HTTP_201_CREATED)


class WorkspaceDetailView(WorkspaceScopedView):
    serializer_class = WorkspaceSerializer

    @extend_schema(summary="Get a workspace", responses={200: WorkspaceSerializer, **ERRORS})
    def get(self, request: Request, workspace_id: Any) -> Response:
        return Response(WorkspaceSerializer(self.workspace).data)

    @extend_schema(
        summary="Update a workspace",
        description=(
            "`runtime`, `tier` and `parent_id` need admin credentials; `url`, "
            "`max_concurrent_tasks` and `a2a_protocol` need an operator token or admin credentials "
            "(agent token → 403)."
        ),
        request=WorkspaceInputSerializer(partial=True),
        responses={200: WorkspaceSerializer, **ERRORS},
    )
    def patch(self, request: Request, workspace_id: Any) -> Response:
        serializer = WorkspaceInputSerializer(data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        restricted = [f for f in ADMIN_ONLY_FIELDS if f in serializer.validated_data]
        if restricted and not self.principal.is_admin:
            raise Forbidden(f"Changing {', '.join(restricted)} needs admin credentials.")
        operator_only = [f for f in OPERATOR_FIELDS if f in serializer.validated_data]
        if operator_only and not self.principal.is_operator:
            raise Forbidden(
                f"Changing {', '.join(operator_only)} needs an operator token or admin credentials."
            )
        workspace = services.workspace_update(workspace=self.workspace, data=dict(serializer.validated_data))
        return Response(WorkspaceSerializer(workspace).data)

    @extend_schema(
        summary="Delete a workspace",
        parameters=[OpenApiParameter("cascade", OpenApiTypes.BOOL, description="also delete the subtree")],
        responses={204: None, 409: ErrorSerializer, **ERRORS},
    )
    def delete(self, request: Request, workspace_id: Any) -> Response:
        if not self.principal.is_admin:
            raise Forbidden("Deleting a workspace needs admin credentials.")
        services.workspace_delete(workspace=self.workspace, cascade=bool_param(request, "cascade"))
        return Response(status=status.HTTP_204_NO_CONTENT)


class HeartbeatView(WorkspaceScopedView):
    serializer_class = WorkspaceSerializer

    @extend_schema(
        summary="Report agent load",
        request=HeartbeatSerializer,
        responses={200: WorkspaceSerializer, **ERRORS},
    )
    def post(self, request: Request, workspace_id: Any) -> Response:
        serializer = HeartbeatSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        workspace = services.workspace_heartbeat(workspace=self.workspace, **serializer.validated_data)
        return Response(WorkspaceSerializer(workspace).data)


class SecretListView(WorkspaceScopedView):
    queryset = WorkspaceSecret.objects.none()
    serializer_class = SecretSerializer
    ordering = ("key", "id")

    @extend_schema(
        summary="List secret keys (values are never returned)",
        responses={200: SecretSerializer(many=True), **ERRORS},
    )
    def get(self, request: Request, workspace_id: Any) -> Response:
        page = self.paginate_queryset(selectors.secret_list(workspace=self.workspace))
        return self.get_paginated_response(SecretSerializer(page, many=True).data)


class SecretDetailView(WorkspaceScopedView):
    serializer_class = SecretSerializer

    @extend_schema(
        summary="Set a secret",
        parameters=[SECRET_KEY_PARAM],
        request=SecretValueSerializer,
        responses={200: SecretSerializer, **ERRORS},
    )
    def put(self, request: Request, workspace_id: Any, key: str) -> Response:
        value = _keyed_value(request, key, secret=True, serializer_class=SecretValueSerializer)
        secret = services.secret_set(workspace=self.workspace, key=key, value=value)
        return Response(SecretSerializer(secret).data)

    @extend_schema(summary="Delete a secret", parameters=[SECRET_KEY_PARAM], responses={204: None, **ERRORS})
    def delete(self, request: Request, workspace_id: Any, key: str) -> Response:
        services.secret_delete(workspace=self.workspace, key=key)
        return Response(status=status.HTTP_204_NO_CONTENT)


class MemoryListView(WorkspaceScopedView):
    queryset = WorkspaceMemory.objects.none()
    serializer_class = MemorySerializer
    ordering = ("key", "id")

    @extend_schema(summary="List memory entries", responses={200: MemorySerializer(many=True), **ERRORS})
    def get(self, request: Request, workspace_id: Any) -> Response:
        page = self.paginate_queryset(selectors.memory_list(workspace=self.workspace))
        return self.get_paginated_response(MemorySerializer(page, many=True).data)


class MemoryDetailView(WorkspaceScopedView):
    serializer_class = MemorySerializer

    @extend_schema(
        summary="Set a memory entry",
        parameters=[MEMORY_KEY_PARAM],
        request=MemoryValueSerializer,
        responses={200: MemorySerializer, **ERRORS},
    )
    def put(self, request: Request, workspace_id: Any, key: str) -> Response:
        value = _keyed_value(request, key, secret=False, serializer_class=MemoryValueSerializer)
        entry = services.memory_set(workspace=self.workspace, key=key, value=value)
        return Response(MemorySerializer(entry).data)

    @extend_schema(
        summary="Delete a memory entry", parameters=[MEMORY_KEY_PARAM], responses={204: None, **ERRORS}
    )
    def delete(self, request: Request, workspace_id: Any, key: str) -> Response:
        services.memory_delete(workspace=self.workspace, key=key)
        return Response(status=status.HTTP_204_NO_CONTENT)
