"""Channel, message and adapter representations and inputs."""

from __future__ import annotations

from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from channels_app.adapters import ADAPTERS
from channels_app.models import Channel, ChannelMessage, Conversation, Platform
from channels_app.services import inbound_url, masked_config
from common.serializers import JsonObjectField, StrictSerializer

MAX_TEXT_CHARS = 40_000


class ChannelSerializer(serializers.ModelSerializer):
    workspace_id = serializers.UUIDField(read_only=True)
    config = serializers.SerializerMethodField()
    allowlist = serializers.ListField(child=serializers.CharField(), read_only=True)
    inbound_url = serializers.SerializerMethodField()

    class Meta:
        model = Channel
        fields = (
            "id",
            "workspace_id",
            "platform",
            "name",
            "config",
            "allowlist",
            "enabled",
            "last_message_at",
            "message_count",
            "last_error",
            "created_at",
            "updated_at",
            "inbound_url",
        )
        read_only_fields = fields

    @extend_schema_field(OpenApiTypes.OBJECT)
    def get_config(self, channel: Channel) -> dict[str, Any]:
        return masked_config(channel=channel)

    def get_inbound_url(self, channel: Channel) -> str:
        request = self.context.get("request")
        base = request.build_absolute_uri("/").rstrip("/") if request is not None else ""
        return inbound_url(channel=channel, base_url=base)


@extend_schema_field({"type": "array", "items": {"oneOf": [{"type": "string"}, {"type": "integer"}]}})
class _AllowlistField(serializers.JSONField):
    def to_internal_value(self, data: Any) -> list[Any]:
        value = super().to_internal_value(data)
        if not isinstance(value, list):
            raise serializers.ValidationError("Must be a list of sender or chat ids.")
        return value


class _ChannelInput(StrictSerializer):
    def unknown_field_hint(self, key: str) -> str | None:
        """A platform config field (`bot_token`, `webhook_secret`, …) sent at the top level."""
        if any(key in adapter.field_keys() for adapter in ADAPTERS.values()):
            return f'{key} is a config field: send it inside "config", e.g. {{"config": {{"{key}": "…"}}}}.'
        return None


class ChannelCreateSerializer(_ChannelInput):
    platform = serializers.ChoiceField(choices=Platform.choices)
    config = JsonObjectField()
    allowlist = _AllowlistField(required=False, default=list)
    enabled = serializers.BooleanField(required=False, default=True)
    name = serializers.CharField(required=False, allow_blank=True, max_length=200, default="")


class ChannelUpdateSerializer(_ChannelInput):
    config = JsonObjectField(required=False)
    allowlist = _AllowlistField(required=False)
    enabled = serializers.BooleanField(required=False)
    name = serializers.CharField(required=False, allow_blank=True, max_length=200)


class SendSerializer(StrictSerializer):
    text = serializers.CharField(max_length=MAX_TEXT_CHARS, trim_whitespace=False)
    chat_id = serializers.CharField(required=False, allow_blank=True, max_length=200)

    def validate_text(self, value: str) -> str:
        if not value.strip():
            raise serializers.ValidationError("This field may not be blank.")
        return value


class TestSerializer(StrictSerializer):
    chat_id = serializers.CharField(required=False, allow_blank=True, max_length=200)


class TestResultSerializer(serializers.Serializer):
    ok = serializers.BooleanField()


class MessageSerializer(serializers.ModelSerializer):
    class Meta:
        model = ChannelMessage
        fields = (
            "id",
            "direction",
            "chat_id",
            "sender_id",
            "text",
            "status",
            "error",
            "attempts",
            "a2a_protocol",
            "created_at",
        )
        read_only_fields = fields


class ConversationSerializer(serializers.ModelSerializer):
    last_message = serializers.CharField(
        source="last_message_text", help_text="The last message of the conversation (first 500 characters)."
    )
    count = serializers.IntegerField(
        source="message_count", help_text="Messages since the conversation started."
    )

    class Meta:
        model = Conversation
        fields = (
            "id",
            "chat_id",
            "thread_id",
            "context_id",
            "last_message",
            "last_message_at",
            "count",
            "started_at",
            "created_at",
        )
        read_only_fields = fields


class DiscoverSerializer(StrictSerializer):
    platform = serializers.ChoiceField(choices=Platform.choices)
    bot_token = serializers.CharField(max_length=500)


class _BotSerializer(serializers.Serializer):
    id = serializers.CharField()
    username = serializers.CharField()


class _ChatSerializer(serializers.Serializer):
    chat_id = serializers.CharField()
    title = serializers.CharField()
    type = serializers.CharField()


class DiscoverResultSerializer(serializers.Serializer):
    bot = _BotSerializer()
    chats = _ChatSerializer(many=True)


class _ConfigFieldSerializer(serializers.Serializer):
    key = serializers.CharField()
    label = serializers.CharField()
    type = serializers.ChoiceField(choices=["string", "list", "url", "bool"])
    required = serializers.BooleanField()
    secret = serializers.BooleanField()
    help = serializers.CharField()


class _SupportsSerializer(serializers.Serializer):
    inbound = serializers.BooleanField()
    outbound = serializers.BooleanField()
    discover = serializers.BooleanField()


class AdapterSerializer(serializers.Serializer):
    platform = serializers.CharField()
    display_name = serializers.CharField()
    config_schema = _ConfigFieldSerializer(many=True)
    supports = _SupportsSerializer()
