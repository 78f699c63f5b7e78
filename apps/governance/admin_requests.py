"""Scope requests in the admin: raise one, see what it adds, decide it, watch what expires.

The admin holds no rule of its own: every button calls a service in
``apps.governance.services.requests`` and shows its refusal as it is, so the admin and
``approve_scope_request`` can never disagree. Before anyone clicks, the page shows why an
approval would be refused (``approval_blockers``), how many approvals are needed and
who has given one, and the difference from what the integration is approved for today.
"""

from __future__ import annotations

import datetime as dt

from django import forms
from django.contrib import admin, messages
from django.contrib.postgres.forms import SimpleArrayField
from django.db.models import Count, Q
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html
from simple_history.admin import SimpleHistoryAdmin

from apps.audit.models import FieldClass
from apps.governance import scopes as catalogue
from apps.governance.models import (
    DEFAULT_DURATION_DAYS,
    ScopeDecision,
    ScopeRequest,
    ScopeRequestStatus,
)
from apps.governance.selectors.grant import grant_diff
from apps.governance.services import requests as svc
from apps.vendors.models import Integration, IntegrationStatus

EXPIRING_DAYS = svc.EXPIRY_NOTICE_DAYS

STATUS_BADGES = {
    ScopeRequestStatus.PENDING: "warning",
    ScopeRequestStatus.APPROVED: "ok",
    ScopeRequestStatus.DENIED: "critical",
    ScopeRequestStatus.EXPIRED: "info",
    ScopeRequestStatus.WITHDRAWN: "info",
}


def _badge(kind: str, text: str) -> str:
    return format_html('<span class="ix-badge ix-badge-{}">{}</span>', kind, text)


def _lines(value: str) -> list[str]:
    return [v.strip() for v in value.replace(",", "\n").splitlines() if v.strip()]


class ScopeRequestForm(forms.ModelForm):
    """Raise a request: checkboxes for the catalogue, text for single fields and orgs."""

    services = forms.MultipleChoiceField(
        choices=list(catalogue.SERVICES.items()), widget=forms.CheckboxSelectMultiple,
        required=False)
    scopes = forms.MultipleChoiceField(
        choices=[(uri, f"{label} ({catalogue.short_scope(uri)})") for uri, label in
                 catalogue.SCOPES.items()],
        widget=forms.CheckboxSelectMultiple, required=False, label="Scopes")
    field_classes = forms.MultipleChoiceField(
        choices=[c for c in FieldClass.choices], widget=forms.CheckboxSelectMultiple,
        required=False, label="Field classes",
        help_text="Demographic, special category and credential data need two approvers "
                  "and a DPIA.")
    fields = SimpleArrayField(
        forms.CharField(), required=False, label="Single fields",
        widget=forms.TextInput(attrs={"size": 80, "placeholder": "users.email, users.phone"}),
        help_text="Fields beyond the classes above, as entity.column, comma-separated.")
    claims = forms.MultipleChoiceField(
        choices=list(catalogue.CLAIMS.items()), widget=forms.CheckboxSelectMultiple,
        required=False, label="LTI personal claims")
    org_sourced_ids = SimpleArrayField(
        forms.CharField(), required=False, label="Orgs in scope",
        widget=forms.TextInput(attrs={"size": 80, "placeholder": "district-1, school-7"}),
        help_text="sourcedIds of the orgs; their schools and departments are included.")

    class Meta:
        model = ScopeRequest
        fields = ("integration", "services", "scopes", "field_classes", "fields", "claims",
                  "org_sourced_ids", "justification", "duration_days", "dpia_reference",
                  "dpia_not_needed_reason")
        widgets = {"justification": forms.Textarea(attrs={"rows": 3, "cols": 80}),
                   "dpia_not_needed_reason": forms.Textarea(attrs={"rows": 2, "cols": 80})}

    def __init__(self, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
        super().__init__(*args, **kwargs)
        if "integration" in self.fields:  # absent in the read-only view of a request
            self.fields["integration"].queryset = Integration.objects.exclude(
                status__in=[IntegrationStatus.OFFBOARDING, IntegrationStatus.OFFBOARDED]
            ).select_related("vendor")
        if "duration_days" in self.fields:
            self.fields["duration_days"].help_text = "Twelve months unless you need less."

    def clean(self):  # type: ignore[no-untyped-def]
        data = super().clean()
        problems = svc.scope_request_validate(
            services=data.get("services") or [], scopes_=data.get("scopes") or [],
            field_classes=data.get("field_classes") or [], fields=data.get("fields") or [],
            claims=data.get("claims") or [], justification=data.get("justification") or "",
            duration_days=data.get("duration_days") or DEFAULT_DURATION_DAYS,
            dpia_reference=data.get("dpia_reference") or "",
            dpia_not_needed_reason=data.get("dpia_not_needed_reason") or "",
        )
        for problem in problems:
            self.add_error(None, problem)
        return data


class QueueFilter(admin.SimpleListFilter):
    """The two queues staff work from: what waits for a decision, and what expires soon."""

    title = "queue"
    parameter_name = "queue"

    def lookups(self, request, model_admin):  # type: ignore[no-untyped-def]
        return (
            ("mine", "Awaiting my decision"),
            ("pending", "Awaiting a decision"),
            ("expiring", f"Approvals expiring within {EXPIRING_DAYS} days"),
            ("live", "Live approvals"),
        )

    def queryset(self, request, queryset):  # type: ignore[no-untyped-def]
        return queue(queryset, self.value(), request.user)


def queue(queryset, name: str | None, user):  # type: ignore[no-untyped-def]
    now = timezone.now()
    if name == "pending":
        return queryset.filter(status=ScopeRequestStatus.PENDING)
    if name == "mine":
        return (queryset.filter(status=ScopeRequestStatus.PENDING)
                .exclude(requested_by=user).exclude(decisions__approver=user))
    if name == "expiring":
        return queryset.live(now).filter(status=ScopeRequestStatus.APPROVED,
                                         expires_at__lte=now + dt.timedelta(days=EXPIRING_DAYS))
    if name == "live":
        return queryset.live(now)
    return queryset


@admin.register(ScopeRequest)
class ScopeRequestAdmin(SimpleHistoryAdmin):
    form = ScopeRequestForm
    list_display = ("number", "integration", "vendor", "status_badge", "asks_for",
                    "approval_progress", "requested_by", "requested_at", "expiry")
    list_display_links = ("number", "integration")
    list_filter = (QueueFilter, "status", "integration__vendor", "integration__kind")
    search_fields = ("integration__name", "integration__vendor__name", "justification",
                     "dpia_reference")
    list_select_related = ("integration__vendor", "requested_by")
    date_hierarchy = "requested_at"
    change_form_template = "admin/governance/scoperequest/change_form.html"
    change_list_template = "admin/governance/scoperequest/change_list.html"
    fieldsets = (
        ("Which integration", {"fields": ("integration",)}),
        ("What it needs", {"fields": ("services", "scopes", "field_classes", "fields",
                                      "claims", "org_sourced_ids")}),
        ("Why, and for how long", {"fields": ("justification", "duration_days")}),
        ("Data protection impact assessment", {
            "fields": ("dpia_reference", "dpia_not_needed_reason"),
            "description": "Required for demographic, special category or credential data "
                           "and for gradebook writes."}),
    )

    # --- permissions: the form is only for raising; decisions go through the buttons.
    def has_change_permission(self, request, obj=None) -> bool:  # type: ignore[no-untyped-def]
        return False

    def has_delete_permission(self, request, obj=None) -> bool:  # type: ignore[no-untyped-def]
        return False

    def get_queryset(self, request):  # type: ignore[no-untyped-def]
        return super().get_queryset(request).annotate(
            n_approvals=Count("decisions", filter=Q(decisions__decision=ScopeDecision.APPROVE)),
        )

    # --- list columns
    @admin.display(description="#", ordering="id")
    def number(self, obj: ScopeRequest) -> str:
        return f"#{obj.pk}"

    @admin.display(description="Vendor", ordering="integration__vendor__name")
    def vendor(self, obj: ScopeRequest) -> str:
        return obj.integration.vendor.name

    @admin.display(description="Status", ordering="status")
    def status_badge(self, obj: ScopeRequest) -> str:
        return _badge(STATUS_BADGES[obj.status], obj.get_status_display())

    @admin.display(description="Asks for")
    def asks_for(self, obj: ScopeRequest) -> str:
        classes = ", ".join(obj.field_classes + obj.fields + obj.claims) or "no personal data"
        sensitive = _badge("critical", "sensitive") if obj.approvals_required > 1 else ""
        return format_html("{} {}", classes, sensitive)

    @admin.display(description="Approvals")
    def approval_progress(self, obj: ScopeRequest) -> str:
        text = f"{obj.n_approvals} of {obj.approvals_required}"
        kind = "ok" if obj.n_approvals >= obj.approvals_required else "info"
        return _badge(kind, text)

    @admin.display(description="Expires", ordering="expires_at")
    def expiry(self, obj: ScopeRequest) -> str:
        if obj.expires_at is None or obj.status != ScopeRequestStatus.APPROVED:
            return "-"
        days = (obj.expires_at - timezone.now()).days
        if days <= EXPIRING_DAYS:
            return _badge("warning", f"in {max(days, 0)} days: recertify")
        return f"{timezone.localdate(obj.expires_at):%-d %b %Y}"

    # --- the queue counts above the list
    def changelist_view(self, request, extra_context=None):  # type: ignore[no-untyped-def]
        base = ScopeRequest.objects.all()
        url = reverse("admin:governance_scoperequest_changelist")
        extra_context = {
            **(extra_context or {}),
            "queues": [
                {"key": key, "label": label, "count": queue(base, key, request.user).count(),
                 "url": f"{url}?queue={key}"}
                for key, label in (
                    ("mine", "Awaiting my decision"),
                    ("pending", "Awaiting a decision"),
                    ("expiring", f"Expiring within {EXPIRING_DAYS} days"),
                    ("live", "Live approvals"),
                )
            ],
        }
        return super().changelist_view(request, extra_context)

    # --- raising
    def get_changeform_initial_data(self, request):  # type: ignore[no-untyped-def]
        initial = super().get_changeform_initial_data(request)
        initial.setdefault("duration_days", DEFAULT_DURATION_DAYS)
        return initial

    def save_model(self, request, obj, form, change) -> None:  # type: ignore[no-untyped-def]
        data = form.cleaned_data
        created = svc.scope_request_create(
            integration=data["integration"], requested_by=request.user,
            justification=data["justification"], services=data["services"],
            scopes_=data["scopes"], field_classes=data["field_classes"],
            fields=data["fields"] or [], claims=data["claims"],
            org_sourced_ids=data["org_sourced_ids"] or [], duration_days=data["duration_days"],
            dpia_reference=data.get("dpia_reference") or "",
            dpia_not_needed_reason=data.get("dpia_not_needed_reason") or "",
        )
        obj.pk = created.pk
        obj.__dict__.update(created.__dict__)

    def save_related(self, request, form, formsets, change) -> None:  # type: ignore[no-untyped-def]
        return None  # no relations to save; the service wrote everything

    def log_addition(self, request, obj, message):  # type: ignore[no-untyped-def]
        return None  # the audit log has it (governance.scope_request_created)

    def response_add(self, request, obj, post_url_continue=None):  # type: ignore[no-untyped-def]
        self.message_user(
            request,
            f"Request #{obj.pk} is waiting for approval"
            + (" by two members of governance staff." if obj.approvals_required > 1 else "."),
            messages.SUCCESS,
        )
        return HttpResponseRedirect(reverse("admin:governance_scoperequest_change",
                                            args=[obj.pk]))

    # --- viewing and deciding
    def change_view(self, request, object_id, form_url="", extra_context=None):  # type: ignore[no-untyped-def]
        obj = self.get_object(request, object_id)
        if obj is not None and request.method == "POST" and self.has_view_permission(request, obj):
            return self._act(request, obj)
        if obj is not None:
            extra_context = {
                **(extra_context or {}), **self._context(request, obj),
                "title": f"Scope request #{obj.pk}", "subtitle": None,
            }
        return super().change_view(request, object_id, form_url, extra_context)

    def _context(self, request, obj: ScopeRequest) -> dict:  # type: ignore[no-untyped-def]
        user = request.user
        diff = grant_diff(obj)
        decisions = list(obj.decisions.select_related("approver").order_by("decided_at"))
        approvals = sum(1 for d in decisions if d.decision == ScopeDecision.APPROVE)
        required = svc.approvals_required(obj)
        pending = obj.status == ScopeRequestStatus.PENDING
        sensitivity = svc.request_sensitivity(obj)
        blockers = svc.approval_blockers(obj) if pending else []
        approve_refusal = svc.decision_refusal(obj, user, decision=ScopeDecision.APPROVE)
        deny_refusal = svc.decision_refusal(obj, user, decision=ScopeDecision.DENY)
        can_withdraw = obj.status in (ScopeRequestStatus.PENDING, ScopeRequestStatus.APPROVED) and (
            user.pk == obj.requested_by_id or user.has_perm(svc.PERMISSION_DECIDE))
        rows = []
        labels = {"services": "Services", "scopes": "Scopes", "field_classes": "Field classes",
                  "fields": "Single fields", "claims": "LTI claims", "org_sourced_ids": "Orgs"}
        for name, label in labels.items():
            show = {"scopes": catalogue.short_scope,
                    "services": lambda s: catalogue.SERVICES.get(s, s)}.get(name, str)
            added = [show(v) for v in diff.added[name]]
            kept = [show(v) for v in diff.kept[name]]
            dropped = [show(v) for v in diff.not_renewed[name]]
            if added or kept or dropped:
                rows.append({"label": label, "added": added, "kept": kept, "dropped": dropped})
        return {
            "req": obj,
            "diff_rows": rows,
            "adds_anything": diff.adds_anything,
            "decisions": decisions,
            "approvals": approvals,
            "approvals_required": required,
            "approvals_missing": max(required - approvals, 0),
            "sensitivity": sensitivity.describe() if sensitivity.is_sensitive else "",
            "blockers": blockers,
            "approve_refusal": approve_refusal,
            "deny_refusal": deny_refusal,
            "can_decide": pending and (approve_refusal is None or deny_refusal is None),
            "can_withdraw": can_withdraw,
            "can_recertify": obj.status in (ScopeRequestStatus.APPROVED,
                                            ScopeRequestStatus.EXPIRED)
            and user.has_perm(svc.PERMISSION_REQUEST),
            "expires_soon": obj.status == ScopeRequestStatus.APPROVED and obj.expires_at
            and obj.expires_at <= timezone.now() + dt.timedelta(days=EXPIRING_DAYS),
            "labels": {"scopes": [catalogue.short_scope(s) for s in obj.scopes],
                       "services": [catalogue.SERVICES.get(s, s) for s in obj.services]},
        }

    def _act(self, request: HttpRequest, obj: ScopeRequest) -> HttpResponse:
        reason = request.POST.get("decision_reason", "")
        here = reverse("admin:governance_scoperequest_change", args=[obj.pk])
        try:
            if "_approve" in request.POST:
                result = svc.scope_request_approve(request=obj, approver=request.user,
                                                   reason=reason)
                if result.status == ScopeRequestStatus.APPROVED:
                    done = (f"Request #{obj.pk} is approved until "
                            f"{timezone.localdate(result.expires_at):%-d %B %Y}.")
                else:
                    done = (f"Your approval of request #{obj.pk} is recorded. Nothing is granted "
                            "until a second member of governance staff approves it.")
            elif "_deny" in request.POST:
                svc.scope_request_deny(request=obj, approver=request.user, reason=reason)
                done = f"Request #{obj.pk} is denied."
            elif "_withdraw" in request.POST:
                svc.scope_request_withdraw(request=obj, actor=request.user, reason=reason)
                done = f"Request #{obj.pk} is withdrawn; nothing is granted under it any more."
            elif "_recertify" in request.POST:
                renewal = svc.scope_request_recertify(request=obj, requested_by=request.user)
                self.message_user(request, f"Recertification request #{renewal.pk} is waiting "
                                           "for approval.", messages.SUCCESS)
                return HttpResponseRedirect(
                    reverse("admin:governance_scoperequest_change", args=[renewal.pk]))
            else:
                return HttpResponseRedirect(here)
        except svc.ScopeRequestRefused as refused:
            self.message_user(request, f"Refused: {refused}", messages.ERROR)
            return HttpResponseRedirect(here)
        self.message_user(request, done, messages.SUCCESS)
        return HttpResponseRedirect(here)
