"""Admin of the monitoring app: rules and channels staff tune, telemetry they read, and the
dashboard (``admin_dashboard.py``)."""

from __future__ import annotations

from django import forms
from django.contrib import admin
from django.http import HttpRequest

from apps.monitoring import (
    admin_dashboard,  # noqa: F401  (registers the dashboard page)
    services,
)
from apps.monitoring.models import (
    AlertChannel,
    AlertNotification,
    IntegrationActivity,
    MonitoringRule,
    RosterCount,
    RosterVersionTelemetry,
)


class _ReadOnly(admin.ModelAdmin):
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:  # type: ignore[no-untyped-def]
        return False

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:  # type: ignore[no-untyped-def]
        return False


@admin.register(MonitoringRule)
class MonitoringRuleAdmin(admin.ModelAdmin):
    list_display = ("key", "enabled", "severity", "threshold", "window_hours", "min_volume",
                    "last_run_at", "last_fired", "last_error")
    list_editable = ("enabled", "severity", "threshold", "window_hours", "min_volume")
    list_filter = ("enabled", "severity")
    readonly_fields = ("key", "help", "last_run_at", "last_fired", "last_error")
    fields = ("key", "help", "enabled", "severity", "threshold", "window_hours", "min_volume",
              "last_run_at", "last_fired", "last_error")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # rules are defined in code; their thresholds are tuned here

    def save_model(self, request, obj, form, change) -> None:  # type: ignore[no-untyped-def]
        services.monitoring_rule_save(rule=obj, actor=request.user, changed=form.changed_data)

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:  # type: ignore[no-untyped-def]
        return False


class AlertChannelForm(forms.ModelForm):
    """The webhook secret is write-only: never shown again, kept when left blank."""

    secret = forms.CharField(
        required=False, widget=forms.PasswordInput(render_value=False),
        help_text="Webhook only. Leave blank to keep the current secret.",
    )

    class Meta:
        model = AlertChannel
        fields = ("name", "kind", "target", "secret", "min_severity", "max_per_run",
                  "daily_digest", "enabled")

    def clean_secret(self) -> str:
        return self.cleaned_data["secret"] or (self.instance.secret if self.instance.pk else "")

    def clean(self) -> dict:
        data = super().clean()
        if data.get("kind") == "webhook" and not data.get("secret"):
            self.add_error("secret", "A webhook needs a secret to sign its requests.")
        elif "secret" in data:
            self.instance.secret = data["secret"]  # wrapped by the master key on the way in
        return data


@admin.register(AlertChannel)
class AlertChannelAdmin(admin.ModelAdmin):
    form = AlertChannelForm

    def save_model(self, request, obj, form, change) -> None:  # type: ignore[no-untyped-def]
        changed = [f for f in form.changed_data if f != "secret" or form.data.get("secret")]
        services.alert_channel_save(channel=obj, actor=request.user, changed=changed)

    list_display = ("name", "kind", "min_severity", "max_per_run", "daily_digest",
                    "digest_sent_at", "enabled")
    list_filter = ("kind", "enabled", "min_severity")
    search_fields = ("name",)


@admin.register(AlertNotification)
class AlertNotificationAdmin(_ReadOnly):
    list_display = ("attempted_at", "channel", "alert", "delivered", "digest", "status_code",
                    "error")
    list_filter = ("delivered", "digest", "channel")
    list_select_related = ("channel", "alert")


class RosterCountInline(admin.TabularInline):
    model = RosterCount
    fields = ("kind", "entity", "org_sourced_id", "role", "count")
    readonly_fields = fields
    extra = 0
    can_delete = False
    max_num = 0


@admin.register(RosterVersionTelemetry)
class RosterVersionTelemetryAdmin(_ReadOnly):
    list_display = ("number", "source_name", "kind", "applied_at", "added", "updated", "deleted",
                    "users_total")
    list_filter = ("source_name", "kind")
    inlines = [RosterCountInline]

    @admin.display(description="Users")
    def users_total(self, obj: RosterVersionTelemetry) -> int:
        return int(obj.totals.get("users", 0))


@admin.register(IntegrationActivity)
class IntegrationActivityAdmin(_ReadOnly):
    list_display = ("day", "integration_id", "requests", "errors", "records", "users_disclosed",
                    "token_grants", "token_failures", "launches", "nrps_calls", "score_posts",
                    "deliveries", "delivery_failures")
    list_filter = ("day",)
    date_hierarchy = "day"
