"""The "effective access" page per integration, and its "suspend now" lever.

What the page shows is computed by the release policy itself (``release_for``), so it
cannot drift from what the spokes actually send: services and scopes, the approved
columns per entity (with their data class), the orgs in scope, how many users are visible
and how many are withheld by exclusions. Counts only: nobody sees here *who* is withheld;
safeguarding officers get links to the exclusions themselves, which only they can open.
"""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html

from apps.governance.models import IntegrationAccess
from apps.governance.release import release_for
from apps.roster.models import Org

SUSPEND_PERMISSION = "governance.suspend_integration"
# Orgs listed by name on the page; beyond this the page says how many more.
ORGS_LISTED = 25


class SuspendForm(forms.Form):
    reason = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 2, "cols": 60}),
        help_text="Why the integration is stopped. Recorded in the audit log; every channel "
                  "refuses it from its next request or run.",
    )


@admin.register(IntegrationAccess)
class IntegrationAccessAdmin(admin.ModelAdmin):
    list_display = ("name", "vendor", "kind", "environment", "status_badge", "pseudonymised",
                    "access_link")
    list_filter = ("status", "kind", "pseudonymised")
    search_fields = ("name", "vendor__name")
    list_select_related = ("vendor",)
    ordering = ("vendor__name", "name")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:  # type: ignore[no-untyped-def]
        return False

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:  # type: ignore[no-untyped-def]
        return False

    def has_suspend_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm(SUSPEND_PERMISSION)

    def get_urls(self):  # type: ignore[no-untyped-def]
        info = self.opts.app_label, self.opts.model_name
        return [
            path("<int:pk>/access/", self.admin_site.admin_view(self.access_view),
                 name="{}_{}_access".format(*info)),
            path("<int:pk>/suspend/", self.admin_site.admin_view(self.suspend_view),
                 name="{}_{}_suspend".format(*info)),
            *super().get_urls(),
        ]

    def change_view(self, request, object_id, form_url="", extra_context=None):  # type: ignore[no-untyped-def]
        # The page of an integration here *is* its effective access.
        return HttpResponseRedirect(self._access_url(int(object_id)))

    def _access_url(self, pk: int) -> str:
        return reverse(
            f"{self.admin_site.name}:governance_integrationaccess_access", args=[pk]
        )

    @admin.display(description="Status", ordering="status")
    def status_badge(self, obj: IntegrationAccess) -> str:
        css = {"active": "ok", "suspended": "critical", "offboarding": "warning"}.get(
            obj.status, "info"
        )
        return format_html('<span class="ix-badge ix-badge-{}">{}</span>', css,
                           obj.get_status_display())

    @admin.display(description="")
    def access_link(self, obj: IntegrationAccess) -> str:
        return format_html('<a href="{}">Effective access</a>', self._access_url(obj.pk))

    # --- the page ------------------------------------------------------------------------

    def access_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        if not self.has_view_permission(request):
            raise PermissionDenied
        integration = get_object_or_404(IntegrationAccess.objects.select_related("vendor"), pk=pk)
        release = release_for(integration)
        officer = request.user.has_perm("governance.view_exclusion")
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": f"Effective access: {integration.name}",
            "subtitle": None,
            "integration": integration,
            "release": release,
            "services": sorted(release.services),
            "scopes": sorted(release.scopes),
            "claims": sorted(release.claims),
            "entities": _entity_rows(release),
            "orgs": _org_rows(release),
            "org_count": len(release.org_sourced_ids),
            "users_visible": release.visible_user_count(),
            "users_withheld": release.withheld_user_count(),
            "exclusion_ids": sorted(release.exclusions) if officer else [],
            "exclusions_in_force": len(release.exclusions),
            "overrides_in_force": len(release.overrides),
            "can_suspend": self.has_suspend_permission(request)
            and integration.status == "active",
            "suspend_form": SuspendForm(),
            "suspend_url": reverse(
                f"{self.admin_site.name}:governance_integrationaccess_suspend", args=[pk]
            ),
        }
        return TemplateResponse(request, "admin/governance/effective_access.html", context)

    def suspend_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        if request.method != "POST":
            return HttpResponseRedirect(self._access_url(pk))
        if not self.has_suspend_permission(request):
            raise PermissionDenied
        from apps.vendors.models import Integration
        from apps.vendors.services import VendorServiceError, integration_suspend

        integration = get_object_or_404(Integration, pk=pk)
        form = SuspendForm(request.POST)
        if not form.is_valid():
            self.message_user(request, "Say why the integration is suspended.", messages.ERROR)
            return HttpResponseRedirect(self._access_url(pk))
        try:
            integration_suspend(
                integration=integration, actor=request.user, reason=form.cleaned_data["reason"]
            )
        except VendorServiceError as exc:
            self.message_user(request, str(exc), messages.ERROR)
            return HttpResponseRedirect(self._access_url(pk))
        self.message_user(
            request,
            f"{integration.name} is suspended: every channel refuses it from its next request.",
            messages.SUCCESS,
        )
        return HttpResponseRedirect(self._access_url(pk))


def _entity_rows(release) -> list[dict]:  # type: ignore[no-untyped-def]
    """Per released entity: its data columns grouped by class, then its identifiers."""
    rows = []
    for entity, columns in release.projection.items():
        classes = release.column_classes.get(entity, {})
        by_class: dict[str, list[str]] = {}
        for column in columns:
            by_class.setdefault(classes.get(column, ""), []).append(column)
        identifiers = by_class.pop("identifier", [])
        rows.append({
            "entity": entity,
            "classes": sorted(by_class.items()),
            "identifiers": identifiers,
        })
    return rows


def _org_rows(release) -> list[dict]:  # type: ignore[no-untyped-def]
    if not release.org_sourced_ids:
        return []
    return list(
        Org.objects.filter(valid_to_version__isnull=True, sourced_id__in=release.org_sourced_ids)
        .order_by("type", "name").values("sourced_id", "name", "type")[:ORGS_LISTED]
    )
