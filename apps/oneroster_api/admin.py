"""OneRoster REST credentials in the admin: who holds which client, its secrets (never their
digests), every token request, and the three levers: issue, rotate, revoke.

The levers are POSTs that call ``apps.oneroster_api.services`` and show its refusal as it is.
A new secret exists only in the response to the POST that made it: it is rendered straight
into a ``no-store`` page, never put in a message, the session or a redirect, so a reload or
the back button cannot show it again.
"""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import Count, Q
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html

from apps.oneroster_api import services as svc
from apps.oneroster_api.models import ClientSecret, OneRosterClient, TokenRequestRecord
from apps.vendors.models import Integration

PERMISSION_MANAGE = "oneroster_api.manage_credentials"


class _ReadOnly(admin.ModelAdmin):
    """Credential records change only through the services."""

    def has_add_permission(self, request, obj=None) -> bool:  # type: ignore[no-untyped-def]
        return False

    def has_change_permission(self, request, obj=None) -> bool:  # type: ignore[no-untyped-def]
        return False

    def has_delete_permission(self, request, obj=None) -> bool:  # type: ignore[no-untyped-def]
        return False


class RotateForm(forms.Form):
    overlap_hours = forms.IntegerField(
        min_value=0, max_value=svc.MAX_OVERLAP_HOURS, initial=svc.DEFAULT_OVERLAP_HOURS,
        help_text="How long the current secret keeps working, so the vendor can deploy the "
                  "new one. Any older secret stops now.")


class RevokeForm(forms.Form):
    reason = forms.CharField(widget=forms.Textarea(attrs={"rows": 3, "cols": 80}),
                             help_text="Kept in the audit log.")


@admin.register(OneRosterClient)
class OneRosterClientAdmin(_ReadOnly):
    list_display = ("integration", "vendor", "client_id", "issued_by", "issued_at",
                    "live_secrets", "revoked")
    list_select_related = ("integration__vendor", "application", "issued_by")
    list_filter = ("integration__environment", ("revoked_at", admin.EmptyFieldListFilter))
    search_fields = ("integration__name", "integration__vendor__name", "application__client_id")
    fields = ("integration", "client_id", "rate_limit_per_minute", "issued_at", "issued_by",
              "revoked_at", "revoked_by", "revoked_reason")
    readonly_fields = fields
    change_form_template = "admin/oneroster_api/onerosterclient/change_form.html"

    def get_queryset(self, request):  # type: ignore[no-untyped-def]
        now = timezone.now()
        live = Q(secrets__revoked_at__isnull=True) & (
            Q(secrets__expires_at__isnull=True) | Q(secrets__expires_at__gt=now))
        return super().get_queryset(request).annotate(n_live=Count("secrets", filter=live))

    @admin.display(description="Vendor", ordering="integration__vendor__name")
    def vendor(self, obj: OneRosterClient) -> str:
        return obj.integration.vendor.name

    @admin.display(description="Client id", ordering="application__client_id")
    def client_id(self, obj: OneRosterClient) -> str:
        return obj.client_id

    @admin.display(description="Live secrets", ordering="n_live")
    def live_secrets(self, obj: OneRosterClient) -> int:
        return obj.n_live

    @admin.display(description="Revoked", boolean=True, ordering="revoked_at")
    def revoked(self, obj: OneRosterClient) -> bool:
        return obj.revoked_at is not None

    # --- the levers ---------------------------------------------------------------------

    def has_manage_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm(PERMISSION_MANAGE)

    def get_urls(self):  # type: ignore[no-untyped-def]
        info = self.opts.app_label, self.opts.model_name
        view = self.admin_site.admin_view
        return [
            path("issue/<int:integration_id>/", view(self.issue_view),
                 name="{}_{}_issue".format(*info)),
            path("<int:pk>/rotate/", view(self.rotate_view), name="{}_{}_rotate".format(*info)),
            path("<int:pk>/revoke/", view(self.revoke_view), name="{}_{}_revoke".format(*info)),
            *super().get_urls(),
        ]

    def change_view(self, request, object_id, form_url="", extra_context=None):  # type: ignore[no-untyped-def]
        extra_context = {**(extra_context or {}),
                         "can_manage": self.has_manage_permission(request)}
        return super().change_view(request, object_id, form_url, extra_context)

    def _page(self, request: HttpRequest, template: str, **context) -> TemplateResponse:  # type: ignore[no-untyped-def]
        return TemplateResponse(request, f"admin/oneroster_api/onerosterclient/{template}", {
            **self.admin_site.each_context(request), "opts": self.opts, "subtitle": None,
            **context,
        })

    def _shown_once(self, request: HttpRequest, issued: svc.IssuedCredentials,
                    integration: Integration, what: str) -> HttpResponse:
        response = self._page(request, "credentials.html", title=what,
                              integration=integration, issued=issued)
        # The secret is in this body only: no browser or proxy may keep a copy.
        # (the admin's never_cache adds its own directives to this one).
        response["Cache-Control"] = "no-store"
        response["Pragma"] = "no-cache"
        return response

    def _refused(self, request: HttpRequest, error: Exception, url: str) -> HttpResponse:
        self.message_user(request, f"Refused: {error}", messages.ERROR)
        return HttpResponseRedirect(url)

    def _change_url(self, client: OneRosterClient) -> str:
        return reverse(f"{self.admin_site.name}:oneroster_api_onerosterclient_change",
                       args=[client.pk])

    def issue_view(self, request: HttpRequest, integration_id: int) -> HttpResponse:
        if not self.has_manage_permission(request):
            raise PermissionDenied
        integration = get_object_or_404(Integration.objects.select_related("vendor"),
                                        pk=integration_id)
        existing = OneRosterClient.objects.filter(integration=integration).first()
        if request.method == "POST":
            try:
                issued = svc.oauth_client_issue(integration=integration, actor=request.user)
            except svc.CredentialError as error:
                here = reverse(f"{self.admin_site.name}:oneroster_api_onerosterclient_issue",
                               args=[integration.pk])
                return self._refused(request, error, here)
            return self._shown_once(request, issued, integration,
                                    f"Credentials of {integration.name}")
        return self._page(request, "confirm.html", title=f"Issue credentials: {integration.name}",
                          integration=integration, existing=existing, action="issue")

    def rotate_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        if not self.has_manage_permission(request):
            raise PermissionDenied
        client = get_object_or_404(OneRosterClient.objects.select_related("integration"), pk=pk)
        form = RotateForm(request.POST if request.method == "POST" else None)
        if request.method == "POST" and form.is_valid():
            try:
                issued = svc.oauth_client_secret_rotate(
                    integration=client.integration, actor=request.user,
                    overlap_hours=form.cleaned_data["overlap_hours"])
            except svc.CredentialError as error:
                return self._refused(request, error, self._change_url(client))
            return self._shown_once(request, issued, client.integration,
                                    f"New secret of {client.integration.name}")
        return self._page(request, "confirm.html", title=f"Rotate secret: "
                          f"{client.integration.name}", integration=client.integration,
                          client=client, form=form, action="rotate")

    def revoke_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        if not self.has_manage_permission(request):
            raise PermissionDenied
        client = get_object_or_404(OneRosterClient.objects.select_related("integration"), pk=pk)
        form = RevokeForm(request.POST if request.method == "POST" else None)
        if request.method == "POST" and form.is_valid():
            try:
                tokens = svc.oauth_client_revoke(integration=client.integration,
                                                 actor=request.user,
                                                 reason=form.cleaned_data["reason"])
            except svc.CredentialError as error:
                return self._refused(request, error, self._change_url(client))
            self.message_user(request, f"The client of {client.integration.name} is revoked; "
                              f"{tokens} access token(s) stopped working.", messages.SUCCESS)
            return HttpResponseRedirect(self._change_url(client))
        return self._page(request, "confirm.html", title=f"Revoke: {client.integration.name}",
                          integration=client.integration, client=client, form=form,
                          action="revoke")


@admin.register(ClientSecret)
class ClientSecretAdmin(_ReadOnly):
    # The digest is never shown: with the hint it would narrow a guess for nothing.
    list_display = ("hint_text", "client", "created_at", "created_by", "expires_at",
                    "revoked_at", "is_live")
    list_select_related = ("client__integration", "created_by")
    search_fields = ("client__integration__name", "client__application__client_id")
    fields = ("client", "hint_text", "created_at", "created_by", "expires_at", "revoked_at")
    readonly_fields = fields

    @admin.display(description="Starts with")
    def hint_text(self, obj: ClientSecret) -> str:
        return format_html("<code>{}…</code>", obj.hint)

    @admin.display(description="Live", boolean=True)
    def is_live(self, obj: ClientSecret) -> bool:
        now = timezone.now()
        return obj.revoked_at is None and (obj.expires_at is None or obj.expires_at > now)


@admin.register(TokenRequestRecord)
class TokenRequestRecordAdmin(_ReadOnly):
    list_display = ("at", "client_id", "integration", "environment", "outcome", "error",
                    "granted_scopes")
    list_filter = ("outcome", "environment", "error")
    list_select_related = ("integration",)
    search_fields = ("client_id", "integration__name")
    date_hierarchy = "at"
    fields = ("at", "client_id", "integration", "environment", "outcome", "error",
              "requested_scopes", "granted_scopes", "remote_addr")
    readonly_fields = fields
