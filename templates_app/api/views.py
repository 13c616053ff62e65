"""Templates, org templates and bundles (SPEC §8). Admin only. Thin: parse, call, serialize."""

from __future__ import annotations

import uuid
from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.generics import GenericAPIView
from rest_framework.request import Request
from rest_framework.response import Response

from access.permissions import AdminAuth, principal_of
from common.errors import InvalidParameter
from common.filters import bool_param
from common.pagination import PAGE_PARAMETERS, paginate_by_key, query_value
from common.serializers import ErrorSerializer
from templates_app import selectors, services
from templates_app.api.serializers import (
    BundleImportResponseSerializer,
    OrgImportRequestSerializer,
    OrgImportResponseSerializer,
    OrgTemplateSerializer,
    TemplateImportJobSerializer,
    TemplateImportRequestSerializer,
    TemplateSerializer,
)
from templates_app.bundles import MAX_BUNDLE_BYTES, bundle_filename
from templates_app.filters import TemplateFilter
from templates_app.models import WorkspaceTemplate
from workspaces.models import Workspace
from workspaces.selectors import workspace_get
from workspaces.services import InvalidParent

ERRORS = {400: ErrorSerializer, 401: ErrorSerializer, 403: ErrorSerializer, 404: ErrorSerializer}


def _requester(request: Request) -> str:
    principal = principal_of(request)
    return principal.name if principal else ""


class TemplateListView(GenericAPIView):
    permission_classes = [AdminAuth]
    serializer_class = TemplateSerializer
    filterset_class = TemplateFilter
    queryset = WorkspaceTemplate.objects.none()
    ordering = ("-created_at", "-id")

    def get_queryset(self) -> Any:
        return selectors.template_list()

    @extend_schema(
        summary="List workspace templates", responses={200: TemplateSerializer(many=True), **ERRORS}
    )
    def get(self, request: Request) -> Response:
        page = self.paginate_queryset(self.filter_queryset(self.get_queryset()))
        return self.get_paginated_response(TemplateSerializer(page, many=True).data)


class TemplateImportView(GenericAPIView):
    permission_classes = [AdminAuth]
    serializer_class = TemplateImportJobSerializer

    @extend_schema(
        summary="Import a workspace template from a source (runs on a worker)",
        request=TemplateImportRequestSerializer,
        responses={202: TemplateImportJobSerializer, **ERRORS},
    )
    def post(self, request: Request) -> Response:
        serializer = TemplateImportRequestSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        job = services.template_import_job_create(
            **serializer.validated_data, requested_by=_requester(request)
        )
        return Response(TemplateImportJobSerializer(job).data, status=status.HTTP_202_ACCEPTED)


class TemplateImportJobView(GenericAPIView):
    permission_classes = [AdminAuth]
    serializer_class = TemplateImportJobSerializer

    @extend_schema(
        summary="Get a template import job", responses={200: TemplateImportJobSerializer, **ERRORS}
    )
    def get(self, request: Request, job_id: uuid.UUID) -> Response:
        job = selectors.template_import_job_get(job_id=job_id)
        return Response(TemplateImportJobSerializer(job).data)


class OrgTemplateListView(GenericAPIView):
    permission_classes = [AdminAuth]
    serializer_class = OrgTemplateSerializer
    pagination_class = None
    filter_backends: list = []

    @extend_schema(
        summary="List org templates (folders of ORG_TEMPLATES_DIR), by slug",
        parameters=PAGE_PARAMETERS,
        responses={200: OrgTemplateSerializer(many=True), **ERRORS},
    )
    def get(self, request: Request) -> Response:
        page, headers = paginate_by_key(request, selectors.org_template_list(), key=lambda item: item.slug)
        return Response(OrgTemplateSerializer(page, many=True).data, headers=headers)


class OrgImportView(GenericAPIView):
    permission_classes = [AdminAuth]
    serializer_class = OrgImportResponseSerializer

    @extend_schema(
        summary="Import an org template as a workspace tree (all or nothing)",
        request=OrgImportRequestSerializer,
        responses={201: OrgImportResponseSerializer, 413: ErrorSerializer, **ERRORS},
    )
    def post(self, request: Request) -> Response:
        serializer = OrgImportRequestSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        result = services.org_import(**serializer.validated_data)
        return Response(result.as_dict(), status=status.HTTP_201_CREATED)


class BundleExportView(GenericAPIView):
    permission_classes = [AdminAuth]

    @extend_schema(
        summary="Export a workspace and its subtree as a bundle",
        responses={200: OpenApiResponse(OpenApiTypes.OBJECT, description="the bundle"), **ERRORS},
    )
    def get(self, request: Request, workspace_id: uuid.UUID) -> Response:
        workspace = workspace_get(workspace_id=workspace_id)
        bundle = selectors.bundle_export(workspace=workspace)
        return Response(
            bundle, headers={"Content-Disposition": f'attachment; filename="{bundle_filename(workspace)}"'}
        )


class BundleImportView(GenericAPIView):
    permission_classes = [AdminAuth]
    serializer_class = BundleImportResponseSerializer
    max_body_bytes = MAX_BUNDLE_BYTES

    @extend_schema(
        summary="Import a bundle (new ids, one transaction)",
        parameters=[
            OpenApiParameter("parent_id", OpenApiTypes.UUID, description="attach under this workspace"),
            OpenApiParameter(
                "activate",
                OpenApiTypes.BOOL,
                description="keep the schedules enabled as exported (default false: they come back disabled)",
            ),
        ],
        request=OpenApiTypes.OBJECT,
        responses={201: BundleImportResponseSerializer, 413: ErrorSerializer, **ERRORS},
    )
    def post(self, request: Request) -> Response:
        parent = None
        raw_parent = query_value(request, "parent_id")
        if raw_parent is not None:
            try:
                parent_id = uuid.UUID(raw_parent)
            except ValueError:
                raise InvalidParameter(
                    "parent_id must be a workspace UUID.", details={"parent_id": ["Must be a UUID."]}
                ) from None
            parent = Workspace.objects.filter(pk=parent_id).first()
            if parent is None:
                raise InvalidParent()
        activate = bool_param(request, "activate")
        result = services.bundle_import(bundle=request.data, parent=parent, activate=activate)
        return Response(result.as_dict(), status=status.HTTP_201_CREATED)
