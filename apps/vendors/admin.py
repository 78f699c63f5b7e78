"""Vendors and integrations in the admin, for a busy data protection officer.

A vendor's page answers, at a glance: may we share data with them today (a current
agreement and security review: badges), what have they been allowed (integrations and
their approvals) and who do we call (contacts). Status levers (suspend, resume) are
admin actions that ask for a reason and call the audited services; the status fields
themselves are read-only.
"""

from __future__ import annotations

import datetime as dt

from django import forms
from django.contrib import admin, messages
from django.db import models
from django.db.models import Count, OuterRef, Q, Subquery
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html
from simple_history.admin import SimpleHistoryAdmin

from apps.vendors import services
from apps.vendors.models import (
    EXPIRING_SOON_DAYS,
    Contract,
    DataProcessingAgreement,
    Integration,
    IntegrationStatus,
    ReviewOutcome,
    SecurityReview,
    Vendor,
    VendorContact,
    VendorStatus,
)
from portal.forms import HTTPS_URL_FIELDS


def badge(kind: str, text: str, title: str = "") -> str:
    return format_html('<span class="ix-badge ix-badge-{}" title="{}">{}</span>', kind, title,
                       text)


def date_badge(expires_on: dt.date | None, *, missing: str, what: str) -> str:
    """ok / expiring (warning) / stale (critical) for something valid until ``expires_on``."""
    today = timezone.localdate()
    if expires_on is None:
        return badge("critical", missing)
    if expires_on <= today:
        return badge("critical", f"{what} stale", f"expired {expires_on:%-d %b %Y}")
    if expires_on <= today + dt.timedelta(days=EXPIRING_SOON_DAYS):
        return badge("warning", f"{what} expires {expires_on:%-d %b}")
    return badge("ok", f"{what} to {expires_on:%b %Y}")


STATUS_BADGES = {
    IntegrationStatus.ACTIVE: "ok",
    IntegrationStatus.DRAFT: "info",
    IntegrationStatus.SUSPENDED: "critical",
    IntegrationStatus.OFFBOARDING: "warning",
    IntegrationStatus.OFFBOARDED: "info",
    VendorStatus.OFFBOARDED: "info",
}


class ReasonForm(forms.Form):
    reason = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 3, "cols": 60}),
        help_text="Why. Kept in the audit log and the history of the record.",
    )


def lever_action(admin_obj, request: HttpRequest, queryset, *, action: str, title: str,  # type: ignore[no-untyped-def]
                 verb: str, call) -> HttpResponse | None:
    """An admin action that asks for a reason on an intermediate page, then calls ``call``
    for each selected object (a service that audits)."""
    form = ReasonForm(request.POST if "reason" in request.POST else None)
    if form.is_valid():
        done, refused = 0, []
        for obj in queryset:
            try:
                call(obj, request.user, form.cleaned_data["reason"])
                done += 1
            except services.VendorServiceError as exc:
                refused.append(str(exc))
        if done:
            admin_obj.message_user(request, f"{verb} {done} record(s).", messages.SUCCESS)
        for message in refused:
            admin_obj.message_user(request, message, messages.ERROR)
        return None
    context = {
        **admin_obj.admin_site.each_context(request),
        "title": title,
        "objects": queryset,
        "form": form,
        "action": action,
        "verb": verb,
        "opts": admin_obj.model._meta,
        "action_checkbox_name": admin.helpers.ACTION_CHECKBOX_NAME,
    }
    return TemplateResponse(request, "admin/vendors/lever.html", context)


# --------------------------------------------------------------------------------------------
# Inlines
# --------------------------------------------------------------------------------------------


class ContactInline(admin.TabularInline):
    model = VendorContact
    extra = 0
    fields = ("role", "name", "email", "phone")


class ContractInline(admin.TabularInline):
    model = Contract
    extra = 0
    fields = ("reference", "title", "starts_on", "ends_on", "renewal_on", "auto_renews")


class AgreementInline(admin.StackedInline):
    model = DataProcessingAgreement
    extra = 0
    fk_name = "vendor"
    fieldsets = (
        (None, {"fields": (("reference", "contract"),
                           ("signed_on", "expires_on", "terminated_on"))}),
        ("Schedule of data", {"fields": ("allowed_field_classes", "allowed_fields")}),
        ("Commitments", {"fields": (
            "retention_commitment", "deletion_commitment",
            ("incident_reporting_commitment", "incident_reporting_hours"),
        )}),
    )

    def formfield_for_dbfield(self, db_field, request, **kwargs):  # type: ignore[no-untyped-def]
        return _schedule_formfield(db_field) or super().formfield_for_dbfield(
            db_field, request, **kwargs)


class SecurityReviewInline(admin.TabularInline):
    model = SecurityReview
    extra = 0
    fields = ("reviewed_on", "expires_on", "reviewer", "outcome", "key_management",
              "incident_reporting", "retention", "mfa", "encryption", "state")
    readonly_fields = ("state",)
    autocomplete_fields = ()

    @admin.display(description="State")
    def state(self, obj: SecurityReview) -> str:
        if not obj.pk:
            return "-"
        return review_badge(obj)


class IntegrationInline(admin.TabularInline):
    model = Integration
    extra = 0
    fields = ("link", "kind", "environment", "status_badge", "pseudonymised")
    readonly_fields = fields
    can_delete = False
    show_change_link = False

    def has_add_permission(self, request, obj=None) -> bool:  # type: ignore[no-untyped-def]
        return False

    @admin.display(description="Integration")
    def link(self, obj: Integration) -> str:
        return format_html('<a href="{}">{}</a>',
                           reverse("admin:vendors_integration_change", args=[obj.pk]), obj.name)

    @admin.display(description="Status")
    def status_badge(self, obj: Integration) -> str:
        return badge(STATUS_BADGES.get(obj.status, "info"), obj.get_status_display())


def review_badge(review: SecurityReview) -> str:
    if review.outcome == ReviewOutcome.FAILED:
        return badge("critical", "Failed")
    return date_badge(review.expires_on, missing="No review", what="Valid")


def _schedule_formfield(db_field):  # type: ignore[no-untyped-def]
    """Checkboxes for the schedule's field classes rather than a comma-separated text box,
    and short text boxes for the commitments (a sentence each, not an essay)."""
    if isinstance(db_field, models.TextField):
        return forms.CharField(
            widget=forms.Textarea(attrs={"rows": 2, "cols": 80}), required=not db_field.blank,
            label=db_field.verbose_name.capitalize(), help_text=db_field.help_text)
    if db_field.name == "allowed_field_classes":
        from apps.audit.models import FieldClass

        return forms.TypedMultipleChoiceField(
            choices=FieldClass.choices, widget=forms.CheckboxSelectMultiple, required=False,
            label="Field classes allowed", help_text=db_field.help_text,
        )
    if db_field.name == "allowed_fields":
        from django.contrib.postgres.forms import SimpleArrayField

        return SimpleArrayField(
            forms.CharField(), required=False, label="Single fields allowed",
            help_text='Comma-separated "entity.column", e.g. users.email',
        )
    return None


# --------------------------------------------------------------------------------------------
# Vendor
# --------------------------------------------------------------------------------------------


@admin.register(Vendor)
class VendorAdmin(SimpleHistoryAdmin):
    list_display = ("name", "status_badge", "agreement_badge", "review_badge", "integrations",
                    "pending_requests", "security_contact_set")
    list_filter = ("status",)
    search_fields = ("name",)
    readonly_fields = ("status", "status_reason", "status_changed_at", "created_at", "updated_at")
    fieldsets = (
        (None, {"fields": ("name", "website", "description")}),
        ("Status", {"fields": ("status", "status_reason", "status_changed_at"),
                    "description": "Use the actions on the vendor list to suspend or resume."}),
    )
    inlines = (ContactInline, ContractInline, AgreementInline, SecurityReviewInline,
               IntegrationInline)
    formfield_overrides = HTTPS_URL_FIELDS
    change_form_template = "admin/vendors/vendor/change_form.html"

    def change_view(self, request, object_id, form_url="", extra_context=None):  # type: ignore[no-untyped-def]
        vendor = self.get_object(request, object_id)
        if vendor is not None:
            extra_context = {**(extra_context or {}), "standing": vendor_standing(vendor)}
        return super().change_view(request, object_id, form_url, extra_context)
    actions = ("suspend_selected", "resume_selected")

    def get_queryset(self, request: HttpRequest):  # type: ignore[no-untyped-def]
        today = timezone.localdate()
        agreements = DataProcessingAgreement.objects.current(today).filter(vendor=OuterRef("pk"))
        reviews = SecurityReview.objects.current(today).filter(vendor=OuterRef("pk"))
        latest_review = SecurityReview.objects.filter(vendor=OuterRef("pk")).exclude(
            outcome=ReviewOutcome.FAILED).order_by("-expires_on")
        return super().get_queryset(request).annotate(
            n_integrations=Count("integrations", distinct=True),
            n_pending=Count("integrations__scope_requests",
                            filter=Q(integrations__scope_requests__status="pending"),
                            distinct=True),
            n_security_contacts=Count("contacts", filter=Q(contacts__role="security"),
                                      distinct=True),
            agreement_ref=Subquery(agreements.order_by("-signed_on").values("reference")[:1]),
            agreement_expires=Subquery(agreements.order_by("-signed_on").values("expires_on")[:1]),
            review_expires=Subquery(reviews.order_by("-expires_on").values("expires_on")[:1]),
            last_review_expires=Subquery(latest_review.values("expires_on")[:1]),
        )

    @admin.display(description="Status", ordering="status")
    def status_badge(self, obj: Vendor) -> str:
        return badge("ok" if obj.status == VendorStatus.ACTIVE else "critical",
                     obj.get_status_display())

    @admin.display(description="Agreement")
    def agreement_badge(self, obj: Vendor) -> str:
        if obj.agreement_ref is None:
            return badge("critical", "No current DPA")
        if obj.agreement_expires is None:
            return badge("ok", f"{obj.agreement_ref}")
        return date_badge(obj.agreement_expires, missing="No current DPA", what=obj.agreement_ref)

    @admin.display(description="Security review")
    def review_badge(self, obj: Vendor) -> str:
        if obj.review_expires is None:
            if obj.last_review_expires is not None:
                return date_badge(obj.last_review_expires, missing="", what="Review")
            return badge("critical", "No review")
        return date_badge(obj.review_expires, missing="No review", what="Review")

    @admin.display(description="Integrations", ordering="n_integrations")
    def integrations(self, obj: Vendor) -> str:
        url = reverse("admin:vendors_integration_changelist") + f"?vendor__id__exact={obj.pk}"
        return format_html('<a href="{}">{}</a>', url, obj.n_integrations)

    @admin.display(description="Pending requests", ordering="n_pending")
    def pending_requests(self, obj: Vendor) -> str:
        if not obj.n_pending:
            return "0"
        return badge("warning", str(obj.n_pending))

    @admin.display(description="Security contact", boolean=True)
    def security_contact_set(self, obj: Vendor) -> bool:
        return bool(obj.n_security_contacts)

    @admin.action(description="Suspend selected vendors (all their integrations)",
                  permissions=["change"])
    def suspend_selected(self, request, queryset):  # type: ignore[no-untyped-def]
        return lever_action(
            self, request, queryset, action="suspend_selected", title="Suspend vendors",
            verb="Suspended",
            call=lambda obj, user, reason: services.vendor_suspend(vendor=obj, actor=user,
                                                                   reason=reason))

    @admin.action(description="Resume selected vendors", permissions=["change"])
    def resume_selected(self, request, queryset):  # type: ignore[no-untyped-def]
        return lever_action(
            self, request, queryset, action="resume_selected", title="Resume vendors",
            verb="Resumed",
            call=lambda obj, user, reason: services.vendor_resume(vendor=obj, actor=user,
                                                                  reason=reason))

    def has_delete_permission(self, request, obj=None) -> bool:  # type: ignore[no-untyped-def]
        return False  # vendors are offboarded, never deleted: their history is evidence


# --------------------------------------------------------------------------------------------
# Integration
# --------------------------------------------------------------------------------------------


@admin.register(Integration)
class IntegrationAdmin(SimpleHistoryAdmin):
    list_display = ("name", "vendor", "kind", "environment", "status_badge", "pseudonymised",
                    "approvals_live", "requests_pending", "owner")
    list_filter = ("status", "kind", "environment", "pseudonymised", "vendor")
    search_fields = ("name", "vendor__name")
    list_select_related = ("vendor", "owner")
    autocomplete_fields = ("vendor",)
    readonly_fields = ("status", "status_reason", "status_changed_at", "created_at",
                       "updated_at", "links")
    fieldsets = (
        (None, {"fields": ("vendor", "name", "kind", "environment", "owner", "pseudonymised",
                           "description")}),
        ("Status", {"fields": ("status", "status_reason", "status_changed_at", "links"),
                    "description": "Use the actions on the integration list to activate, "
                                   "suspend or resume."}),
    )
    actions = ("activate_selected", "suspend_selected", "resume_selected")

    def get_queryset(self, request: HttpRequest):  # type: ignore[no-untyped-def]
        now = timezone.now()
        return super().get_queryset(request).annotate(
            n_live=Count("scope_requests", distinct=True, filter=Q(
                scope_requests__approved_at__lte=now, scope_requests__expires_at__gt=now,
                scope_requests__withdrawn_at__isnull=True)),
            n_pending=Count("scope_requests", distinct=True,
                            filter=Q(scope_requests__status="pending")),
        )

    def get_readonly_fields(self, request, obj=None):  # type: ignore[no-untyped-def]
        fields = list(super().get_readonly_fields(request, obj))
        if obj is not None:
            fields += ["vendor", "kind"]  # a different vendor or kind is a new integration
        return fields

    @admin.display(description="Status", ordering="status")
    def status_badge(self, obj: Integration) -> str:
        text = obj.get_status_display()
        if obj.status == IntegrationStatus.ACTIVE and obj.vendor.is_suspended:
            return badge("critical", f"{text} (vendor suspended)")
        return badge(STATUS_BADGES.get(obj.status, "info"), text)

    @admin.display(description="Live approvals", ordering="n_live")
    def approvals_live(self, obj: Integration) -> str:
        url = (reverse("admin:governance_scoperequest_changelist")
               + f"?integration__id__exact={obj.pk}&status__exact=approved")
        return format_html('<a href="{}">{}</a>', url, obj.n_live)

    @admin.display(description="Pending", ordering="n_pending")
    def requests_pending(self, obj: Integration) -> str:
        return badge("warning", str(obj.n_pending)) if obj.n_pending else "0"

    @admin.display(description="Next steps")
    def links(self, obj: Integration) -> str:
        if not obj.pk:
            return "-"
        request_url = reverse("admin:governance_scoperequest_add") + f"?integration={obj.pk}"
        requests_url = (reverse("admin:governance_scoperequest_changelist")
                        + f"?integration__id__exact={obj.pk}")
        parts = [format_html('<a class="button" href="{}">Request data scopes</a>', request_url),
                 format_html('<a href="{}">All requests</a>', requests_url)]
        access = reverse("admin:governance_integrationaccess_access", args=[obj.pk])
        parts.append(format_html('<a href="{}">Effective access</a>', access))
        return format_html(" &nbsp; ".join(["{}"] * len(parts)), *parts)

    def _lever(self, request, queryset, *, action, title, verb, service):  # type: ignore[no-untyped-def]
        return lever_action(
            self, request, queryset, action=action, title=title, verb=verb,
            call=lambda obj, user, reason: service(integration=obj, actor=user, reason=reason))

    @admin.action(description="Activate selected integrations", permissions=["change"])
    def activate_selected(self, request, queryset):  # type: ignore[no-untyped-def]
        return self._lever(request, queryset, action="activate_selected",
                           title="Activate integrations", verb="Activated",
                           service=services.integration_activate)

    @admin.action(description="Suspend selected integrations now", permissions=["change"])
    def suspend_selected(self, request, queryset):  # type: ignore[no-untyped-def]
        return self._lever(request, queryset, action="suspend_selected",
                           title="Suspend integrations", verb="Suspended",
                           service=services.integration_suspend)

    @admin.action(description="Resume selected integrations", permissions=["change"])
    def resume_selected(self, request, queryset):  # type: ignore[no-untyped-def]
        return self._lever(request, queryset, action="resume_selected",
                           title="Resume integrations", verb="Resumed",
                           service=services.integration_resume)

    def has_delete_permission(self, request, obj=None) -> bool:  # type: ignore[no-untyped-def]
        return False


# --------------------------------------------------------------------------------------------
# Agreements and reviews, listed across vendors (what lapses next)
# --------------------------------------------------------------------------------------------


class StaleFilter(admin.SimpleListFilter):
    title = "state"
    parameter_name = "state"

    def lookups(self, request, model_admin):  # type: ignore[no-untyped-def]
        return (("current", "Current"), ("expiring", f"Expiring within {EXPIRING_SOON_DAYS} days"),
                ("stale", "Stale (expired)"))

    def queryset(self, request, queryset):  # type: ignore[no-untyped-def]
        today = timezone.localdate()
        soon = today + dt.timedelta(days=EXPIRING_SOON_DAYS)
        if self.value() == "current":
            return queryset.filter(expires_on__gt=today)
        if self.value() == "expiring":
            return queryset.filter(expires_on__gt=today, expires_on__lte=soon)
        if self.value() == "stale":
            return queryset.filter(expires_on__lte=today)
        return queryset


@admin.register(SecurityReview)
class SecurityReviewAdmin(SimpleHistoryAdmin):
    list_display = ("vendor", "reviewed_on", "reviewer", "outcome", "checklist_score",
                    "expires_on", "state")
    list_filter = (StaleFilter, "outcome")
    search_fields = ("vendor__name",)
    list_select_related = ("vendor", "reviewer")
    autocomplete_fields = ("vendor",)
    fieldsets = (
        (None, {"fields": ("vendor", "reviewer", ("reviewed_on", "expires_on"), "outcome")}),
        ("Checklist", {"fields": ("key_management", "incident_reporting", "retention", "mfa",
                                  "encryption")}),
        (None, {"fields": ("notes",)}),
    )

    @admin.display(description="Checklist")
    def checklist_score(self, obj: SecurityReview) -> str:
        passed = obj.checklist_passed
        return badge("ok" if passed == 5 else "warning", f"{passed}/5")

    @admin.display(description="State")
    def state(self, obj: SecurityReview) -> str:
        return review_badge(obj)

    def get_changeform_initial_data(self, request):  # type: ignore[no-untyped-def]
        return {"reviewer": request.user.pk, **super().get_changeform_initial_data(request)}

    def has_delete_permission(self, request, obj=None) -> bool:  # type: ignore[no-untyped-def]
        return False


@admin.register(DataProcessingAgreement)
class AgreementAdmin(SimpleHistoryAdmin):
    list_display = ("reference", "vendor", "signed_on", "expires_on", "schedule", "state")
    list_filter = (StaleFilter,)
    search_fields = ("reference", "vendor__name")
    list_select_related = ("vendor",)
    autocomplete_fields = ("vendor",)
    fieldsets = (
        (None, {"fields": ("vendor", ("reference", "contract"),
                           ("signed_on", "expires_on", "terminated_on"))}),
        *AgreementInline.fieldsets[1:],
        (None, {"fields": ("notes",)}),
    )

    def formfield_for_dbfield(self, db_field, request, **kwargs):  # type: ignore[no-untyped-def]
        return _schedule_formfield(db_field) or super().formfield_for_dbfield(
            db_field, request, **kwargs)

    @admin.display(description="Schedule of data")
    def schedule(self, obj: DataProcessingAgreement) -> str:
        items = list(obj.allowed_field_classes) + list(obj.allowed_fields)
        return ", ".join(items) or "-"

    @admin.display(description="State")
    def state(self, obj: DataProcessingAgreement) -> str:
        if obj.terminated_on and obj.terminated_on <= timezone.localdate():
            return badge("critical", "Terminated")
        if obj.expires_on is None:
            return badge("ok", "In force")
        return date_badge(obj.expires_on, missing="", what="In force")

    def has_delete_permission(self, request, obj=None) -> bool:  # type: ignore[no-untyped-def]
        return False


def vendor_standing(vendor: Vendor) -> dict:
    """The answer to "may we share data with this vendor today?", for the top of its page."""
    today = timezone.localdate()
    agreement = vendor.current_agreement(today)
    review = vendor.current_security_review(today)
    security = vendor.contacts.filter(role="security").first()
    incident = vendor.contacts.filter(role="incident").first()
    integrations = list(vendor.integrations.all())
    live = sum(1 for i in integrations if i.is_live)
    from apps.governance.models import ScopeRequest

    pending = ScopeRequest.objects.filter(integration__vendor=vendor, status="pending").count()
    return {
        "ready": agreement is not None and review is not None and not vendor.is_suspended,
        "agreement": agreement,
        "agreement_badge": (
            date_badge(agreement.expires_on, missing="", what="In force")
            if agreement and agreement.expires_on else
            badge("ok", "In force") if agreement else badge("critical", "None current")
        ),
        "review": review,
        "review_badge": review_badge(review) if review else badge("critical", "None current"),
        "security": security,
        "incident": incident,
        "integrations": len(integrations),
        "live": live,
        "pending": pending,
        "requests_url": reverse("admin:governance_scoperequest_changelist")
        + f"?integration__vendor__id__exact={vendor.pk}",
    }
