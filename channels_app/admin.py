"""Admin console: channels (secrets masked, replaced through a write-only field) and the
read-only message log. Saving goes through the same services as the API."""

from __future__ import annotations

import json
from typing import Any

from django import forms
from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.html import format_html

from channels_app import conversations, services
from channels_app.adapters import get_adapter
from channels_app.models import Channel, ChannelMessage, Conversation
from common.admin import ReadOnlyAdminMixin
from common.errors import ApplicationError


class BlankJSONField(forms.JSONField):
    """A JSON box that shows nothing, not `null`, when it holds nothing."""

    def prepare_value(self, value: Any) -> Any:
        return "" if value is None else super().prepare_value(value)


class ChannelAdminForm(forms.ModelForm):
    settings = forms.JSONField(
        label="Config (non-secret fields)",
        required=False,
        help_text='JSON object, e.g. {"chat_ids": ["-1001234"]}.',
    )
    new_secrets = BlankJSONField(
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

    def get_object(
        self, request: HttpRequest, object_id: str, from_field: str | None = None
    ) -> Channel | None:
        """The channel, knowing the console's own address: the inbound URL is absolute, as in the
        API, even when PUBLIC_BASE_URL is unset (the instance is per request, the admin is not)."""
        channel = super().get_object(request, object_id, from_field)
        if channel is not None:
            channel.console_base_url = request.build_absolute_uri("/").rstrip("/")
        return channel

    @admin.display(description="Config (secrets masked)")
    def masked_config(self, obj: Channel) -> str:
        config = services.masked_config(channel=obj) if obj.pk else {}
        return format_html("<pre>{}</pre>", json.dumps(config, indent=2, sort_keys=True, ensure_ascii=False))

    @admin.display(description="Inbound URL")
    def inbound_url(self, obj: Channel) -> str:
        if not obj.pk:
            return ""
        return services.inbound_url(channel=obj, base_url=getattr(obj, "console_base_url", None))

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
        "short_text",
        "short_error",
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

    @admin.display(description="text")
    def short_text(self, obj: ChannelMessage) -> str:
        return _shorten(obj.text)

    @admin.display(description="error")
    def short_error(self, obj: ChannelMessage) -> str:
        return _shorten(obj.error)


def _shorten(value: str | None, limit: int = 80) -> str:
    value = value or ""
    return value if len(value) <= limit else value[: limit - 1] + "…"


@admin.register(Conversation)
class ConversationAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Conversations and the A2A context id their messages carry; "Reset" starts a new one."""

    list_display = ("chat_id", "thread_id", "channel", "context_id", "message_count", "last_message_at")
    list_filter = ("channel__platform",)
    list_select_related = ("channel",)
    search_fields = ("chat_id", "context_id", "channel__name", "channel__workspace__name")
    fields = (
        "id",
        "channel",
        "chat_id",
        "thread_id",
        "context_id",
        "started_at",
        "message_count",
        "last_message_text",
        "last_message_at",
        "created_at",
    )
    readonly_fields = fields
    actions = ["reset_selected"]

    def has_reset_permission(self, request: HttpRequest) -> bool:
        """Resetting changes a conversation: the channel's change permission (staff who manage
        channels), not the read-only page's."""
        return request.user.has_perm("channels_app.change_channel")

    @admin.action(
        description="Reset selected conversations (new context, empty history)", permissions=["reset"]
    )
    def reset_selected(self, request: HttpRequest, queryset: QuerySet[Conversation]) -> None:
        count = 0
        for conversation in queryset:
            conversations.conversation_reset(conversation=conversation)
            count += 1
        self.message_user(request, f"Reset {count} conversation(s): their next message starts a new context.")
