"""Read-only admin for keys: states and dates, never private material."""

from __future__ import annotations

from django.contrib import admin, messages
from django.http import HttpRequest
from simple_history.admin import SimpleHistoryAdmin

from apps.keys import services
from apps.keys.models import DataKey, SigningKey

ROTATE_PERMISSION = "keys.change_signingkey"


class _ReadOnly:
    def has_add_permission(self, request: HttpRequest, obj=None) -> bool:  # type: ignore[no-untyped-def]
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:  # type: ignore[no-untyped-def]
        return False

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:  # type: ignore[no-untyped-def]
        return False


@admin.register(SigningKey)
class SigningKeyAdmin(_ReadOnly, SimpleHistoryAdmin):
    list_display = (
        "kid",
        "purpose",
        "state",
        "key_size",
        "created_at",
        "activated_at",
        "retired_at",
        "revoked_at",
    )
    list_filter = ("purpose", "state")
    search_fields = ("kid",)
    ordering = ("purpose", "-created_at")
    fields = (
        "kid",
        "purpose",
        "state",
        "algorithm",
        "key_size",
        "master_key_id",
        "public_key_pem",
        "created_at",
        "activated_at",
        "retired_at",
        "revoked_at",
        "revoked_reason",
    )
    readonly_fields = fields
    actions = ("rotate_now",)

    def has_rotate_permission(self, request: HttpRequest) -> bool:
        return request.user.is_superuser or request.user.has_perm(ROTATE_PERMISSION)

    @admin.action(
        description="Rotate now (next becomes active, active retires)", permissions=["rotate"]
    )
    def rotate_now(self, request: HttpRequest, queryset) -> None:  # type: ignore[no-untyped-def]
        for purpose in sorted(set(queryset.values_list("purpose", flat=True))):
            active = services.signing_keys_rotate(purpose=purpose, actor=request.user)
            self.message_user(
                request,
                f"Rotated {purpose} keys: {active.kid} is now active.",
                level=messages.SUCCESS,
            )


@admin.register(DataKey)
class DataKeyAdmin(_ReadOnly, admin.ModelAdmin):
    list_display = ("id", "purpose", "master_key_id", "created_at", "destroyed_at")
    list_filter = ("purpose", ("destroyed_at", admin.EmptyFieldListFilter))
    search_fields = ("=id",)
    ordering = ("-created_at",)
    fields = ("id", "purpose", "master_key_id", "created_at", "destroyed_at")
    readonly_fields = fields
    show_full_result_count = False  # one row per encrypted file: avoid COUNT(*) on every page
