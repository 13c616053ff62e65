"""Serializer base classes that refuse unknown and read-only input fields (no mass assignment)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rest_framework import serializers

from common.errors import UnknownField


class StrictInputMixin:
    """Rejects any key that is not a writable field with 400 `unknown_field`."""

    def unknown_field_hint(self, key: str) -> str | None:
        """Where a refused key belongs (e.g. inside `config`), so the error helps; None: nothing to say."""
        return None

    def to_internal_value(self, data: Any) -> Any:
        if not isinstance(data, Mapping):
            raise serializers.ValidationError({"non_field_errors": ["Expected a JSON object."]})
        writable = {name for name, field in self.fields.items() if not field.read_only}  # type: ignore[attr-defined]
        unknown = sorted(str(key) for key in data if key not in writable)
        if unknown:
            hints = {key: hint for key in unknown if (hint := self.unknown_field_hint(key))}
            message = f"Unknown or read-only field(s): {', '.join(unknown)}."
            if hints:
                message = " ".join([message, *hints.values()])
            raise UnknownField(
                message,
                details={key: [hints.get(key, "This field cannot be set.")] for key in unknown},
            )
        return super().to_internal_value(data)  # type: ignore[misc]


class StrictSerializer(StrictInputMixin, serializers.Serializer):
    pass


class StrictModelSerializer(StrictInputMixin, serializers.ModelSerializer):
    pass


class ErrorSerializer(serializers.Serializer):
    """The error body, for the OpenAPI schema."""

    error = serializers.CharField()
    code = serializers.CharField()
    details = serializers.DictField(required=False)


class StrictCharField(serializers.CharField):
    """A CharField that refuses numbers and booleans instead of turning them into text."""

    default_error_messages = {"invalid": "Must be a string."}

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)
