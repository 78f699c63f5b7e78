"""Admin for LTI tool registrations: the add form calls ``registration_create``; a change is
validated by the same rules and audited. Deployments are listed inline (ids are generated)."""

from __future__ import annotations

from django import forms
from django.contrib import admin

from apps.audit import audit
from apps.lti import services
from apps.lti.models import AgsLineItem, Deployment, ResourceLink, TokenRequest, ToolRegistration
from apps.lti.tool_keys import ToolKeyError, check_jwks_url, public_key_from_pem
from apps.vendors.models import Integration, IntegrationKind
from portal.forms import HTTPS_URL_FIELDS, https_formfield


class _LinesField(forms.CharField):
    """One URL per line, kept exactly as typed (trimmed)."""

    widget = forms.Textarea(attrs={"rows": 3, "cols": 80})

    def prepare_value(self, value):  # type: ignore[no-untyped-def]
        return "\n".join(value) if isinstance(value, list) else value

    def to_python(self, value):  # type: ignore[no-untyped-def]
        return [line.strip() for line in (value or "").splitlines() if line.strip()]


class ToolRegistrationForm(forms.ModelForm):
    redirect_uris = _LinesField(help_text="Exact redirect URIs, one per line (matched exactly).")
    target_link_uris = _LinesField(help_text="Target link URIs, one per line; the first is the "
                                             "default launch URL.")

    class Meta:
        model = ToolRegistration
        fields = ["integration", "login_initiation_url", "redirect_uris", "target_link_uris",
                  "jwks_url", "public_key_pem", "custom"]
        formfield_callback = staticmethod(https_formfield)

    def __init__(self, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
        super().__init__(*args, **kwargs)
        if "integration" in self.fields:
            self.fields["integration"].queryset = Integration.objects.filter(
                kind=IntegrationKind.LTI_TOOL
            )

    def clean(self):  # type: ignore[no-untyped-def]
        data = super().clean()
        try:
            for url in data.get("redirect_uris") or []:
                services._check_url(url, "A redirect URI")
            for url in data.get("target_link_uris") or []:
                services._check_url(url, "A target link URI")
            if data.get("login_initiation_url"):
                services._check_url(data["login_initiation_url"], "The login initiation URL")
        except services.RegistrationError as exc:
            raise forms.ValidationError(str(exc)) from None
        jwks_url = (data.get("jwks_url") or "").strip()
        pem = (data.get("public_key_pem") or "").strip()
        if bool(jwks_url) == bool(pem):
            raise forms.ValidationError(services.ERROR_KEY_SOURCE)
        try:
            if jwks_url:
                check_jwks_url(jwks_url)
                self.instance.public_key_kid = ""
            else:
                self.instance.public_key_kid = public_key_from_pem(pem)[1]
        except ToolKeyError as exc:
            raise forms.ValidationError(str(exc)) from None
        return data


class DeploymentInline(admin.TabularInline):
    model = Deployment
    extra = 0
    fields = ("deployment_id", "org_sourced_id", "label", "created_at")
    readonly_fields = ("deployment_id", "created_at")


@admin.register(ToolRegistration)
class ToolRegistrationAdmin(admin.ModelAdmin):
    form = ToolRegistrationForm
    formfield_overrides = HTTPS_URL_FIELDS
    list_display = ("integration", "vendor", "client_id", "key_source", "deployments_count",
                    "created_at")
    list_select_related = ("integration__vendor",)
    search_fields = ("integration__name", "integration__vendor__name", "client_id")
    readonly_fields = ("client_id", "public_key_kid", "created_at", "updated_at")
    inlines = [DeploymentInline]

    @admin.display(description="vendor")
    def vendor(self, obj: ToolRegistration) -> str:
        return obj.integration.vendor.name

    @admin.display(description="keys")
    def key_source(self, obj: ToolRegistration) -> str:
        return "JWKS URL" if obj.jwks_url else f"pasted key {obj.public_key_kid[:12]}…"

    @admin.display(description="deployments")
    def deployments_count(self, obj: ToolRegistration) -> int:
        return obj.deployments.count()

    def get_readonly_fields(self, request, obj=None):  # type: ignore[no-untyped-def]
        fields = list(super().get_readonly_fields(request, obj))
        return fields + (["integration"] if obj is not None else [])

    def save_model(self, request, obj, form, change):  # type: ignore[no-untyped-def]
        data = form.cleaned_data
        if not change:
            created = services.registration_create(
                integration=data["integration"],
                login_initiation_url=data["login_initiation_url"],
                redirect_uris=data["redirect_uris"], target_link_uris=data["target_link_uris"],
                jwks_url=data.get("jwks_url") or "",
                public_key_pem=data.get("public_key_pem") or "",
                actor=request.user,
            )
            obj.pk = created.pk
            obj.client_id = created.client_id
            obj._state.adding = False
            if data.get("custom"):
                ToolRegistration.objects.filter(pk=created.pk).update(custom=data["custom"])
            return
        obj._history_user = request.user
        super().save_model(request, obj, form, change)
        audit.record(actor=request.user, action="lti.registration_changed", target=obj,
                     details={"client_id": obj.client_id, "changed": form.changed_data})

    def save_related(self, request, form, formsets, change):  # type: ignore[no-untyped-def]
        # The add path created the default deployment in the service already.
        super().save_related(request, form, formsets, change)


@admin.register(ResourceLink)
class ResourceLinkAdmin(admin.ModelAdmin):
    formfield_overrides = HTTPS_URL_FIELDS
    list_display = ("title", "registration", "class_sourced_id", "origin", "created_at")
    list_filter = ("origin",)
    list_select_related = ("registration__integration",)
    search_fields = ("title", "class_sourced_id", "registration__client_id")
    readonly_fields = [f.name for f in ResourceLink._meta.fields]

    def has_add_permission(self, request) -> bool:  # type: ignore[no-untyped-def]
        return False


class _ReadOnly(admin.ModelAdmin):
    """Records the services write; staff read them, nobody edits them here."""

    formfield_overrides = HTTPS_URL_FIELDS

    def has_add_permission(self, request) -> bool:  # type: ignore[no-untyped-def]
        return False

    def has_change_permission(self, request, obj=None) -> bool:  # type: ignore[no-untyped-def]
        return False

    def has_delete_permission(self, request, obj=None) -> bool:  # type: ignore[no-untyped-def]
        return False


@admin.register(TokenRequest)
class TokenRequestAdmin(_ReadOnly):
    """Every request to /lti/token: who asked for which scopes, and why a refusal was one."""

    list_display = ("at", "client_id", "registration", "outcome", "error", "reason")
    list_filter = ("outcome", "error")
    list_select_related = ("registration__integration",)
    search_fields = ("client_id", "reason")
    date_hierarchy = "at"
    readonly_fields = ("at", "client_id", "registration", "outcome", "error", "reason",
                       "scopes_requested", "scopes_granted")
    exclude = ("token",)


@admin.register(AgsLineItem)
class AgsLineItemAdmin(_ReadOnly):
    list_display = ("label", "context", "tag", "resource_id", "score_maximum", "created_at")
    list_select_related = ("context__deployment",)
    search_fields = ("label", "tag", "resource_id", "context__class_sourced_id")
    readonly_fields = [f.name for f in AgsLineItem._meta.fields]
