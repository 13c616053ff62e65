"""Serializer base classes that refuse unknown and read-only input fields (no mass assignment)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from common.errors import UnknownField
from common.fetch import SOURCE_PATTERN


class StrictInputMixin:
    """A field not listed here is refused with 400 `unknown_field`."""

    # (The docstring above is what the OpenAPI schema shows for every strict input.)
    # `exactly_one_of` names fields of which exactly one must be given: checked here, stated in
    # the schema as a `oneOf` (common/schema.py).
    exactly_one_of: tuple[str, ...] = ()

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
        given = [name for name in self.exactly_one_of if name in data]
        if self.exactly_one_of and len(given) != 1:
            raise serializers.ValidationError(
                {"non_field_errors": [f"Give exactly one of {' or '.join(self.exactly_one_of)}."]}
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


@extend_schema_field({"type": "object", "additionalProperties": {}})
class JsonObjectField(serializers.JSONField):
    """Any JSON object (never null, a list or a scalar)."""

    def to_internal_value(self, data: Any) -> dict[str, Any]:
        value = super().to_internal_value(data)
        if not isinstance(value, dict):
            raise serializers.ValidationError("Must be a JSON object.")
        return value


@extend_schema_field({"type": "string", "maxLength": 512, "pattern": SOURCE_PATTERN})
class SourceField(StrictCharField):
    """`local://…` or `github://…`; the schema states the scheme, parse_source() the rest."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("max_length", 512)
        super().__init__(**kwargs)
