"""Admin console: workspace and admin tokens — masked, revocable, the hash never shown."""

from __future__ import annotations

import contextlib
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.utils import timezone

from access.principal import Principal
from common.errors import NotFound
from tokens import services
from tokens.models import AdminToken, WorkspaceToken


class ActiveFilter(admin.SimpleListFilter):
    title = "state"
    parameter_name = "state"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("active", "Active"), ("revoked", "Revoked"), ("expired", "Expired")]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        now = timezone.now()
        if self.value() == "active":
            return queryset.active(now)
        if self.value() == "revoked":
            return queryset.filter(revoked_at__isnull=False)
        if self.value() == "expired":
            return queryset.filter(revoked_at__isnull=True, expires_at__lte=now)
        return queryset


class _TokenAdminBase(admin.ModelAdmin):
    """Shared columns and the revoke action; rows are never edited after creation."""

    search_fields = ("name", "hint_prefix", "=id")
    actions = ("revoke_selected",)

    @admin.display(description="token")
    def masked_display(self, obj: Any) -> str:
        return obj.masked

    @admin.display(boolean=True, description="active")
    def active_display(self, obj: Any) -> bool:
        return obj.is_active()

    @admin.action(description="Revoke selected tokens", permissions=["change"])
    def revoke_selected(self, request: HttpRequest, queryset: QuerySet) -> None:
        """Through the same service as the API, one token at a time (`revoke` per subclass)."""
        active = list(queryset.filter(revoked_at__isnull=True))
        for token in active:
            self.revoke(request, token)  # type: ignore[attr-defined]
        skipped = queryset.count() - len(active)
        note = f" ({skipped} already revoked)" if skipped else ""
        self.message_user(request, f"Revoked {len(active)} token(s){note}.", messages.SUCCESS)


@admin.register(WorkspaceToken)
class WorkspaceTokenAdmin(_TokenAdminBase):
    list_display = (
        "name",
        "masked_display",
        "workspace",
        "role",
        "active_display",
        "created_by",
        "created_at",
        "last_used_at",
        "expires_at",
        "revoked_at",
    )
    list_filter = ("role", ActiveFilter, ("workspace", admin.RelatedOnlyFieldListFilter))
    search_fields = (*_TokenAdminBase.search_fields, "workspace__name")
    list_select_related = ("workspace",)
    readonly_fields = (
        "id",
        "name",
        "masked_display",
        "workspace",
        "role",
        "created_by",
        "created_by_token",
        "created_by_admin_token",
        "created_at",
        "last_used_at",
        "expires_at",
        "revoked_at",
    )
    fields = readonly_fields

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # minted through the API (or the admin API route), shown once there

    def revoke(self, request: HttpRequest, token: WorkspaceToken) -> None:
        with contextlib.suppress(NotFound):  # revoked meanwhile
            services.workspace_token_revoke(
                workspace=token.workspace,
                token_id=token.pk,
                actor=Principal(kind="staff", name=request.user.get_username()),
            )


class AdminTokenForm(forms.ModelForm):
    expires_in_days = forms.IntegerField(min_value=1, max_value=3650, required=False)

    class Meta:
        model = AdminToken
        fields = ("name",)


@admin.register(AdminToken)
class AdminTokenAdmin(_TokenAdminBase):
    list_display = (
        "name",
        "masked_display",
        "active_display",
        "created_by",
        "created_at",
        "last_used_at",
        "expires_at",
        "revoked_at",
    )
    list_filter = (ActiveFilter,)
    readonly_fields = (
        "id",
        "masked_display",
        "created_by",
        "created_at",
        "last_used_at",
        "expires_at",
        "revoked_at",
    )

    def revoke(self, request: HttpRequest, token: AdminToken) -> None:
        services.admin_token_revoke(token=token)

    def has_add_permission(self, request: HttpRequest) -> bool:
        """An admin token is a full API admin, which only a superuser session is: minting one
        with `add_admintoken` alone would let other staff escalate."""
        return request.user.is_superuser and super().has_add_permission(request)

    def get_form(self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any) -> Any:
        if obj is None:
            kwargs["form"] = AdminTokenForm
        return super().get_form(request, obj, change=change, **kwargs)

    def get_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        if obj is None:
            return ("name", "expires_in_days")
        return ("name", *self.readonly_fields)

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        if obj is None:
            return ()
        return ("name", *self.readonly_fields)

    def save_model(self, request: HttpRequest, obj: AdminToken, form: Any, change: bool) -> None:
        if change:
            return
        minted = services.admin_token_create(
            name=form.cleaned_data["name"],
            created_by=request.user.get_username(),
            expires_in_days=form.cleaned_data.get("expires_in_days"),
        )
        form.instance = minted.token
        obj.pk = minted.token.pk
        request._minted_plaintext = minted.plaintext  # type: ignore[attr-defined]

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        return

    def log_addition(self, request: HttpRequest, obj: Any, message: Any) -> Any:
        return super().log_addition(request, AdminToken.objects.get(pk=obj.pk), message)

    def response_add(
        self, request: HttpRequest, obj: AdminToken, post_url_continue: Any = None
    ) -> HttpResponse:
        """Show the plaintext once, on this page only; it is not stored anywhere."""
        token = AdminToken.objects.get(pk=obj.pk)
        context = {
            **self.admin_site.each_context(request),
            "title": "Admin token created",
            "token": token,
            "plaintext": getattr(request, "_minted_plaintext", ""),
            "opts": self.model._meta,
        }
        response = TemplateResponse(request, "admin/tokens/token_created.html", context)
        response["Cache-Control"] = "no-store"
        return response
