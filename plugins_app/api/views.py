"""Plugin endpoints (SPEC §6). Thin: parse, call a service or selector, serialize."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.http import StreamingHttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import renderers, status
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from access.permissions import PublicAccess
from access.views import WorkspaceScopedView
from common.archive import tar_gz_stream
from common.errors import InvalidParameter
from common.fetch import SCHEMES
from common.pagination import PAGE_PARAMETERS, paginate_by_key, query_value
from common.serializers import ErrorSerializer
from plugins_app import selectors, services
from plugins_app.api.serializers import (
    CompatibilitySerializer,
    InstalledPluginSerializer,
    InstallSerializer,
    PluginSerializer,
    SourcesSerializer,
)
from plugins_app.models import InstalledPlugin
from plugins_app.registry import RegistryEntry

ERRORS = {400: ErrorSerializer, 401: ErrorSerializer, 403: ErrorSerializer, 404: ErrorSerializer}
INSTALL_MAX_BODY_BYTES = 64 * 1024
RUNTIME_PARAM = OpenApiParameter(
    "runtime", OpenApiTypes.STR, description="Keep plugins supporting this runtime (`-` and `_` are equal)."
)


def _registry_page(request: Request, entries: Sequence[RegistryEntry]) -> Response:
    """The registry is on disk, not in the database: paginate by name (same `limit`/`Link` rules)."""
    page, headers = paginate_by_key(request, entries, key=lambda entry: entry.name)
    data = PluginSerializer([entry.as_dict() for entry in page], many=True).data
    return Response(data, headers=headers)


class PluginRegistryView(APIView):
    authentication_classes: list[Any] = []
    permission_classes = [PublicAccess]

    @extend_schema(
        tags=["plugins"],
        summary="The plugin registry",
        parameters=[RUNTIME_PARAM, *PAGE_PARAMETERS],
        responses={200: PluginSerializer(many=True), 400: ErrorSerializer},
    )
    def get(self, request: Request) -> Response:
        runtime = query_value(request, "runtime")
        return _registry_page(request, selectors.registry_list(runtime=runtime))


class PluginSourcesView(APIView):
    authentication_classes: list[Any] = []
    permission_classes = [PublicAccess]

    @extend_schema(
        tags=["plugins"], summary="Supported install source schemes", responses={200: SourcesSerializer}
    )
    def get(self, request: Request) -> Response:
        return Response({"schemes": sorted(SCHEMES)})


class InstalledPluginListView(WorkspaceScopedView):
    queryset = InstalledPlugin.objects.none()
    serializer_class = InstalledPluginSerializer
    ordering = ("-created_at", "-id")
    max_body_bytes = INSTALL_MAX_BODY_BYTES

    @extend_schema(
        tags=["plugins"],
        summary="Plugins installed in the workspace",
        responses={200: InstalledPluginSerializer(many=True), **ERRORS},
    )
    def get(self, request: Request, workspace_id: Any) -> Response:
        page = self.paginate_queryset(selectors.installed_plugin_list(workspace=self.workspace))
        context = {"runtime": self.workspace.runtime}
        return self.get_paginated_response(InstalledPluginSerializer(page, many=True, context=context).data)

    @extend_schema(
        tags=["plugins"],
        summary="Install a plugin",
        description=(
            "Validates the source and answers 202 `installing`; a Celery worker fetches it. "
            "Body at most 64 KiB. An installed plugin of the same name is replaced only once the "
            "new tree is fully staged."
        ),
        request=InstallSerializer,
        responses={202: InstalledPluginSerializer, 413: ErrorSerializer, **ERRORS},
    )
    def post(self, request: Request, workspace_id: Any) -> Response:
        serializer = InstallSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        plugin = services.plugin_install_request(
            workspace=self.workspace,
            source=serializer.validated_data["source"],
            sha256=serializer.validated_data.get("sha256"),
        )
        return Response(InstalledPluginSerializer(plugin).data, status=status.HTTP_202_ACCEPTED)


# `available` and `compatibility` are valid plugin names (a repository may be called that), but
# their paths belong to the GET routes below: DELETE on them still uninstalls that plugin, as
# `DELETE /workspaces/:id/plugins/:name` promises. OpenAPI matches a concrete path before a
# templated one, so the schema documents that DELETE on these paths too (and `Allow` lists it).
# A comment, not a docstring, so the views' schema descriptions are not taken from it.
class _ReservedNameUninstall:
    reserved_name: str
    workspace: Any

    @extend_schema(
        tags=["plugins"],
        summary="Uninstall the plugin of this name (files removed)",
        description="The path of a GET route, and also the uninstall path of a plugin that has its "
        "name; 404 unless such a plugin is installed.",
        responses={204: None, **ERRORS},
    )
    def delete(self, request: Request, workspace_id: Any) -> Response:
        services.plugin_uninstall(workspace=self.workspace, name=self.reserved_name)
        return Response(status=status.HTTP_204_NO_CONTENT)


class PluginAvailableView(_ReservedNameUninstall, WorkspaceScopedView):
    reserved_name = "available"
    queryset = InstalledPlugin.objects.none()  # for the schema's path parameter types
    serializer_class = PluginSerializer

    @extend_schema(
        tags=["plugins"],
        summary="Registry plugins that support the workspace runtime",
        parameters=PAGE_PARAMETERS,
        responses={200: PluginSerializer(many=True), **ERRORS},
    )
    def get(self, request: Request, workspace_id: Any) -> Response:
        return _registry_page(request, selectors.registry_list(runtime=self.workspace.runtime))


class PluginCompatibilityView(_ReservedNameUninstall, WorkspaceScopedView):
    reserved_name = "compatibility"
    queryset = InstalledPlugin.objects.none()  # for the schema's path parameter types
    serializer_class = CompatibilitySerializer

    @extend_schema(
        tags=["plugins"],
        summary="Which installed plugins support a runtime",
        parameters=[
            OpenApiParameter(
                "runtime",
                {"type": "string", "pattern": r"\S"},
                required=True,
                description="Target runtime (`-` and `_` are equal).",
            )
        ],
        responses={200: CompatibilitySerializer, **ERRORS},
    )
    def get(self, request: Request, workspace_id: Any) -> Response:
        runtime = (query_value(request, "runtime") or "").strip()
        if not runtime:
            raise InvalidParameter(
                "runtime is required.", details={"runtime": ["This parameter is required."]}
            )
        return Response(selectors.plugin_compatibility(workspace=self.workspace, runtime=runtime))


class InstalledPluginDetailView(WorkspaceScopedView):
    queryset = InstalledPlugin.objects.none()  # for the schema's path parameter types
    serializer_class = InstalledPluginSerializer

    @extend_schema(
        tags=["plugins"], summary="Uninstall a plugin (files removed)", responses={204: None, **ERRORS}
    )
    def delete(self, request: Request, workspace_id: Any, name: str) -> Response:
        services.plugin_uninstall(workspace=self.workspace, name=name)
        return Response(status=status.HTTP_204_NO_CONTENT)


class _AnyAccept(BaseContentNegotiation):
    """The archive is the only success body; errors are always JSON, whatever `Accept` says."""

    def select_parser(self, request: Request, parsers: list[Any]) -> Any:
        return parsers[0] if parsers else None

    def select_renderer(
        self, request: Request, renderers: list[Any], format_suffix: str | None = None
    ) -> Any:
        return renderers[0], renderers[0].media_type


class PluginDownloadView(WorkspaceScopedView):
    queryset = InstalledPlugin.objects.none()  # for the schema's path parameter types
    renderer_classes = [renderers.JSONRenderer]
    content_negotiation_class = _AnyAccept

    @extend_schema(
        tags=["plugins"],
        summary="Download the installed tree as .tar.gz",
        description="Entries sit under one top folder named after the plugin. 404 unless `installed`.",
        responses={
            (200, "application/gzip"): OpenApiResponse(OpenApiTypes.BINARY, description="tar.gz"),
            **ERRORS,
        },
    )
    def get(self, request: Request, workspace_id: Any, name: str) -> StreamingHttpResponse:
        tree = selectors.installed_plugin_tree(workspace=self.workspace, name=name)
        response = StreamingHttpResponse(
            tar_gz_stream(tree, top_folder=name), content_type="application/gzip"
        )
        response["Content-Disposition"] = f'attachment; filename="{name}.tar.gz"'
        return response
