"""Token representations: masked always; the plaintext only in the creation answer."""

from __future__ import annotations

from rest_framework import serializers

from common.serializers import StrictCharField, StrictSerializer
from tokens.models import TokenRole, WorkspaceToken


class TokenSerializer(serializers.ModelSerializer):
    masked = serializers.CharField(read_only=True)
    created_by = serializers.CharField(
        read_only=True, help_text="Name of the credential (token, admin token, user) that minted it."
    )
    created_by_token_id = serializers.UUIDField(
        read_only=True, allow_null=True, help_text="The workspace token that minted it, if one did."
    )

    class Meta:
        model = WorkspaceToken
        fields = (
            "id",
            "name",
            "role",
            "masked",
            "created_by",
            "created_by_token_id",
            "created_at",
            "last_used_at",
            "expires_at",
        )
        read_only_fields = fields


class CreatedTokenSerializer(TokenSerializer):
    token = serializers.CharField(read_only=True, help_text="Plaintext; shown only in this answer.")

    class Meta(TokenSerializer.Meta):
        fields = (*TokenSerializer.Meta.fields, "token")
        read_only_fields = fields


class TokenCreateSerializer(StrictSerializer):
    name = StrictCharField(max_length=100, required=False, allow_blank=True)
    role = serializers.ChoiceField(choices=TokenRole.choices, required=False, default=TokenRole.AGENT)
    expires_in_days = serializers.IntegerField(min_value=1, max_value=3650, required=False, allow_null=True)
