"""Read-only admin for the audit log, access records and the disclosure ledger.

Records are evidence: nobody adds, changes or deletes them here (the database refuses it for
the audit log anyway). Restricted details are shown only to holders of
``audit.view_restricted_details``; everyone else sees that there is something restricted.
"""

from __future__ import annotations

import json

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.html import format_html

from apps.audit.models import (
    AccessHourly,
    AccessRecord,
    AuditEvent,
    Disclosure,
    field_classes_from_mask,
)

RESTRICTED_PERMISSION = "audit.view_restricted_details"
RESTRICTED_PLACEHOLDER = "restricted"


def _pretty(value: dict) -> str:
    if not value:
        return "—"
    return format_html("<pre>{}</pre>", json.dumps(value, indent=2, sort_keys=True))


class ReadOnlyAdmin(admin.ModelAdmin):
    show_full_result_count = False  # no COUNT(*) over a large log on every page

    def has_add_permission(self, request: HttpRequest, obj=None) -> bool:  # type: ignore[no-untyped-def]
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:  # type: ignore[no-untyped-def]
        return False

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:  # type: ignore[no-untyped-def]
        return False


class ActorKindFilter(admin.SimpleListFilter):
    title = "actor"
    parameter_name = "actor"

    def lookups(self, request, model_admin):  # type: ignore[no-untyped-def]
        return [("staff", "Staff"), ("system", "System")]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        if self.value() == "staff":
            return queryset.filter(actor_id__isnull=False)
        if self.value() == "system":
            return queryset.filter(actor_id__isnull=True)
        return queryset


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyAdmin):
    list_display = ("occurred_at", "id", "actor", "action", "target")
    list_display_links = ("occurred_at", "id")
    list_filter = (ActorKindFilter, "action", "target_type")
    # Never the details: a search over restricted details would leak them by inference.
    search_fields = ("action", "actor_username", "target_type", "=target_id", "target_repr")
    date_hierarchy = "occurred_at"
    ordering = ("-id",)
    _fields_before = (
        "id",
        "occurred_at",
        "actor",
        "action",
        "target_type",
        "target_id",
        "target_repr",
        "details_shown",
    )
    _fields_after = ("prev_hash", "hash")

    def get_fields(self, request: HttpRequest, obj=None):  # type: ignore[no-untyped-def]
        restricted = (
            "restricted_details_shown"
            if request.user.has_perm(RESTRICTED_PERMISSION)
            else "restricted_details_hidden"
        )
        return (*self._fields_before, restricted, *self._fields_after)

    def get_readonly_fields(self, request: HttpRequest, obj=None):  # type: ignore[no-untyped-def]
        return self.get_fields(request, obj)

    @admin.display(description="Actor", ordering="actor_username")
    def actor(self, obj: AuditEvent) -> str:
        return obj.actor_display

    @admin.display(description="Target")
    def target(self, obj: AuditEvent) -> str:
        return obj.target_repr or obj.target_type or "—"

    @admin.display(description="Details")
    def details_shown(self, obj: AuditEvent) -> str:
        return _pretty(obj.details)

    @admin.display(description="Restricted details")
    def restricted_details_shown(self, obj: AuditEvent) -> str:
        return _pretty(obj.restricted_details)

    @admin.display(description="Restricted details")
    def restricted_details_hidden(self, obj: AuditEvent) -> str:
        return RESTRICTED_PLACEHOLDER if obj.restricted_details else "—"


@admin.register(AccessRecord)
class AccessRecordAdmin(ReadOnlyAdmin):
    list_display = (
        "occurred_at",
        "integration_id",
        "channel",
        "endpoint",
        "status_code",
        "records",
        "duration_ms",
        "client_id",
    )
    list_filter = ("channel", "status_code")
    search_fields = ("endpoint", "=client_id", "=integration_id")
    date_hierarchy = "occurred_at"


@admin.register(AccessHourly)
class AccessHourlyAdmin(ReadOnlyAdmin):
    list_display = (
        "hour",
        "integration_id",
        "channel",
        "endpoint",
        "requests",
        "errors",
        "records",
        "mean_duration_ms",
        "duration_ms_max",
    )
    list_filter = ("channel",)
    search_fields = ("endpoint", "=integration_id")
    date_hierarchy = "hour"


@admin.register(Disclosure)
class DisclosureAdmin(ReadOnlyAdmin):
    # sourcedIds are the roster's pseudonymous identifiers, not names, so they are shown.
    list_display = (
        "user_sourced_id",
        "vendor_id",
        "integration_id",
        "channel",
        "classes",
        "first_day",
        "last_day",
    )
    list_filter = ("channel",)
    search_fields = ("=user_sourced_id", "=vendor_id", "=integration_id")
    date_hierarchy = "last_day"

    @admin.display(description="Field classes")
    def classes(self, obj: Disclosure) -> str:
        return ", ".join(field_classes_from_mask(obj.field_classes))
