from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.utils.html import format_html, format_html_join

from apps.alerts import alerts
from apps.alerts.models import Alert, AlertState


class ResolveForm(forms.Form):
    resolution = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 3, "cols": 60}),
        help_text="What was done, or why no action is needed. Recorded in the audit log.",
    )


@admin.register(Alert)
class AlertAdmin(admin.ModelAdmin):
    list_display = ("severity_badge", "subject", "rule", "state", "occurrences", "last_seen_at",
                    "assignee")
    list_filter = ("state", "severity", "rule")
    search_fields = ("subject", "rule", "dedup_key")
    list_select_related = ("assignee",)
    date_hierarchy = "last_seen_at"
    actions = ("acknowledge_selected", "resolve_selected")
    readonly_fields = ("rule", "severity", "subject", "details", "evidence_links", "dedup_key",
                       "state", "occurrences", "first_seen_at", "last_seen_at", "assignee",
                       "acknowledged_by", "acknowledged_at", "resolved_by", "resolved_at",
                       "resolution")
    exclude = ("evidence",)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # alerts are raised by rules, never typed in

    def has_delete_permission(self, request: HttpRequest, obj: Alert | None = None) -> bool:
        return False

    def get_queryset(self, request: HttpRequest):  # type: ignore[no-untyped-def]
        return super().get_queryset(request).select_related("assignee")

    @admin.display(description="Severity", ordering="severity")
    def severity_badge(self, obj: Alert) -> str:
        return format_html('<span class="ix-badge ix-badge-{}">{}</span>', obj.severity,
                           obj.get_severity_display())

    @admin.display(description="Evidence")
    def evidence_links(self, obj: Alert) -> str:
        links = [(item.get("url", "#"), item.get("label", "link")) for item in obj.evidence or []]
        return format_html_join(", ", '<a href="{}">{}</a>', links) or "-"

    @admin.action(description="Acknowledge (assign to me)", permissions=["change"])
    def acknowledge_selected(self, request: HttpRequest, queryset) -> None:  # type: ignore[no-untyped-def]
        done = 0
        for alert in queryset.exclude(state=AlertState.RESOLVED):
            alerts.alert_acknowledge(alert=alert, actor=request.user)
            done += 1
        self.message_user(request, f"Acknowledged {done} alert(s).", messages.SUCCESS)

    @admin.action(description="Resolve with a note", permissions=["change"])
    def resolve_selected(self, request: HttpRequest, queryset) -> HttpResponse | None:  # type: ignore[no-untyped-def]
        live = queryset.exclude(state=AlertState.RESOLVED)
        form = ResolveForm(request.POST if "resolution" in request.POST else None)
        if form.is_valid():
            for alert in live:
                alerts.alert_resolve(alert=alert, actor=request.user,
                                     resolution=form.cleaned_data["resolution"])
            self.message_user(request, f"Resolved {live.count() or 'the selected'} alert(s).",
                              messages.SUCCESS)
            return None
        context = {
            **self.admin_site.each_context(request),
            "title": "Resolve alerts",
            "alerts": live,
            "form": form,
            "opts": self.model._meta,
            "action_checkbox_name": admin.helpers.ACTION_CHECKBOX_NAME,
        }
        return TemplateResponse(request, "admin/alerts/resolve.html", context)
