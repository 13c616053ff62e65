"""Approval representations and inputs (SPEC §9)."""

from __future__ import annotations

from rest_framework import serializers

from approvals.models import (
    ACTION_MAX_CHARS,
    DESCRIPTION_MAX_CHARS,
    EXPIRES_DEFAULT_SECONDS,
    EXPIRES_MAX_SECONDS,
    EXPIRES_MIN_SECONDS,
    NOTE_MAX_CHARS,
    OPTION_MAX_CHARS,
    OPTIONS_MAX_ITEMS,
    Approval,
    ApprovalStatus,
)
from approvals.services import DECISIONS
from common.serializers import StrictSerializer


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


class ApprovalCreateSerializer(StrictSerializer):
    action = serializers.CharField(max_length=ACTION_MAX_CHARS)
    description = serializers.CharField(
        max_length=DESCRIPTION_MAX_CHARS, required=False, allow_blank=True, default=""
    )
    metadata = serializers.DictField(required=False, default=dict)
    options = serializers.ListField(
        child=serializers.CharField(max_length=OPTION_MAX_CHARS),
        max_length=OPTIONS_MAX_ITEMS,
        required=False,
        default=list,
    )
    expires_in_seconds = serializers.IntegerField(
        min_value=EXPIRES_MIN_SECONDS, max_value=EXPIRES_MAX_SECONDS, default=EXPIRES_DEFAULT_SECONDS
    )

    def validate_options(self, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise serializers.ValidationError("Options must be unique.")
        return value


class ApprovalDecideSerializer(StrictSerializer):
    decision = serializers.ChoiceField(choices=sorted(DECISIONS))
    option = serializers.CharField(max_length=OPTION_MAX_CHARS, required=False)
    note = serializers.CharField(max_length=NOTE_MAX_CHARS, required=False, allow_blank=True)
