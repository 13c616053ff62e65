"""Admin console for approvals: the operators' queue, with decisions through the same service.

Requests are read-only here (an agent wrote them); the only write is a decision, from the
list actions or the buttons on the detail page, both going through `approval_decide` so the
console follows exactly the API's rules (one decision wins, expired cannot be approved).
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from django.contrib import admin, messages
from django.db.models import Case, IntegerField, Q, QuerySet, Value, When
from django.db.models.functions import Now
from django.http import HttpRequest, HttpResponse, HttpResponseNotAllowed, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html
from django.utils.text import Truncator

from access.principal import Principal
from approvals import services
from approvals.models import Approval, ApprovalEvent, ApprovalStatus
from approvals.selectors import status_q
from common.admin import deleting_through_a_workspace
from common.errors import ApplicationError

STATUS_COLOURS = {
    ApprovalStatus.PENDING: "#b76e00",
    ApprovalStatus.APPROVED: "#107c10",
    ApprovalStatus.REJECTED: "#ba2121",
    ApprovalStatus.EXPIRED: "#666666",
}


def staff_principal(request: HttpRequest) -> Principal:
    """The console user as a credential: `decided_by` is the staff username."""
    return Principal(kind="staff", name=request.user.get_username())


def refusal_message(approval: Approval, error: ApplicationError) -> str:
    """A clear sentence for an operator whose decision was refused."""
    label = f'"{Truncator(approval.action).chars(60)}"'
    if isinstance(error, services.AlreadyDecided):
        return (
            f"{label} was already {approval.status} by {approval.decided_by}; a second decision is refused."
        )
    if isinstance(error, services.ApprovalExpired):
        return f"{label} has expired and can no longer be decided."
    return f"{label}: {error.message}"


class EffectiveStatusFilter(admin.SimpleListFilter):
    """Status as the API shows it: pending past `expires_at` counts as expired."""

    title = "status"
    parameter_name = "status"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return list(ApprovalStatus.choices)

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        value = self.value()
        if value in ApprovalStatus.values:
            return queryset.filter(status_q(value))
        return queryset


class ApprovalEventInline(admin.TabularInline):
    model = ApprovalEvent
    fields = ("created_at", "kind", "actor", "details_display")
    readonly_fields = fields
    extra = 0
    can_delete = False
    verbose_name = "audit event"
    verbose_name_plural = "audit trail"

    @admin.display(description="details")
    def details_display(self, obj: ApprovalEvent) -> str:
        if not obj.details:
            return "–"
        return ", ".join(f"{key}: {value}" for key, value in obj.details.items() if value not in (None, ""))

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Approval)
class ApprovalAdmin(admin.ModelAdmin):
    list_display = (
        "action_display",
        "workspace",
        "status_display",
        "created_at",
        "expires_at",
        "decision_option",
        "decided_by",
        "decided_at",
        "notified_at",
    )
    list_display_links = ("action_display",)
    list_filter = (EffectiveStatusFilter, ("workspace", admin.RelatedOnlyFieldListFilter), "created_at")
    search_fields = ("action", "description", "workspace__name", "decided_by", "=id")
    list_select_related = ("workspace",)
    list_per_page = 50
    actions = ("approve_selected", "reject_selected")
    inlines = (ApprovalEventInline,)
    readonly_fields = (
        "id",
        "workspace",
        "status_display",
        "action",
        "description",
        "metadata_display",
        "options_display",
        "expires_at",
        "created_by",
        "created_at",
        "decision_option",
        "note",
        "decided_by",
        "decided_at",
        "notified_at",
        "notify_error",
    )
    fieldsets = (
        (None, {"fields": ("id", "workspace", "status_display", "action", "description")}),
        ("Request details", {"fields": ("metadata_display", "options_display", "created_by", "created_at")}),
        ("Decision", {"fields": ("expires_at", "decision_option", "note", "decided_by", "decided_at")}),
        ("Agent notification", {"fields": ("notified_at", "notify_error")}),
    )

    # --- queue ordering: pending (not yet expired) first, then newest -----------------------------
    def get_queryset(self, request: HttpRequest) -> QuerySet:
        # Built here rather than through super(): the default applies the ordering before the
        # annotation that the ordering needs exists.
        rank = Case(
            When(Q(status=ApprovalStatus.PENDING, expires_at__gt=Now()), then=Value(0)),
            default=Value(1),
            output_field=IntegerField(),
        )
        queryset = self.model._default_manager.get_queryset().annotate(pending_rank=rank)
        return queryset.order_by(*self.get_ordering(request))

    def get_ordering(self, request: HttpRequest) -> tuple[str, ...]:
        return ("pending_rank", "-created_at", "-id")

    # --- columns --------------------------------------------------------------------------------------
    @admin.display(description="action", ordering="action")
    def action_display(self, obj: Approval) -> str:
        return Truncator(obj.action).chars(80)

    @admin.display(description="status", ordering="pending_rank")
    def status_display(self, obj: Approval) -> str:
        status = obj.effective_status
        return format_html(
            '<strong style="color: {}" data-status="{}">{}</strong>', STATUS_COLOURS[status], status, status
        )

    @admin.display(description="metadata")
    def metadata_display(self, obj: Approval) -> str:
        pretty = json.dumps(obj.metadata, indent=2, sort_keys=True, ensure_ascii=False)
        return format_html('<pre class="approval-metadata" style="margin: 0">{}</pre>', pretty)

    @admin.display(description="options")
    def options_display(self, obj: Approval) -> str:
        return ", ".join(obj.options) if obj.options else "–"

    # --- permissions: requests are never added or edited here; deciding needs its own permission ---
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return deleting_through_a_workspace(request) and super().has_delete_permission(request, obj)

    def has_decide_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("approvals.decide_approval")

    # --- list actions -------------------------------------------------------------------------------
    def _decide_many(self, request: HttpRequest, queryset: QuerySet, decision: str) -> None:
        principal = staff_principal(request)
        done = 0
        refused: list[str] = []
        for approval in queryset.order_by("created_at", "id"):
            try:
                services.approval_decide(approval=approval, decision=decision, actor=principal)
                done += 1
            except ApplicationError as error:
                refused.append(refusal_message(approval, error))
        verb = "Approved" if decision == "approve" else "Rejected"
        if done:
            self.message_user(request, f"{verb} {done} approval(s).", messages.SUCCESS)
        for text in refused:
            self.message_user(request, text, messages.ERROR)

    @admin.action(description="Approve selected approvals", permissions=["decide"])
    def approve_selected(self, request: HttpRequest, queryset: QuerySet) -> None:
        self._decide_many(request, queryset, "approve")

    @admin.action(description="Reject selected approvals", permissions=["decide"])
    def reject_selected(self, request: HttpRequest, queryset: QuerySet) -> None:
        self._decide_many(request, queryset, "reject")

    # --- detail page buttons ----------------------------------------------------------------------
    def get_urls(self) -> list[URLPattern]:
        custom = [
            path(
                "<uuid:object_id>/decide/",
                self.admin_site.admin_view(self.decide_view),
                name="approvals_approval_decide",
            )
        ]
        return custom + super().get_urls()

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: dict | None = None
    ) -> HttpResponse:
        extra_context = dict(extra_context or {})
        approval = Approval.objects.filter(pk=object_id).first() if _is_uuid(object_id) else None
        if approval is not None:
            extra_context.update(
                approval=approval,
                can_decide=approval.effective_status == ApprovalStatus.PENDING
                and self.has_decide_permission(request),
                decide_url=reverse("admin:approvals_approval_decide", args=[approval.pk]),
            )
        return super().change_view(request, object_id, form_url, extra_context)

    def decide_view(self, request: HttpRequest, object_id: Any) -> HttpResponse:
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        approval = get_object_or_404(Approval, pk=object_id)
        change_url = reverse("admin:approvals_approval_change", args=[approval.pk])
        if not self.has_decide_permission(request):
            self.message_user(request, "You do not have permission to decide approvals.", messages.ERROR)
            return HttpResponseRedirect(change_url)
        decision = request.POST.get("decision", "")
        option = request.POST.get("option") or None
        note = request.POST.get("note", "").strip() or None
        try:
            services.approval_decide(
                approval=approval, decision=decision, actor=staff_principal(request), option=option, note=note
            )
        except ApplicationError as error:
            approval.refresh_from_db()
            self.message_user(request, refusal_message(approval, error), messages.ERROR)
            return HttpResponseRedirect(change_url)
        verb = "approved" if decision == "approve" else "rejected"
        self.message_user(
            request,
            f'"{Truncator(approval.action).chars(60)}" {verb}; the agent will be told.',
            messages.SUCCESS,
        )
        return HttpResponseRedirect(change_url)


def _is_uuid(value: str) -> bool:
    try:
        uuid.UUID(str(value))
    except ValueError:
        return False
    return True


@admin.register(ApprovalEvent)
class ApprovalEventAdmin(admin.ModelAdmin):
    """The whole audit trail across approvals; append-only."""

    list_display = ("created_at", "kind", "approval_link", "workspace_display", "actor")
    list_filter = ("kind", "created_at")
    search_fields = ("actor", "approval__action", "approval__workspace__name", "=approval__id")
    list_select_related = ("approval", "approval__workspace")
    readonly_fields = ("approval", "kind", "actor", "details_display", "created_at")
    fields = readonly_fields
    date_hierarchy = "created_at"

    @admin.display(description="approval")
    def approval_link(self, obj: ApprovalEvent) -> str:
        url = reverse("admin:approvals_approval_change", args=[obj.approval_id])
        return format_html('<a href="{}">{}</a>', url, Truncator(obj.approval.action).chars(60))

    @admin.display(description="workspace", ordering="approval__workspace__name")
    def workspace_display(self, obj: ApprovalEvent) -> str:
        return obj.approval.workspace.name

    @admin.display(description="details")
    def details_display(self, obj: ApprovalEvent) -> str:
        return format_html(
            "<pre style='margin: 0'>{}</pre>", json.dumps(obj.details, indent=2, sort_keys=True)
        )

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return deleting_through_a_workspace(request) and super().has_delete_permission(request, obj)
