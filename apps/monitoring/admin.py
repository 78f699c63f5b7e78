"""Admin of the monitoring app: rules and channels staff tune, telemetry they read, and the
dashboard (``admin_dashboard.py``)."""

from __future__ import annotations

from django.contrib import admin
from django.http import HttpRequest

from apps.monitoring import admin_dashboard  # noqa: F401  (registers the dashboard page)
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

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:  # type: ignore[no-untyped-def]
        return False


@admin.register(AlertChannel)
class AlertChannelAdmin(admin.ModelAdmin):
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
