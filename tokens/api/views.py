"""Token endpoints (SPEC §7)."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt
from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response

from access.permissions import AdminAuth
from access.principal import Principal
from access.views import WorkspaceScopedView
from common.errors import error_response
from common.serializers import ErrorSerializer
from tokens import selectors, services
from tokens.api.serializers import CreatedTokenSerializer, TokenCreateSerializer, TokenSerializer
from tokens.models import WorkspaceToken

ERRORS = {400: ErrorSerializer, 401: ErrorSerializer, 403: ErrorSerializer, 404: ErrorSerializer}


def _mint(request: Request, workspace: Any, principal: Principal) -> Response:
    serializer = TokenCreateSerializer(data=request.data)
    serializer.is_valid(raise_exception=True)
    data = serializer.validated_data
    minted = services.workspace_token_create(
        workspace=workspace,
        creator=principal,
        name=data.get("name", ""),
        role=data["role"],
        expires_in_days=data.get("expires_in_days"),
    )
    body = TokenSerializer(minted.token).data
    body["token"] = minted.plaintext
    return Response(body, status=status.HTTP_201_CREATED)


class TokenListCreateView(WorkspaceScopedView):
    queryset = WorkspaceToken.objects.none()
    serializer_class = TokenSerializer

    @extend_schema(
        summary="List active tokens (masked)", responses={200: TokenSerializer(many=True), **ERRORS}
    )
    def get(self, request: Request, workspace_id: Any) -> Response:
        page = self.paginate_queryset(selectors.workspace_token_list(workspace=self.workspace))
        return self.get_paginated_response(TokenSerializer(page, many=True).data)

    @extend_schema(
        summary="Create a workspace token",
        description=(
            "The plaintext `token` is returned once. At most 50 active tokens per workspace. Only "
            "operator tokens and admin credentials mint (agent token → 403). A token minted by an "
            "expiring credential inherits its expiry; a later `expires_in_days` is a 400. "
            "Revoking a token revokes the tokens it minted."
        ),
        request=TokenCreateSerializer,
        responses={201: CreatedTokenSerializer, 409: ErrorSerializer, **ERRORS},
    )
    def post(self, request: Request, workspace_id: Any) -> Response:
        return _mint(request, self.workspace, self.principal)


class TokenDetailView(WorkspaceScopedView):
    serializer_class = TokenSerializer

    @extend_schema(summary="Revoke a token", responses={204: None, **ERRORS})
    def delete(self, request: Request, workspace_id: Any, token_id: Any) -> Response:
        services.workspace_token_revoke(workspace=self.workspace, token_id=token_id, actor=self.principal)
        return Response(status=status.HTTP_204_NO_CONTENT)


class AdminTokenMintView(WorkspaceScopedView):
    """`POST /admin/workspaces/:id/tokens`: the same as the workspace route, for admins only."""

    permission_classes = [AdminAuth]
    serializer_class = TokenSerializer

    @extend_schema(
        summary="Mint a token for a workspace (admin)",
        request=TokenCreateSerializer,
        responses={201: CreatedTokenSerializer, 409: ErrorSerializer, **ERRORS},
    )
    def post(self, request: Request, workspace_id: Any) -> Response:
        return _mint(request, self.workspace, self.principal)


@csrf_exempt  # it changes nothing; any method gets the same 404
def malformed_workspace_id(request: HttpRequest) -> HttpResponse:
    """`admin/workspaces/<not a uuid>/tokens`: the API's JSON 404, not the console's login redirect."""
    return error_response("Not found.", "not_found", 404)
