"""Workspace, secret and memory representations and inputs."""

from __future__ import annotations

import re
from typing import Any

from django.conf import settings
from drf_spectacular.extensions import OpenApiSerializerFieldExtension
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from common.serializers import JsonObjectField, StrictCharField, StrictSerializer
from workspaces.models import (
    MAX_CONCURRENT_TASKS_LIMIT,
    MEMORY_KEY_PATTERN,
    SECRET_KEY_PATTERN,
    A2AProtocol,
    Workspace,
    WorkspaceMemory,
    WorkspaceSecret,
    WorkspaceStatus,
)
from workspaces.services import runtime_normalize
from workspaces.validators import validate_agent_url

MAX_SECRET_VALUE_CHARS = 65536


class WorkspaceSerializer(serializers.ModelSerializer):
    parent_id = serializers.UUIDField(allow_null=True, read_only=True)
    url = serializers.URLField(
        allow_null=True, read_only=True, help_text="The agent's A2A URL; null when not set."
    )
    status = serializers.ChoiceField(choices=WorkspaceStatus.choices, read_only=True)
    config = serializers.DictField(read_only=True)

    class Meta:
        model = Workspace
        fields = (
            "id",
            "name",
            "role",
            "runtime",
            "tier",
            "parent_id",
            "url",
            "a2a_protocol",
            "status",
            "max_concurrent_tasks",
            "active_tasks",
            "current_task",
            "last_heartbeat_at",
            "config",
            "created_at",
            "updated_at",
        )
        read_only_fields = fields

    def to_representation(self, instance: Workspace) -> dict[str, Any]:
        data = super().to_representation(instance)
        data["url"] = data["url"] or None
        return data


@extend_schema_field(
    {
        "type": "string",
        "nullable": True,
        "maxLength": 2048,
        "pattern": "^(https?://.+)?$",
        "description": "http(s) URL of the agent; null or an empty string clears it.",
    }
)
class _AgentUrlField(serializers.URLField):
    """`null` and `""` both clear the URL (stored as empty)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(max_length=2048, allow_blank=True, allow_null=True, **kwargs)

    def to_internal_value(self, data: Any) -> str:
        return super().to_internal_value(data) if data else ""

    def validate_empty_values(self, data: Any) -> tuple[bool, Any]:
        if data is None:
            return True, ""
        return super().validate_empty_values(data)


class RuntimeField(StrictCharField):
    """A runtime of WORKSPACE_RUNTIMES (`-` and `_` are equal); the schema lists them."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(max_length=64, **kwargs)

    def to_internal_value(self, data: Any) -> str:
        runtime = runtime_normalize(super().to_internal_value(data))
        if runtime is None:
            allowed = ", ".join(settings.WORKSPACE_RUNTIMES)
            raise serializers.ValidationError(f"Unknown runtime; allowed: {allowed}.")
        return runtime


class RuntimeFieldExtension(OpenApiSerializerFieldExtension):
    """The allowed runtimes are a setting: read at schema generation, not at import."""

    target_class = RuntimeField

    def map_serializer_field(self, auto_schema: Any, direction: str) -> dict[str, Any]:
        return {"type": "string", "enum": list(settings.WORKSPACE_RUNTIMES)}


class _StrictChoiceField(serializers.ChoiceField):
    """A choice given as the string itself: `1.0` the number is not `"1.0"` the version."""

    def to_internal_value(self, data: Any) -> Any:
        if not isinstance(data, str):
            self.fail("invalid_choice", input=data)
        return super().to_internal_value(data)


class WorkspaceInputSerializer(StrictSerializer):
    """Create (all fields) and update (partial) input."""

    name = StrictCharField(max_length=200)
    role = StrictCharField(max_length=500, required=False, allow_blank=True)
    runtime = RuntimeField(required=False)
    tier = serializers.IntegerField(min_value=1, max_value=4, required=False)
    parent_id = serializers.UUIDField(required=False, allow_null=True)
    url = _AgentUrlField(required=False)
    a2a_protocol = _StrictChoiceField(
        choices=A2AProtocol.choices,
        required=False,
        help_text="auto (default): from the agent card, else 1.0 then 0.3; or 1.0 / 0.3 forced.",
    )
    max_concurrent_tasks = serializers.IntegerField(
        min_value=1, max_value=MAX_CONCURRENT_TASKS_LIMIT, required=False
    )
    config = JsonObjectField(required=False)

    def validate_url(self, value: str) -> str:
        return validate_agent_url(value)


class HeartbeatSerializer(StrictSerializer):
    active_tasks = serializers.IntegerField(min_value=0, max_value=1_000_000)
    current_task = StrictCharField(max_length=1000, required=False, allow_blank=True, allow_null=True)


class SecretSerializer(serializers.ModelSerializer):
    class Meta:
        model = WorkspaceSecret
        fields = ("key", "created_at", "updated_at")
        read_only_fields = fields


class SecretValueSerializer(StrictSerializer):
    value = StrictCharField(max_length=MAX_SECRET_VALUE_CHARS, allow_blank=False, trim_whitespace=False)


class MemorySerializer(serializers.ModelSerializer):
    value = serializers.JSONField(allow_null=True)

    class Meta:
        model = WorkspaceMemory
        fields = ("key", "value", "updated_at")
        read_only_fields = fields


class MemoryValueSerializer(StrictSerializer):
    value = serializers.JSONField(allow_null=True)


def key_errors(key: str, *, secret: bool) -> dict[str, list[str]] | None:
    pattern = SECRET_KEY_PATTERN if secret else MEMORY_KEY_PATTERN
    if re.fullmatch(pattern, key):  # fullmatch: `$` alone would let "KEY\n" through
        return None
    return {"key": [f"Must match {pattern}."]}
