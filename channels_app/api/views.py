"""Channel endpoints (SPEC §5). Thin: parse, call a service or selector, serialize."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponseBase, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from access.permissions import AdminAuth, PublicAccess
from access.views import WorkspaceScopedView
from channels_app import selectors, services
from channels_app.adapters import ADAPTERS, get_adapter
from channels_app.api.serializers import (
    AdapterSerializer,
    ChannelCreateSerializer,
    ChannelSerializer,
    ChannelUpdateSerializer,
    ConversationSerializer,
    DiscoverResultSerializer,
    DiscoverSerializer,
    MessageSerializer,
    SendSerializer,
    TestResultSerializer,
    TestSerializer,
)
from channels_app.filters import MessageFilter
from channels_app.models import Channel, ChannelMessage, Conversation
from common.errors import ApplicationError, NotFound, PayloadTooLarge, error_response
from common.headers import EnvironHeaders
from common.serializers import ErrorSerializer
from observability.metrics import webhook_counted

ERRORS = {400: ErrorSerializer, 401: ErrorSerializer, 403: ErrorSerializer, 404: ErrorSerializer}


class AdapterListView(APIView):
    permission_classes = [PublicAccess]
    authentication_classes: list[Any] = []

    @extend_schema(
        summary="List channel platforms and their config fields",
        responses={200: AdapterSerializer(many=True)},
    )
    def get(self, request: Request) -> Response:
        return Response([adapter.describe() for adapter in ADAPTERS.values()])


class DiscoverView(APIView):
    permission_classes = [AdminAuth]

    @extend_schema(
        summary="Discover a bot and its chats (telegram, slack)",
        request=DiscoverSerializer,
        responses={200: DiscoverResultSerializer, 502: ErrorSerializer, **ERRORS},
    )
    def post(self, request: Request) -> Response:
        serializer = DiscoverSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        found = services.channel_discover(**serializer.validated_data)
        return Response({"bot": found.bot, "chats": found.chats})


class ChannelListView(WorkspaceScopedView):
    serializer_class = ChannelSerializer
    queryset = Channel.objects.none()
    ordering = ("-created_at", "-id")

    @extend_schema(
        summary="List the workspace's channels", responses={200: ChannelSerializer(many=True), **ERRORS}
    )
    def get(self, request: Request, workspace_id: Any) -> Response:
        page = self.paginate_queryset(selectors.channel_list(workspace=self.workspace))
        return self.get_paginated_response(
            ChannelSerializer(page, many=True, context={"request": request}).data
        )

    @extend_schema(
        summary="Create a channel",
        description="409 `conflict` when an enabled Discord channel would hold an `application_id` "
        "that an enabled channel of another workspace holds (an application belongs to one workspace).",
        request=ChannelCreateSerializer,
        responses={201: ChannelSerializer, 409: ErrorSerializer, **ERRORS},
    )
    def post(self, request: Request, workspace_id: Any) -> Response:
        serializer = ChannelCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        channel = services.channel_create(workspace=self.workspace, **serializer.validated_data)
        return Response(
            ChannelSerializer(channel, context={"request": request}).data, status=status.HTTP_201_CREATED
        )


class _ChannelView(WorkspaceScopedView):
    serializer_class = ChannelSerializer

    def channel(self) -> Channel:
        return selectors.channel_get(workspace=self.workspace, channel_id=self.kwargs["channel_id"])


class ChannelDetailView(_ChannelView):
    @extend_schema(summary="Get a channel", responses={200: ChannelSerializer, **ERRORS})
    def get(self, request: Request, workspace_id: Any, channel_id: Any) -> Response:
        return Response(ChannelSerializer(self.channel(), context={"request": request}).data)

    @extend_schema(
        summary="Update a channel",
        description="`config` is merged key by key (null removes a key); a masked secret sent back "
        "keeps the stored one. Enabling a Discord channel, or pointing an enabled one at an "
        "`application_id` an enabled channel of another workspace holds, is a 409 `conflict`.",
        request=ChannelUpdateSerializer,
        responses={200: ChannelSerializer, 409: ErrorSerializer, **ERRORS},
    )
    def patch(self, request: Request, workspace_id: Any, channel_id: Any) -> Response:
        serializer = ChannelUpdateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        channel = services.channel_update(channel=self.channel(), data=serializer.validated_data)
        return Response(ChannelSerializer(channel, context={"request": request}).data)

    @extend_schema(summary="Delete a channel", responses={204: None, **ERRORS})
    def delete(self, request: Request, workspace_id: Any, channel_id: Any) -> Response:
        services.channel_delete(channel=self.channel())
        return Response(status=status.HTTP_204_NO_CONTENT)


class ChannelSendView(_ChannelView):
    serializer_class = MessageSerializer

    @extend_schema(
        summary="Send a message (asynchronous, with retries)",
        request=SendSerializer,
        responses={202: MessageSerializer, **ERRORS},
    )
    def post(self, request: Request, workspace_id: Any, channel_id: Any) -> Response:
        serializer = SendSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        message = services.channel_send(channel=self.channel(), **serializer.validated_data)
        return Response(MessageSerializer(message).data, status=status.HTTP_202_ACCEPTED)


class ChannelTestView(_ChannelView):
    serializer_class = TestResultSerializer

    @extend_schema(
        summary="Send a test message now",
        request=TestSerializer,
        responses={200: TestResultSerializer, 502: ErrorSerializer, **ERRORS},
    )
    def post(self, request: Request, workspace_id: Any, channel_id: Any) -> Response:
        serializer = TestSerializer(data=request.data or {})
        serializer.is_valid(raise_exception=True)
        services.channel_test(channel=self.channel(), **serializer.validated_data)
        return Response({"ok": True})


class ChannelMessageListView(_ChannelView):
    serializer_class = MessageSerializer
    queryset = ChannelMessage.objects.none()
    filterset_class = MessageFilter
    ordering = ("-created_at", "-id")

    @extend_schema(
        summary="Message log, newest first", responses={200: MessageSerializer(many=True), **ERRORS}
    )
    def get(self, request: Request, workspace_id: Any, channel_id: Any) -> Response:
        queryset = self.filter_queryset(selectors.message_list(channel=self.channel()))
        page = self.paginate_queryset(queryset)
        return self.get_paginated_response(MessageSerializer(page, many=True).data)


class ChannelConversationListView(_ChannelView):
    serializer_class = ConversationSerializer
    queryset = Conversation.objects.none()
    ordering = ("-created_at", "-id")

    @extend_schema(
        summary="Conversations of a channel, newest first",
        description="One per chat (per thread on Slack): the A2A contextId its messages carry, its "
        "last message and how many messages it has had since it started (or was reset).",
        responses={200: ConversationSerializer(many=True), **ERRORS},
    )
    def get(self, request: Request, workspace_id: Any, channel_id: Any) -> Response:
        page = self.paginate_queryset(selectors.conversation_list(channel=self.channel()))
        return self.get_paginated_response(ConversationSerializer(page, many=True).data)


def _webhook(request: HttpRequest, platform: str) -> HttpResponseBase:
    if get_adapter(platform) is None:
        raise NotFound()
    body = request.body
    if len(body) > WebhookView.max_body_bytes:
        raise PayloadTooLarge()
    answer = services.webhook_receive(
        platform=platform,
        body=body,
        headers=EnvironHeaders(request.META),
        channel_id=request.GET.get("channel"),
    )
    webhook_counted(platform=platform, outcome="stored" if answer.created else "ignored")
    return JsonResponse(answer.body, status=answer.status)


class WebhookView(APIView):
    """Inbound platform events: authenticated by the platform's signature, not by a token.

    Declared as a DRF view for routing and the OpenAPI schema, but a POST is served by a plain
    Django function (no DRF request wrapping or content negotiation): this is the hottest path
    of the service, and it needs only the raw bytes and the headers.
    """

    permission_classes = [PublicAccess]
    authentication_classes: list[Any] = []
    max_body_bytes = 1024 * 1024

    @classmethod
    def as_view(cls, **initkwargs: Any) -> Any:
        drf_view = super().as_view(**initkwargs)

        def view(request: HttpRequest, platform: str) -> HttpResponseBase:
            if request.method != "POST":
                return drf_view(request, platform=platform)  # DRF answers 405 in the usual shape
            try:
                return _webhook(request, platform)
            except ApplicationError as exc:
                webhook_counted(platform=platform, outcome="rejected")
                return error_response(exc.message, exc.code, exc.status_code, exc.details)

        view.cls = drf_view.cls  # type: ignore[attr-defined]
        view.initkwargs = drf_view.initkwargs  # type: ignore[attr-defined]
        return csrf_exempt(view)

    @extend_schema(
        summary="Incoming platform events",
        description="Verified on the raw bytes (Telegram secret header, Slack HMAC, Discord Ed25519, "
        "Lark token/signature/encryption; Slack, Discord and signed Lark timestamps within 300 s). "
        "Without `channel`, the request's routing key (Telegram secret header, Slack `api_app_id`, "
        "Discord `application_id`, Lark `token`) picks at most 3 credentials to verify. A body that "
        "cannot be read is a 400 once verified, never a 5xx. Answered at once; the agent is called "
        "in the background.",
        parameters=[
            OpenApiParameter("channel", OpenApiTypes.UUID, description="channel id from inbound_url")
        ],
        request=OpenApiTypes.OBJECT,
        responses={
            200: OpenApiTypes.OBJECT,
            400: ErrorSerializer,
            401: ErrorSerializer,
            404: ErrorSerializer,
            413: ErrorSerializer,
        },
    )
    def post(self, request: Request, platform: str) -> HttpResponseBase:
        return _webhook(request._request, platform)
