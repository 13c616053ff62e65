"""Admin console: channels (secrets masked, replaced through a write-only field) and the
read-only message log. Saving goes through the same services as the API."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin
from django.http import HttpRequest

from channels_app import services
from channels_app.adapters import get_adapter
from channels_app.models import Channel, ChannelMessage
from common.admin import ReadOnlyAdminMixin
from common.errors import ApplicationError


class ChannelAdminForm(forms.ModelForm):
    settings = forms.JSONField(
        label="Config (non-secret fields)",
        required=False,
        help_text='JSON object, e.g. {"chat_ids": ["-1001234"]}.',
    )
    new_secrets = forms.JSONField(
        label="New secret values",
        required=False,
        widget=forms.Textarea(attrs={"rows": 3, "autocomplete": "off"}),
        help_text='JSON object of secret fields to set, e.g. {"bot_token": "…"}. Leave empty to keep '
        "the stored secrets; they are never shown.",
    )
    allowlist = forms.JSONField(
        required=False, help_text="JSON list of sender or chat ids; empty allows everyone."
    )

    class Meta:
        model = Channel
        fields = ("workspace", "platform", "name", "enabled", "allowlist")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["settings"].initial = dict(self.instance.public_config or {})
        self.fields["new_secrets"].initial = None
        if self.instance.pk:
            self.fields["platform"].disabled = True
            self.fields["workspace"].disabled = True

    def service_config(self) -> dict[str, Any]:
        """The config update for the services: public fields replaced, secrets merged."""
        settings = self.cleaned_data.get("settings") or {}
        secrets = self.cleaned_data.get("new_secrets") or {}
        config: dict[str, Any] = {k: None for k in (self.instance.public_config or {}) if k not in settings}
        config.update(settings)
        config.update(secrets)
        return config

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        for name in ("settings", "new_secrets"):
            if cleaned.get(name) is not None and not isinstance(cleaned.get(name), dict):
                self.add_error(name, "Must be a JSON object.")
        if cleaned.get("allowlist") is not None and not isinstance(cleaned.get("allowlist"), list):
            self.add_error("allowlist", "Must be a JSON list.")
        if self.errors or not cleaned.get("workspace") or not cleaned.get("platform"):
            return cleaned
        adapter = get_adapter(cleaned["platform"])
        if adapter is not None and set(cleaned.get("settings") or {}) & adapter.secret_keys():
            self.add_error("settings", "Put secret fields in “New secret values”.")
            return cleaned
        full = {**(self.instance.config if self.instance.pk else {})}
        for key, value in self.service_config().items():
            if value is None:
                full.pop(key, None)
            else:
                full[key] = value
        try:
            services.channel_prepare(
                workspace=cleaned["workspace"],
                platform=cleaned["platform"],
                config=full,
                allowlist=cleaned.get("allowlist") or [],
                enabled=cleaned.get("enabled", True),
                name=cleaned.get("name") or "",
            )
        except ApplicationError as exc:
            raise forms.ValidationError(exc.message) from None
        return cleaned


@admin.register(Channel)
class ChannelAdmin(admin.ModelAdmin):
    form = ChannelAdminForm
    list_display = (
        "__str__",
        "platform",
        "workspace",
        "enabled",
        "message_count",
        "last_message_at",
        "short_error",
    )
    list_filter = ("platform", "enabled", ("workspace", admin.RelatedOnlyFieldListFilter))
    search_fields = ("name", "id", "workspace__name")
    list_select_related = ("workspace",)
    readonly_fields = (
        "masked_config",
        "inbound_url",
        "message_count",
        "last_message_at",
        "last_error",
        "created_at",
    )
    fields = (
        "workspace",
        "platform",
        "name",
        "enabled",
        "masked_config",
        "settings",
        "new_secrets",
        "allowlist",
        "inbound_url",
        "message_count",
        "last_message_at",
        "last_error",
        "created_at",
    )

    @admin.display(description="Config (secrets masked)")
    def masked_config(self, obj: Channel) -> dict[str, Any]:
        return services.masked_config(channel=obj) if obj.pk else {}

    @admin.display(description="Inbound URL")
    def inbound_url(self, obj: Channel) -> str:
        return services.inbound_url(channel=obj) if obj.pk else ""

    @admin.display(description="Last error")
    def short_error(self, obj: Channel) -> str:
        return obj.last_error[:80]

    def save_model(self, request: HttpRequest, obj: Channel, form: Any, change: bool) -> None:
        data = form.cleaned_data
        if change:
            original = Channel.objects.get(pk=obj.pk)
            saved = services.channel_update(
                channel=original,
                data={
                    "config": form.service_config(),
                    "allowlist": data.get("allowlist") or [],
                    "enabled": data.get("enabled", True),
                    "name": data.get("name") or "",
                },
            )
        else:
            saved = services.channel_create(
                workspace=data["workspace"],
                platform=data["platform"],
                config={k: v for k, v in form.service_config().items() if v is not None},
                allowlist=data.get("allowlist") or [],
                enabled=data.get("enabled", True),
                name=data.get("name") or "",
            )
        obj.__dict__.update({k: v for k, v in saved.__dict__.items() if k != "_state"})
        obj._state.adding = False

    def delete_model(self, request: HttpRequest, obj: Channel) -> None:
        services.channel_delete(channel=obj)


@admin.register(ChannelMessage)
class ChannelMessageAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = (
        "created_at",
        "channel",
        "workspace",
        "direction",
        "status",
        "chat_id",
        "sender_id",
        "attempts",
    )
    list_filter = ("direction", "status", "channel__platform")
    list_select_related = ("channel", "channel__workspace")
    search_fields = ("id", "chat_id", "sender_id", "channel__name", "channel__workspace__name")
    date_hierarchy = "created_at"
    fields = (
        "id",
        "channel",
        "direction",
        "status",
        "chat_id",
        "sender_id",
        "text",
        "error",
        "attempts",
        "a2a_protocol",
        "parts_sent",
        "platform_event_id",
        "reply_to",
        "created_at",
        "updated_at",
    )
    readonly_fields = fields

    @admin.display(description="workspace", ordering="channel__workspace__name")
    def workspace(self, obj: ChannelMessage) -> str:
        return obj.channel.workspace.name
