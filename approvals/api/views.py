"""Approval endpoints (SPEC §9). Thin: parse, call a service or selector, serialize."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.generics import GenericAPIView
from rest_framework.request import Request
from rest_framework.response import Response

from access.permissions import AdminAuth
from access.views import WorkspaceScopedView
from approvals import selectors, services
from approvals.api.serializers import (
    ApprovalCreateSerializer,
    ApprovalDecideSerializer,
    ApprovalSerializer,
    PendingApprovalSerializer,
)
from approvals.filters import ApprovalFilter
from approvals.models import Approval
from common.serializers import ErrorSerializer

ERRORS = {400: ErrorSerializer, 401: ErrorSerializer, 403: ErrorSerializer, 404: ErrorSerializer}


class ApprovalListCreateView(WorkspaceScopedView):
    serializer_class = ApprovalSerializer
    filterset_class = ApprovalFilter
    ordering = ("-created_at", "-id")

    def get_queryset(self) -> Any:
        if getattr(self, "swagger_fake_view", False):
            return Approval.objects.none()
        return selectors.approval_list(workspace=self.workspace)

    @extend_schema(
        tags=["approvals"],
        summary="List the workspace's approvals",
        description="Newest first. `?status=` filters by the effective status.",
        responses={200: ApprovalSerializer(many=True), **ERRORS},
    )
    def get(self, request: Request, workspace_id: Any) -> Response:
        page = self.paginate_queryset(self.filter_queryset(self.get_queryset()))
        return self.get_paginated_response(ApprovalSerializer(page, many=True).data)

    @extend_schema(
        tags=["approvals"],
        summary="Request an approval",
        description="The agent asks a human; the approval starts `pending` and expires after "
        "`expires_in_seconds` (1 to 2,592,000; default 3600).",
        request=ApprovalCreateSerializer,
        responses={201: ApprovalSerializer, **ERRORS},
    )
    def post(self, request: Request, workspace_id: Any) -> Response:
        serializer = ApprovalCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        approval = services.approval_create(
            workspace=self.workspace, created_by=self.principal.name, **serializer.validated_data
        )
        return Response(ApprovalSerializer(approval).data, status=status.HTTP_201_CREATED)


class ApprovalDetailView(WorkspaceScopedView):
    serializer_class = ApprovalSerializer

    @extend_schema(
        tags=["approvals"],
        summary="Get an approval (agents poll this)",
        responses={200: ApprovalSerializer, **ERRORS},
    )
    def get(self, request: Request, workspace_id: Any, approval_id: Any) -> Response:
        approval = selectors.approval_get(workspace=self.workspace, approval_id=approval_id)
        return Response(ApprovalSerializer(approval).data)


class ApprovalDecideView(WorkspaceScopedView):
    serializer_class = ApprovalSerializer

    @extend_schema(
        tags=["approvals"],
        summary="Approve or reject an approval",
        description="Admin credentials or an operator token of the workspace; an agent token is a 403. "
        "Exactly one decision wins: later ones get 409 `already_decided`, and an approval past "
        "`expires_at` gets 409 `expired`. `decided_by` is the caller's credential name.",
        request=ApprovalDecideSerializer,
        responses={200: ApprovalSerializer, 409: ErrorSerializer, **ERRORS},
    )
    def post(self, request: Request, workspace_id: Any, approval_id: Any) -> Response:
        approval = selectors.approval_get(workspace=self.workspace, approval_id=approval_id)
        if not self.principal.is_operator:
            raise services.AgentCannotDecide()
        serializer = ApprovalDecideSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        approval = services.approval_decide(
            approval=approval, actor=self.principal, **serializer.validated_data
        )
        return Response(ApprovalSerializer(approval).data)


class PendingApprovalListView(GenericAPIView):
    """Every workspace's pending approvals, oldest first: the operators' queue."""

    permission_classes = [AdminAuth]
    serializer_class = PendingApprovalSerializer
    ordering = ("created_at", "id")

    def get_queryset(self) -> Any:
        return selectors.approval_pending_list()

    @extend_schema(
        tags=["approvals"],
        summary="Pending approvals of every workspace (admin)",
        description="Oldest first, with `workspace_name`. Approvals past `expires_at` are not listed.",
        responses={200: PendingApprovalSerializer(many=True), 401: ErrorSerializer, 403: ErrorSerializer},
    )
    def get(self, request: Request) -> Response:
        page = self.paginate_queryset(self.get_queryset())
        return self.get_paginated_response(PendingApprovalSerializer(page, many=True).data)
