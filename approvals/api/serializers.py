"""Approval representations and inputs (SPEC §9)."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from approvals.models import (
    ACTION_MAX_CHARS,
    DESCRIPTION_MAX_CHARS,
    EXPIRES_DEFAULT_SECONDS,
    EXPIRES_MAX_SECONDS,
    EXPIRES_MIN_SECONDS,
    METADATA_MAX_DEPTH,
    NOTE_MAX_CHARS,
    OPTION_MAX_CHARS,
    OPTIONS_MAX_ITEMS,
    Approval,
    ApprovalStatus,
)
from approvals.services import DECISIONS
from common.serializers import StrictCharField, StrictSerializer


class ApprovalSerializer(serializers.ModelSerializer):
    workspace_id = serializers.UUIDField(read_only=True)
    metadata = serializers.DictField(read_only=True)
    options = serializers.ListField(child=serializers.CharField(), read_only=True)
    status = serializers.ChoiceField(
        choices=ApprovalStatus.choices,
        source="effective_status",
        read_only=True,
        help_text="A pending approval past `expires_at` reads as `expired`, swept or not.",
    )

    class Meta:
        model = Approval
        fields = (
            "id",
            "workspace_id",
            "action",
            "description",
            "metadata",
            "options",
            "status",
            "decision_option",
            "note",
            "decided_by",
            "decided_at",
            "expires_at",
            "created_at",
        )
        read_only_fields = fields


class PendingApprovalSerializer(ApprovalSerializer):
    workspace_name = serializers.CharField(source="workspace.name", read_only=True)

    class Meta(ApprovalSerializer.Meta):
        fields = (*ApprovalSerializer.Meta.fields, "workspace_name")
        read_only_fields = fields


def metadata_problem(value: Any) -> str | None:
    """Why `value` cannot be stored as metadata, or None.

    PostgreSQL `jsonb` refuses the NUL character, and very deep nesting exhausts Python's
    recursion limit when the value is encoded; both were 500s. Iterative, so a deep value
    cannot overflow the check itself.
    """
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list) and depth > METADATA_MAX_DEPTH:
            return f"Nesting deeper than {METADATA_MAX_DEPTH} levels is not allowed."
        if isinstance(item, dict):
            for key, child in item.items():
                if "\x00" in key:
                    return "Null characters are not allowed."
                stack.append((child, depth + 1))
        elif isinstance(item, list):
            stack.extend((child, depth + 1) for child in item)
        elif isinstance(item, str) and "\x00" in item:
            return "Null characters are not allowed."
    return None


@extend_schema_field(
    {
        "type": "array",
        "items": {"type": "string", "minLength": 1, "maxLength": OPTION_MAX_CHARS},
        "maxItems": OPTIONS_MAX_ITEMS,
        "uniqueItems": True,
    }
)
class _OptionsField(serializers.ListField):
    """Distinct, non-empty choices offered to the reviewer."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(
            child=StrictCharField(max_length=OPTION_MAX_CHARS), max_length=OPTIONS_MAX_ITEMS, **kwargs
        )

    def to_internal_value(self, data: Any) -> list[str]:
        value = super().to_internal_value(data)
        if len(set(value)) != len(value):
            raise serializers.ValidationError("Options must be unique.")
        return value


class ApprovalCreateSerializer(StrictSerializer):
    action = StrictCharField(max_length=ACTION_MAX_CHARS)
    description = StrictCharField(
        max_length=DESCRIPTION_MAX_CHARS, required=False, allow_blank=True, default=""
    )
    metadata = serializers.DictField(required=False, default=dict)
    options = _OptionsField(required=False, default=list)
    expires_in_seconds = serializers.IntegerField(
        min_value=EXPIRES_MIN_SECONDS, max_value=EXPIRES_MAX_SECONDS, default=EXPIRES_DEFAULT_SECONDS
    )

    def validate_metadata(self, value: dict[str, Any]) -> dict[str, Any]:
        problem = metadata_problem(value)
        if problem:
            raise serializers.ValidationError(problem)
        return value


class ApprovalDecideSerializer(StrictSerializer):
    decision = serializers.ChoiceField(choices=sorted(DECISIONS))
    option = StrictCharField(max_length=OPTION_MAX_CHARS, required=False)
    note = StrictCharField(max_length=NOTE_MAX_CHARS, required=False, allow_blank=True)
