"""Offboarding, control packs and disclosure history in the admin.

Every button calls a service; records are read-only here. Auditors see offboardings and
packs and may export and verify packs; only governance staff run offboarding steps and look
up a pupil's disclosures.
"""

from __future__ import annotations

import csv
import io
import re

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html
from django.utils.safestring import mark_safe

from apps.audit import audit
from apps.audit.models import FieldClass
from apps.keys.files import open_decrypted
from apps.offboarding import incidents, packs, selectors, services
from apps.offboarding.models import (
    ControlPack,
    ControlPackState,
    DisclosureHistory,
    Incident,
    IncidentStatus,
    Offboarding,
    OffboardingStatus,
    StepName,
)
from apps.offboarding.verify import control_pack_verify
from apps.vendors.models import Integration, IntegrationStatus, Vendor

RUN_PERMISSION = "offboarding.run_offboarding"
EXPORT_PERMISSION = "offboarding.export_controlpack"


# --- forms --------------------------------------------------------------------------------------


class OpenForm(forms.Form):
    vendor = forms.ModelChoiceField(queryset=Vendor.objects.order_by("name"))
    integration = forms.ModelChoiceField(
        queryset=Integration.objects.exclude(status=IntegrationStatus.OFFBOARDED)
        .select_related("vendor").order_by("vendor__name", "name"),
        required=False, help_text="Leave empty to offboard every integration of the vendor.",
    )
    reason = forms.CharField(widget=forms.Textarea(attrs={"rows": 2, "cols": 60}),
                             help_text="Kept in the audit log and on the certificate.")


class DeletionRequestForm(forms.Form):
    requested_to = forms.CharField(max_length=300, label="Sent to",
                                   help_text="The vendor contact or address the request went to.")
    note = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2, "cols": 60}))


class DeletionConfirmForm(forms.Form):
    confirmation = forms.CharField(widget=forms.Textarea(attrs={"rows": 2, "cols": 60}),
                                   help_text="How the vendor confirmed (letter, email, portal).")
    evidence = forms.FileField(required=False,
                               help_text="The vendor's evidence; stored encrypted.")


class ExportForm(forms.Form):
    vendor = forms.ModelChoiceField(queryset=Vendor.objects.order_by("name"))
    period_from = forms.DateField(required=False, label="From",
                                  widget=forms.DateInput(attrs={"type": "date"}))
    period_to = forms.DateField(required=False, label="To",
                                widget=forms.DateInput(attrs={"type": "date"}))


class VerifyForm(forms.Form):
    pack = forms.FileField(label="Control pack (zip)")


class LookupForm(forms.Form):
    person = forms.CharField(label="Pupil or staff member",
                             help_text="Roster sourcedId, school identifier or username.")


def _zip_response(content: bytes, filename: str) -> HttpResponse:
    response = HttpResponse(content, content_type="application/zip")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    response["Cache-Control"] = "no-store"
    return response


# --- offboarding --------------------------------------------------------------------------------


@admin.register(Offboarding)
class OffboardingAdmin(admin.ModelAdmin):
    list_display = ("__str__", "vendor", "trigger", "status_badge", "opened_at",
                    "deletion_due_on", "closed_at", "time_to_last_access")
    list_filter = ("status", "trigger")
    search_fields = ("vendor__name", "integration__name", "reason")
    list_select_related = ("vendor", "integration")
    date_hierarchy = "opened_at"

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:  # type: ignore[no-untyped-def]
        return False

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:  # type: ignore[no-untyped-def]
        return False

    def _can_run(self, request: HttpRequest) -> bool:
        return request.user.has_perm(RUN_PERMISSION)

    @admin.display(description="Status", ordering="status")
    def status_badge(self, obj: Offboarding) -> str:
        css = "ok" if obj.status == OffboardingStatus.CLOSED else "warning"
        return format_html('<span class="ix-badge ix-badge-{}">{}</span>', css,
                           obj.get_status_display())

    @admin.display(description="Decision to last access")
    def time_to_last_access(self, obj: Offboarding) -> str:
        seconds = obj.seconds_to_last_access
        if obj.closed_at is None:
            return "-"
        if seconds is None:
            return "no access recorded"
        if seconds < 0:
            return "none after the decision"
        return f"{seconds // 3600} h {seconds % 3600 // 60} min"

    def get_urls(self):  # type: ignore[no-untyped-def]
        view = self.admin_site.admin_view
        return [
            path("<uuid:pk>/steps/", view(self.detail_view), name="offboarding_offboarding_detail"),
            path("<uuid:pk>/run/", view(self.run_view), name="offboarding_offboarding_run"),
            path("<uuid:pk>/deletion-request/", view(self.deletion_request_view),
                 name="offboarding_offboarding_deletion_request"),
            path("<uuid:pk>/deletion-confirm/", view(self.deletion_confirm_view),
                 name="offboarding_offboarding_deletion_confirm"),
            path("<uuid:pk>/close/", view(self.close_view), name="offboarding_offboarding_close"),
            path("<uuid:pk>/certificate/", view(self.certificate_view),
                 name="offboarding_offboarding_certificate"),
            path("<uuid:pk>/evidence/", view(self.evidence_view),
                 name="offboarding_offboarding_evidence"),
            *super().get_urls(),
        ]

    def _detail_url(self, pk) -> str:  # type: ignore[no-untyped-def]
        return reverse(f"{self.admin_site.name}:offboarding_offboarding_detail", args=[pk])

    def change_view(self, request, object_id, form_url="", extra_context=None):  # type: ignore[no-untyped-def]
        return HttpResponseRedirect(self._detail_url(object_id))

    def add_view(self, request, form_url="", extra_context=None):  # type: ignore[no-untyped-def]
        if not (self.has_add_permission(request) and self._can_run(request)):
            raise PermissionDenied
        form = OpenForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            try:
                offboarding = services.offboarding_open(
                    vendor=form.cleaned_data["vendor"], actor=request.user,
                    integration=form.cleaned_data["integration"],
                    reason=form.cleaned_data["reason"])
            except services.OffboardingError as exc:
                form.add_error(None, str(exc))
            else:
                self.message_user(request, "Offboarding opened: the decision is recorded.",
                                  messages.SUCCESS)
                return HttpResponseRedirect(self._detail_url(offboarding.pk))
        return TemplateResponse(request, "admin/offboarding/form_page.html", {
            **self.admin_site.each_context(request), "opts": self.opts,
            "title": "Open an offboarding", "form": form, "submit": "Record the decision",
            "multipart": False,
        })

    def detail_view(self, request: HttpRequest, pk) -> HttpResponse:  # type: ignore[no-untyped-def]
        if not self.has_view_permission(request):
            raise PermissionDenied
        offboarding = get_object_or_404(
            Offboarding.objects.select_related("vendor", "integration", "opened_by",
                                               "closed_by"), pk=pk)
        steps = {s.step: s for s in offboarding.steps.select_related("actor")}
        can_run = self._can_run(request) and not offboarding.is_closed
        return TemplateResponse(request, "admin/offboarding/offboarding_detail.html", {
            **self.admin_site.each_context(request), "opts": self.opts,
            "title": str(offboarding), "offboarding": offboarding,
            "integrations": services.offboarding_integrations(offboarding),
            "steps": [(value, label, steps.get(value)) for value, label in StepName.choices],
            "can_run": can_run,
            "can_stop": can_run and StepName.CREDENTIALS_REVOKED not in steps,
            "can_request": can_run and StepName.CHANNELS_STOPPED in steps
            and StepName.DELETION_REQUESTED not in steps,
            "can_confirm": can_run and StepName.DELETION_REQUESTED in steps
            and StepName.DELETION_CONFIRMED not in steps,
            "can_close": can_run and StepName.DELETION_CONFIRMED in steps
            and StepName.FILES_PURGED in steps,
            "can_evidence": self._can_run(request) and bool(offboarding.evidence_path),
            "request_form": DeletionRequestForm(),
            "confirm_form": DeletionConfirmForm(),
        })

    def _act(self, request: HttpRequest, pk, action) -> HttpResponse:  # type: ignore[no-untyped-def]
        if request.method != "POST":
            return HttpResponseRedirect(self._detail_url(pk))
        if not self._can_run(request):
            raise PermissionDenied
        offboarding = get_object_or_404(Offboarding, pk=pk)
        try:
            message = action(offboarding)
        except (services.OffboardingError, ValueError) as exc:
            self.message_user(request, str(exc), messages.ERROR)
        else:
            self.message_user(request, message, messages.SUCCESS)
        return HttpResponseRedirect(self._detail_url(pk))

    def run_view(self, request: HttpRequest, pk) -> HttpResponse:  # type: ignore[no-untyped-def]
        def action(offboarding: Offboarding) -> str:
            services.offboarding_run(offboarding=offboarding, actor=request.user)
            return ("Every channel now refuses these integrations, and each revoked what it "
                    "issued.")
        return self._act(request, pk, action)

    def deletion_request_view(self, request: HttpRequest, pk) -> HttpResponse:  # type: ignore[no-untyped-def]
        form = DeletionRequestForm(request.POST or None)

        def action(offboarding: Offboarding) -> str:
            if not form.is_valid():
                raise ValueError("Say who the deletion request went to.")
            services.offboarding_deletion_request(
                offboarding=offboarding, actor=request.user,
                requested_to=form.cleaned_data["requested_to"], note=form.cleaned_data["note"])
            return "Deletion request recorded; it will be chased if it becomes overdue."
        return self._act(request, pk, action)

    def deletion_confirm_view(self, request: HttpRequest, pk) -> HttpResponse:  # type: ignore[no-untyped-def]
        form = DeletionConfirmForm(request.POST or None, request.FILES or None)

        def action(offboarding: Offboarding) -> str:
            if not form.is_valid():
                raise ValueError("Say how the vendor confirmed the deletion.")
            upload = form.cleaned_data["evidence"]
            services.offboarding_deletion_confirm(
                offboarding=offboarding, actor=request.user,
                confirmation=form.cleaned_data["confirmation"],
                evidence=upload.file if upload else None,
                evidence_name=upload.name if upload else "")
            return "Vendor's confirmation recorded."
        return self._act(request, pk, action)

    def close_view(self, request: HttpRequest, pk) -> HttpResponse:  # type: ignore[no-untyped-def]
        def action(offboarding: Offboarding) -> str:
            services.offboarding_close(offboarding=offboarding, actor=request.user)
            return "Closed: the integrations are offboarded and the certificate is signed."
        return self._act(request, pk, action)

    def certificate_view(self, request: HttpRequest, pk) -> HttpResponse:  # type: ignore[no-untyped-def]
        if not self.has_view_permission(request):
            raise PermissionDenied
        offboarding = get_object_or_404(Offboarding, pk=pk, status=OffboardingStatus.CLOSED)
        response = HttpResponse(offboarding.certificate + "\n", content_type="application/jose")
        response["Content-Disposition"] = (
            f'attachment; filename="offboarding-certificate-{offboarding.pk}.jws"')
        return response

    def evidence_view(self, request: HttpRequest, pk) -> HttpResponse:  # type: ignore[no-untyped-def]
        if not self._can_run(request):
            raise PermissionDenied
        offboarding = get_object_or_404(Offboarding, pk=pk)
        if not offboarding.evidence_path:
            raise PermissionDenied
        with open_decrypted(offboarding.evidence_path,
                            purpose=services.EVIDENCE_PURPOSE) as handle:
            content = handle.read()
        audit.record(actor=request.user, action="offboarding.evidence_downloaded",
                     target=offboarding, details={"vendor": offboarding.vendor.name})
        response = HttpResponse(content, content_type="application/octet-stream")
        name = re.sub(r"[^A-Za-z0-9._-]", "_", offboarding.evidence_name)[:120] or "evidence"
        response["Content-Disposition"] = f'attachment; filename="{name}"'
        return response


# --- control packs ------------------------------------------------------------------------------


@admin.register(ControlPack)
class ControlPackAdmin(admin.ModelAdmin):
    list_display = ("vendor", "period_from", "period_to", "created_by", "created_at",
                    "state_shown", "files", "short_kid", "download_link")
    list_filter = ("vendor",)
    list_select_related = ("vendor", "created_by")
    change_list_template = "admin/offboarding/controlpack/change_list.html"

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:  # type: ignore[no-untyped-def]
        return False

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:  # type: ignore[no-untyped-def]
        return False

    def _can_export(self, request: HttpRequest) -> bool:
        return request.user.has_perm(EXPORT_PERMISSION)

    @admin.display(description="Signing key")
    def short_kid(self, obj: ControlPack) -> str:
        return obj.kid[:16]

    @admin.display(description="State")
    def state_shown(self, obj: ControlPack) -> str:
        if obj.state == ControlPackState.FAILED:
            return format_html('<span class="pack-failed">Failed: {}</span>', obj.error)
        if obj.state == ControlPackState.QUEUED:
            return mark_safe('<span class="pack-building">Building…</span>')  # noqa: S308 (a constant)
        return obj.get_state_display()

    @admin.display(description="")
    def download_link(self, obj: ControlPack) -> str:
        if obj.state != ControlPackState.READY:
            return ""
        url = reverse(f"{self.admin_site.name}:offboarding_controlpack_download", args=[obj.pk])
        return format_html('<a href="{}" class="pack-download">Download</a>', url)

    def get_urls(self):  # type: ignore[no-untyped-def]
        view = self.admin_site.admin_view
        return [
            path("export/", view(self.export_view), name="offboarding_controlpack_export"),
            path("verify/", view(self.verify_view), name="offboarding_controlpack_verify"),
            path("<uuid:pk>/download/", view(self.download_view),
                 name="offboarding_controlpack_download"),
            *super().get_urls(),
        ]

    def changelist_view(self, request, extra_context=None):  # type: ignore[no-untyped-def]
        building = ControlPack.objects.filter(state=ControlPackState.QUEUED).exists()
        return super().changelist_view(request, {**(extra_context or {}),
                                                 "can_export": self._can_export(request),
                                                 "packs_building": building})

    def export_view(self, request: HttpRequest) -> HttpResponse:
        if not self._can_export(request):
            raise PermissionDenied
        form = ExportForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            vendor = form.cleaned_data["vendor"]
            try:
                packs.control_pack_request(
                    vendor=vendor, actor=request.user,
                    period_from=form.cleaned_data["period_from"],
                    period_to=form.cleaned_data["period_to"])
            except packs.ControlPackError as exc:
                form.add_error(None, str(exc))
            else:
                messages.success(request, f"The control pack for {vendor.name} is being built. "
                                 "It appears here with a Download link when it is ready "
                                 "(a large vendor's takes a minute).")
                return redirect(f"{self.admin_site.name}:offboarding_controlpack_changelist")
        return TemplateResponse(request, "admin/offboarding/form_page.html", {
            **self.admin_site.each_context(request), "opts": self.opts,
            "title": "Export a control pack", "form": form, "submit": "Export signed pack",
            "multipart": False,
            "intro": "A signed zip of the vendor's evidence. Verify it with "
                     "verify_control_pack, or on the verify page.",
        })

    def download_view(self, request: HttpRequest, pk) -> HttpResponse:  # type: ignore[no-untyped-def]
        if not self._can_export(request):
            raise PermissionDenied
        pack = get_object_or_404(ControlPack.objects.select_related("vendor"), pk=pk,
                                 state=ControlPackState.READY)
        audit.record(actor=request.user, action="offboarding.control_pack_downloaded",
                     target=pack, details={"vendor": pack.vendor.name})
        return _zip_response(packs.control_pack_read(pack), pack.filename)

    def verify_view(self, request: HttpRequest) -> HttpResponse:
        if not self.has_view_permission(request):
            raise PermissionDenied
        form = VerifyForm(request.POST or None, request.FILES or None)
        report = None
        if request.method == "POST" and form.is_valid():
            report = control_pack_verify(io.BytesIO(form.cleaned_data["pack"].read()))
        return TemplateResponse(request, "admin/offboarding/verify.html", {
            **self.admin_site.each_context(request), "opts": self.opts,
            "title": "Verify a control pack", "form": form, "report": report,
        })


# --- disclosure history -------------------------------------------------------------------------


@admin.register(DisclosureHistory)
class DisclosureHistoryAdmin(admin.ModelAdmin):
    """One page: look a person up, see where their data went; export it for a subject access
    request. The lookup itself is audited (who looked up whom, restricted)."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:  # type: ignore[no-untyped-def]
        return False

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:  # type: ignore[no-untyped-def]
        return False

    def changelist_view(self, request, extra_context=None):  # type: ignore[no-untyped-def]
        if not self.has_view_permission(request):
            raise PermissionDenied
        form = LookupForm(request.GET or None)
        rows, sourced_id, searched = [], None, False
        if form.is_valid():
            searched = True
            sourced_id = selectors.roster_person(form.cleaned_data["person"])
            if sourced_id:
                rows = selectors.disclosure_history(sourced_id)
                audit.record(actor=request.user, action="offboarding.disclosure_history_viewed",
                             details={"rows": len(rows),
                                      "export": request.GET.get("format") == "csv"},
                             restricted_details={"user_sourced_id": sourced_id})
                if request.GET.get("format") == "csv":
                    return _csv_response(sourced_id, rows)
        return TemplateResponse(request, "admin/offboarding/disclosure_history.html", {
            **self.admin_site.each_context(request), "opts": self.opts,
            "title": "Disclosure history", "form": form, "rows": rows,
            "sourced_id": sourced_id, "searched": searched,
        })


def _csv_response(sourced_id: str, rows: list[dict]) -> HttpResponse:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["vendor", "integration", "channel", "classes of data", "first day",
                     "last day"])
    for row in rows:
        writer.writerow([row["vendor"], row["integration"], row["channel"],
                         "; ".join(row["field_classes"]), row["first_day"], row["last_day"]])
    response = HttpResponse(buffer.getvalue(), content_type="text/csv")
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", sourced_id)[:80]
    response["Content-Disposition"] = f'attachment; filename="disclosures-{safe}.csv"'
    response["Cache-Control"] = "no-store"
    return response


# --- incidents ----------------------------------------------------------------------------------


class IncidentForm(forms.ModelForm):
    data_classes = forms.MultipleChoiceField(
        choices=FieldClass.choices, required=False, widget=forms.CheckboxSelectMultiple,
        help_text="Classes of personal data involved.")
    close = forms.BooleanField(required=False, help_text="Close the incident (say how below).")

    class Meta:
        model = Incident
        fields = ("vendor", "integration", "kind", "title", "description", "discovered_at",
                  "data_classes", "people_affected", "authority_notified_at", "notified",
                  "resolution")


@admin.register(Incident)
class IncidentAdmin(admin.ModelAdmin):
    """Recording and updating go through the incident services (clock, alerts, audit)."""

    form = IncidentForm
    list_display = ("__str__", "title", "status", "discovered_at", "clock")
    list_filter = ("status", "kind")
    search_fields = ("vendor__name", "title")
    list_select_related = ("vendor",)

    _RECORD_FIELDS = ("vendor", "integration", "kind", "title", "description",
                      "discovered_at", "data_classes", "people_affected")

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:  # type: ignore[no-untyped-def]
        return False

    def get_fields(self, request, obj=None):  # type: ignore[no-untyped-def]
        if obj is None:
            return self._RECORD_FIELDS
        return (*self._RECORD_FIELDS, "deadline", "authority_notified_at", "notified",
                "close", "resolution")

    def get_readonly_fields(self, request, obj=None):  # type: ignore[no-untyped-def]
        if obj is None:
            return ()
        fixed = (*self._RECORD_FIELDS, "deadline")
        if obj.status == IncidentStatus.CLOSED:
            return (*fixed, "authority_notified_at", "notified", "resolution")
        return fixed

    @admin.display(description="Notification deadline")
    def deadline(self, obj: Incident) -> str:
        return f"{incidents.notify_deadline(obj):%Y-%m-%d %H:%M} ({self.clock(obj)})"

    @admin.display(description="72-hour clock")
    def clock(self, obj: Incident) -> str:
        if obj.authority_notified_at is not None:
            late = obj.authority_notified_at > incidents.notify_deadline(obj)
            return "authority told late" if late else "authority told in time"
        if obj.status == IncidentStatus.CLOSED:
            return "closed without notification"
        left = incidents.hours_left(obj)
        if left < 0:
            return f"OVERDUE by {-left:.0f} h"
        return f"{left:.0f} h left to notify"

    def save_model(self, request, obj, form, change):  # type: ignore[no-untyped-def]
        data = form.cleaned_data
        try:
            if not change:
                created = incidents.incident_record(
                    vendor=data["vendor"], actor=request.user, kind=data["kind"],
                    title=data["title"], discovered_at=data["discovered_at"],
                    data_classes=data["data_classes"], description=data["description"],
                    integration=data["integration"], people_affected=data["people_affected"])
                obj.pk = created.pk
                return
            told = {"authority_notified_at", "notified"} & set(form.changed_data)
            if told and data.get("authority_notified_at"):
                incidents.incident_notified(
                    incident=obj, actor=request.user,
                    notified_at=data["authority_notified_at"], notified=data["notified"])
            if data.get("close"):
                incidents.incident_close(incident=obj, actor=request.user,
                                         resolution=data.get("resolution", ""))
        except incidents.IncidentError as exc:
            self.message_user(request, str(exc), messages.ERROR)
