"""Representations and inputs of templates, import jobs, org templates and bundles."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from common.serializers import SourceField, StrictCharField, StrictSerializer
from templates_app.models import JobStatus, TemplateImportJob, WorkspaceTemplate


class TemplateSerializer(serializers.ModelSerializer):
    files = serializers.IntegerField(source="file_count", read_only=True, help_text="number of files")
    config = serializers.DictField(read_only=True)
    config_schema = serializers.DictField(read_only=True)

    class Meta:
        model = WorkspaceTemplate
        fields = (
            "id",
            "slug",
            "name",
            "description",
            "runtime",
            "tier",
            "config_schema",
            "config",
            "files",
            "source",
            "created_at",
            "updated_at",
        )
        read_only_fields = fields


class TemplateImportRequestSerializer(StrictSerializer):
    source = SourceField(max_length=500, help_text="github://owner/repo[/path][#ref] or local://<dir>")
    replace = serializers.BooleanField(required=False, default=False)


class TemplateImportJobSerializer(serializers.ModelSerializer):
    template_id = serializers.UUIDField(allow_null=True, read_only=True)
    status = serializers.ChoiceField(choices=JobStatus.choices, read_only=True)
    code = serializers.CharField(allow_null=True, read_only=True)
    error = serializers.CharField(allow_null=True, read_only=True)

    class Meta:
        model = TemplateImportJob
        fields = (
            "id",
            "source",
            "replace",
            "status",
            "template_id",
            "code",
            "error",
            "created_at",
            "started_at",
            "finished_at",
        )
        read_only_fields = fields

    def to_representation(self, instance: TemplateImportJob) -> dict[str, Any]:
        data = super().to_representation(instance)
        data["code"] = instance.code or None
        data["error"] = instance.error or None
        return data


class OrgTemplateSerializer(serializers.Serializer):
    slug = serializers.CharField()
    name = serializers.CharField()
    description = serializers.CharField()
    workspace_count = serializers.IntegerField()
    required_env = serializers.ListField(
        child=serializers.CharField(),
        help_text="`${VAR}` names the org.yaml uses that its folder's .env does not provide.",
    )


class OrgImportRequestSerializer(StrictSerializer):
    exactly_one_of = ("template", "org_yaml")
    template = StrictCharField(max_length=255, required=False, help_text="slug of an org template")
    org_yaml = StrictCharField(required=False, trim_whitespace=False, help_text="an org.yaml document")


class TreeWorkspaceSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    name = serializers.CharField()
    parent_id = serializers.UUIDField(allow_null=True)


class OrgImportResponseSerializer(serializers.Serializer):
    org = serializers.CharField()
    root_ids = serializers.ListField(child=serializers.UUIDField())
    workspaces = TreeWorkspaceSerializer(many=True)
    count = serializers.IntegerField()


class MissingSecretSerializer(serializers.Serializer):
    workspace_id = serializers.UUIDField()
    channel_id = serializers.UUIDField(
        required=False, help_text="present for a channel's secret config field; absent for a workspace secret"
    )
    key = serializers.CharField()


class ImportedScheduleSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    workspace_id = serializers.UUIDField()
    name = serializers.CharField(allow_blank=True)
    enabled = serializers.BooleanField(help_text="false unless the import asked for ?activate=true")


class BundleImportResponseSerializer(serializers.Serializer):
    root_id = serializers.UUIDField()
    workspaces = TreeWorkspaceSerializer(many=True)
    count = serializers.IntegerField()
    missing_secrets = MissingSecretSerializer(many=True)
    schedules = ImportedScheduleSerializer(many=True)
