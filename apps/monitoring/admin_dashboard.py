"""The monitoring dashboard in the admin: what the hub is doing, what looks wrong, and the
levers, one click away.

Registered as the admin page of the ``Dashboard`` proxy so it lives on the custom admin
site with its MFA and permission checks. Writes are POST-only, CSRF-protected, permission
checked here and audited by the services they call.
"""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import NoReverseMatch, path, reverse
from django.views.decorators.http import require_POST

from apps.alerts.alerts import alert_acknowledge, open_alerts
from apps.alerts.models import Alert, AlertState
from apps.monitoring import selectors, services, svg
from apps.monitoring.models import Dashboard

VIEW_PERMISSION = "monitoring.view_dashboard"
ACKNOWLEDGE_PERMISSION = "alerts.change_alert"
SUSPEND_PERMISSION = "governance.suspend_integration"
OPEN_ALERTS_SHOWN = 50


def _disclosure_lookup_url(request: HttpRequest) -> str:
    """The per-pupil disclosure history lives with offboarding (DESIGN.md); link to it for
    those who may open it."""
    if not request.user.has_perm("offboarding.view_disclosurehistory"):
        return ""
    try:
        return reverse("admin:offboarding_disclosurehistory_changelist")
    except NoReverseMatch:
        return ""


class SuspendFromAlertForm(forms.Form):
    reason = forms.CharField(max_length=500)


@admin.register(Dashboard)
class DashboardAdmin(admin.ModelAdmin):
    def has_view_permission(self, request: HttpRequest, obj=None) -> bool:  # type: ignore[no-untyped-def]
        return request.user.has_perm(VIEW_PERMISSION)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:  # type: ignore[no-untyped-def]
        return False

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:  # type: ignore[no-untyped-def]
        return False

    def get_urls(self):  # type: ignore[no-untyped-def]
        view = self.admin_site.admin_view
        return [
            path("", view(self.dashboard_view), name="monitoring_dashboard_changelist"),
            path("alerts/<int:pk>/acknowledge/", view(require_POST(self.acknowledge_view)),
                 name="monitoring_dashboard_acknowledge"),
            path("alerts/<int:pk>/suspend/", view(require_POST(self.suspend_view)),
                 name="monitoring_dashboard_suspend"),
            path("integrations/<int:pk>/", view(self.integration_view),
                 name="monitoring_dashboard_integration"),
            path("integrations/<int:pk>/suspend/",
                 view(require_POST(self.integration_suspend_view)),
                 name="monitoring_dashboard_integration_suspend"),
        ]

    def _url(self) -> str:
        return reverse(f"{self.admin_site.name}:monitoring_dashboard_changelist")

    # --- the page ------------------------------------------------------------------------

    def dashboard_view(self, request: HttpRequest) -> HttpResponse:
        if not self.has_view_permission(request):
            raise PermissionDenied
        user = request.user
        alerts = list(open_alerts()[:OPEN_ALERTS_SHOWN])
        can_suspend = user.has_perm(SUSPEND_PERMISSION)
        live_ids = selectors.active_integration_ids(
            {services.alert_integration_id(a) for a in alerts} - {None}
        )
        rows = [
            {"alert": a, "integration_id": services.alert_integration_id(a),
             "can_suspend": can_suspend and services.alert_integration_id(a) in live_ids}
            for a in alerts
        ]
        activity = [
            {"series": s, "spark": svg.sparkline(s.requests, label=f"{s.name}: requests per day"),
             "records": sum(s.records), "users_peak": max(s.users or [0])}
            for s in selectors.activity_series()
        ]
        versions = selectors.roster_series()
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": "Monitoring",
            "subtitle": None,
            "summary": selectors.dashboard_summary(),
            "alert_rows": rows,
            "can_acknowledge": user.has_perm(ACKNOWLEDGE_PERMISSION),
            "activity": activity,
            "versions": list(reversed(versions))[:10],
            "roster_chart": svg.line_chart(
                [(f"v{t.number}", t.totals.get("users", 0)) for t in versions],
                label="Users per roster version",
            ),
            "role_mix": selectors.role_distribution(versions[-1] if versions else None),
            "disclosure_lookup_url": _disclosure_lookup_url(request),
            "service_levels": selectors.service_levels(),
            "target_hours": selectors.propagation_target_hours(),
        }
        return TemplateResponse(request, "admin/monitoring/dashboard.html", context)

    # --- levers --------------------------------------------------------------------------

    def acknowledge_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        if not request.user.has_perm(ACKNOWLEDGE_PERMISSION):
            raise PermissionDenied
        alert = get_object_or_404(Alert, pk=pk)
        if alert.state != AlertState.OPEN:
            self.message_user(request, f"Alert #{pk} is already {alert.state}.", messages.INFO)
            return HttpResponseRedirect(self._url())
        alert_acknowledge(alert=alert, actor=request.user)
        self.message_user(request, f"Alert #{pk} acknowledged and assigned to you.",
                          messages.SUCCESS)
        return HttpResponseRedirect(self._url())

    def suspend_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        if not request.user.has_perm(SUSPEND_PERMISSION):
            raise PermissionDenied
        alert = get_object_or_404(Alert, pk=pk)
        form = SuspendFromAlertForm(request.POST)
        if not form.is_valid():
            self.message_user(request, services.ERROR_REASON_REQUIRED, messages.ERROR)
            return HttpResponseRedirect(self._url())
        from apps.vendors.services import VendorServiceError

        try:
            integration = services.integration_suspend_from_alert(
                alert=alert, actor=request.user, reason=form.cleaned_data["reason"]
            )
        except (ValueError, VendorServiceError) as exc:
            self.message_user(request, str(exc), messages.ERROR)
            return HttpResponseRedirect(self._url())
        self.message_user(
            request,
            f"{integration.name} is suspended: every channel refuses it from its next request.",
            messages.SUCCESS,
        )
        return HttpResponseRedirect(self._url())

    # --- one integration -----------------------------------------------------------------

    def _integration_url(self, pk: int) -> str:
        return reverse(f"{self.admin_site.name}:monitoring_dashboard_integration", args=[pk])

    def integration_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        if not self.has_view_permission(request):
            raise PermissionDenied
        from apps.vendors.models import Integration

        integration = get_object_or_404(Integration.objects.select_related("vendor"), pk=pk)
        daily = selectors.integration_daily(pk)
        labels = dict(selectors.ACTIVITY_MEASURES)
        hours = selectors.integration_hours(pk)
        total = sum(v for _, v in hours) or 1
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": f"Activity: {integration.name}",
            "subtitle": None,
            "integration": integration,
            "charts": [
                {"label": labels[m], "svg": svg.line_chart(v, label=f"{labels[m]} per day"),
                 "total": sum(n for _, n in v)}
                for m, v in daily.items()
            ],
            "hours_chart": svg.bar_chart(
                hours, label="Requests by hour of day, last 14 days",
                highlight={i for i, (_, n) in enumerate(hours) if 0 < n / total < 0.01},
            ),
            "recent": selectors.integration_recent_access(pk),
            "alerts": selectors.integration_alerts(pk),
            "can_suspend": request.user.has_perm(SUSPEND_PERMISSION)
            and integration.status == "active",
            "can_acknowledge": request.user.has_perm(ACKNOWLEDGE_PERMISSION),
        }
        return TemplateResponse(request, "admin/monitoring/integration.html", context)

    def integration_suspend_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        if not request.user.has_perm(SUSPEND_PERMISSION):
            raise PermissionDenied
        from apps.vendors.models import Integration
        from apps.vendors.services import VendorServiceError, integration_suspend

        integration = get_object_or_404(Integration, pk=pk)
        form = SuspendFromAlertForm(request.POST)
        if not form.is_valid() or not form.cleaned_data["reason"].strip():
            self.message_user(request, services.ERROR_REASON_REQUIRED, messages.ERROR)
            return HttpResponseRedirect(self._integration_url(pk))
        try:
            integration_suspend(integration=integration, actor=request.user,
                                reason=form.cleaned_data["reason"])
        except VendorServiceError as exc:
            self.message_user(request, str(exc), messages.ERROR)
            return HttpResponseRedirect(self._integration_url(pk))
        self.message_user(
            request,
            f"{integration.name} is suspended: every channel refuses it from its next request.",
            messages.SUCCESS,
        )
        return HttpResponseRedirect(self._integration_url(pk))
