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
from common.storable import Unstorable, json_problem


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


_METADATA_PROBLEMS = {
    Unstorable.TOO_DEEP: f"Nesting deeper than {METADATA_MAX_DEPTH} levels is not allowed.",
    Unstorable.NUL: "Null characters are not allowed.",
    Unstorable.SURROGATE: "Unpaired surrogates are not allowed.",
    Unstorable.NON_FINITE: "Numbers must be finite.",
}


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
        # jsonb refuses NUL, and a very deep value exhausts the recursion limit when encoded.
        problem = json_problem(value, max_depth=METADATA_MAX_DEPTH)
        if problem is not None:
            raise serializers.ValidationError(_METADATA_PROBLEMS[problem])
        return value


class ApprovalDecideSerializer(StrictSerializer):
    decision = serializers.ChoiceField(choices=sorted(DECISIONS))
    option = StrictCharField(max_length=OPTION_MAX_CHARS, required=False)
    note = StrictCharField(max_length=NOTE_MAX_CHARS, required=False, allow_blank=True)
