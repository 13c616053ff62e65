"""Plugin API shapes (SPEC §6)."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from common.serializers import SourceField, StrictSerializer
from plugins_app.models import InstalledPlugin
from plugins_app.registry import supports_runtime


class PluginSerializer(serializers.Serializer):
    """A plugin of the registry."""

    name = serializers.CharField()
    version = serializers.CharField()
    description = serializers.CharField()
    author = serializers.CharField()
    tags = serializers.ListField(child=serializers.CharField())
    runtimes = serializers.ListField(child=serializers.CharField(), help_text="Empty: every runtime.")
    skills = serializers.ListField(child=serializers.JSONField())
    source = serializers.CharField()


class InstalledPluginSerializer(serializers.ModelSerializer):
    """A plugin of a workspace. `supported_on_runtime` is against the workspace's runtime."""

    skills = serializers.ListField(child=serializers.JSONField())
    tags = serializers.ListField(child=serializers.CharField())
    runtimes = serializers.ListField(child=serializers.CharField())
    supported_on_runtime = serializers.SerializerMethodField()
    sha256 = serializers.CharField(allow_null=True, read_only=True, help_text="null until installed")
    resolved_ref = serializers.CharField(
        allow_null=True, read_only=True, help_text="commit sha (github); null until installed or for local"
    )

    class Meta:
        model = InstalledPlugin
        fields = (
            "name",
            "version",
            "description",
            "author",
            "tags",
            "runtimes",
            "skills",
            "source",
            "status",
            "error",
            "sha256",
            "resolved_ref",
            "installed_at",
            "supported_on_runtime",
        )
        read_only_fields = fields

    def get_supported_on_runtime(self, obj: InstalledPlugin) -> bool:
        runtime: str = self.context.get("runtime") or obj.workspace.runtime
        return supports_runtime(obj.runtimes or [], runtime)

    def to_representation(self, instance: Any) -> dict[str, Any]:
        data = super().to_representation(instance)
        for key in ("sha256", "resolved_ref"):
            data[key] = data[key] or None
        return data


class InstallSerializer(StrictSerializer):
    source = SourceField(help_text="`local://<name>` or `github://<owner>/<repo>[/<path>][#<ref>]`.")
    sha256 = serializers.CharField(
        required=False, allow_null=True, allow_blank=True, help_text="Expected sha256 of the archive/tree."
    )


class SourcesSerializer(serializers.Serializer):
    schemes = serializers.ListField(child=serializers.CharField())


class CompatibilitySerializer(serializers.Serializer):
    target_runtime = serializers.CharField()
    compatible = serializers.ListField(child=serializers.CharField())
    incompatible = serializers.ListField(child=serializers.CharField())
    all_compatible = serializers.BooleanField()
