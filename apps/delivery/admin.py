"""Delivery admin: every destination's state, last delivered version, lag and history.

Runs, bundles, links and pickups are read-only records; actions call services (replay a
run, deliver now, pause, resume, roll back). A failing destination is shown red in its own
row, so one destination's failure never hides behind another's success.
"""

from __future__ import annotations

from django.contrib import admin, messages
from django.db import transaction
from django.utils.html import format_html

from apps.audit import audit
from apps.delivery import selectors, services, sources, tasks
from apps.delivery.models import (
    Bundle,
    DeliveryRun,
    Destination,
    DownloadLink,
    RunReason,
    RunState,
    SisSource,
    SourcePickup,
)
from apps.delivery.sources import sis_source_poll
from apps.roster.selectors import version_latest_number
from portal.forms import HTTPS_URL_FIELDS

_COLOURS = {RunState.FAILED: "#b00020", RunState.DELIVERED: "#1b5e20",
            RunState.SKIPPED: "#8a6d00"}


class _ReadOnly(admin.ModelAdmin):
    def has_add_permission(self, request) -> bool:  # type: ignore[no-untyped-def]
        return False

    def has_change_permission(self, request, obj=None) -> bool:  # type: ignore[no-untyped-def]
        return False

    def has_delete_permission(self, request, obj=None) -> bool:  # type: ignore[no-untyped-def]
        return False


def _state(state: str | None) -> str:
    if not state:
        return "-"
    return format_html('<strong style="color:{}">{}</strong>', _COLOURS.get(state, "inherit"),
                       state)


class RunInline(admin.TabularInline):
    model = DeliveryRun
    fields = ("created_at", "state", "reason", "mode", "version_from", "version_to",
              "attempts", "error_code")
    readonly_fields = fields
    extra = 0
    max_num = 0
    ordering = ("-created_at",)
    show_change_link = True


@admin.register(Destination)
class DestinationAdmin(admin.ModelAdmin):
    list_display = ("integration", "transport", "state", "last_delivered_version", "lag",
                    "last_run", "last_delivered_at")
    list_filter = ("transport", "state")
    search_fields = ("integration__name", "integration__vendor__name", "sftp_host")
    # Who receives what, and the trust anchors, change only through services (audited):
    # destination_create / destination_sftp_key_set (the delivery_destination command).
    readonly_fields = ("integration", "transport", "sftp_host", "sftp_port", "sftp_username",
                       "sftp_host_key", "sftp_public_key", "last_delivered_version",
                       "last_delivered_at", "state", "state_reason", "created_at",
                       "updated_at")
    exclude = ("sftp_private_key_wrapped", "sftp_private_key_master_key_id")
    actions = ("deliver_now", "deliver_bulk_now", "issue_link", "pause", "resume")
    inlines = (RunInline,)

    def get_queryset(self, request):  # type: ignore[no-untyped-def]
        self._latest = version_latest_number()
        return selectors.destinations_overview()

    def save_model(self, request, obj, form, change) -> None:  # type: ignore[no-untyped-def]
        super().save_model(request, obj, form, change)
        if change and form.changed_data:
            audit.record(actor=request.user, action="delivery.destination_changed", target=obj,
                         details={f: str(form.cleaned_data.get(f)) for f in form.changed_data})

    @admin.display(description="lag (versions)")
    def lag(self, obj: Destination) -> str:
        lag = selectors.destination_lag(obj, getattr(self, "_latest", 0))
        return "never delivered" if lag is None else str(lag)

    @admin.display(description="last run")
    def last_run(self, obj: Destination) -> str:
        return _state(getattr(obj, "last_run_state", None))

    def has_add_permission(self, request) -> bool:  # type: ignore[no-untyped-def]
        return False  # destinations are created with their key (destination_create / CLI)

    def _enqueue(self, request, queryset, *, bulk: bool) -> None:  # type: ignore[no-untyped-def]
        for destination in queryset:
            run, _ = services.delivery_run_enqueue(
                destination=destination, reason=RunReason.MANUAL, force_bulk=bulk,
                actor=request.user)
            transaction.on_commit(lambda d=destination.pk: tasks.destination_drain.delay(d))
        self.message_user(request, f"Delivery queued for {queryset.count()} destination(s).")

    @admin.action(description="Deliver now (delta since last delivered)",
                  permissions=["operate"])
    def deliver_now(self, request, queryset):  # type: ignore[no-untyped-def]
        self._enqueue(request, queryset, bulk=False)

    @admin.action(description="Deliver a full bulk now", permissions=["operate"])
    def deliver_bulk_now(self, request, queryset):  # type: ignore[no-untyped-def]
        self._enqueue(request, queryset, bulk=True)

    @admin.action(description="Issue a new download link (shown once)",
                  permissions=["operate"])
    def issue_link(self, request, queryset):  # type: ignore[no-untyped-def]
        for destination in queryset:
            try:
                link, url = services.download_link_issue(
                    destination=destination, actor=request.user,
                    base_url=request.build_absolute_uri("/").rstrip("/"))
            except services.DeliveryError as exc:
                self.message_user(request, f"{destination.integration}: {exc}", messages.ERROR)
                continue
            self.message_user(request, f"{destination.integration}: {url} (expires "
                                       f"{link.expires_at:%Y-%m-%d %H:%M} UTC; shown once)")

    @admin.action(description="Pause", permissions=["operate"])
    def pause(self, request, queryset):  # type: ignore[no-untyped-def]
        for destination in queryset:
            services.destination_pause(destination=destination, actor=request.user,
                                       reason="paused from the admin")
        self.message_user(request, "Paused.")

    @admin.action(description="Resume", permissions=["operate"])
    def resume(self, request, queryset):  # type: ignore[no-untyped-def]
        for destination in queryset:
            try:
                services.destination_resume(destination=destination, actor=request.user,
                                            reason="resumed from the admin")
                transaction.on_commit(
                    lambda d=destination.pk: tasks.destination_drain.delay(d))
            except services.DeliveryError as exc:
                self.message_user(request, str(exc), messages.ERROR)
        self.message_user(request, "Resumed.")

    def has_operate_permission(self, request) -> bool:  # type: ignore[no-untyped-def]
        return request.user.has_perm("delivery.operate_delivery")


@admin.register(DeliveryRun)
class DeliveryRunAdmin(_ReadOnly):
    list_display = ("id", "destination", "coloured_state", "reason", "mode", "version_from",
                    "version_to", "attempts", "error_code", "created_at", "finished_at")
    list_filter = ("state", "reason", "mode")
    list_select_related = ("destination__integration",)
    search_fields = ("destination__integration__name", "idempotency_key")
    actions = ("replay", "roll_back_to_this")

    @admin.display(description="state")
    def coloured_state(self, obj: DeliveryRun) -> str:
        return _state(obj.state)

    @admin.action(description="Replay (same bundle, same remote name)",
                  permissions=["operate"])
    def replay(self, request, queryset):  # type: ignore[no-untyped-def]
        for run in queryset:
            try:
                services.delivery_run_replay(run=run, actor=request.user)
            except services.DeliveryError as exc:
                self.message_user(request, f"run {run.pk}: {exc}", messages.ERROR)
                continue
            transaction.on_commit(lambda d=run.destination_id: tasks.destination_drain.delay(d))
        self.message_user(request, "Replay queued.")

    @admin.action(description="Roll the destination back to this run's version (its bulk)",
                  permissions=["operate"])
    def roll_back_to_this(self, request, queryset):  # type: ignore[no-untyped-def]
        for run in queryset.select_related("destination"):
            if run.version_to is None:
                self.message_user(request, f"run {run.pk} delivered no version", messages.ERROR)
                continue
            try:
                services.destination_rollback(destination=run.destination,
                                              to_version=run.version_to, actor=request.user)
            except services.DeliveryError as exc:
                self.message_user(request, f"run {run.pk}: {exc}", messages.ERROR)
                continue
            transaction.on_commit(lambda d=run.destination_id: tasks.destination_drain.delay(d))
            self.message_user(request, f"Rolling {run.destination} back to v{run.version_to}.")

    def has_operate_permission(self, request) -> bool:  # type: ignore[no-untyped-def]
        return request.user.has_perm("delivery.operate_delivery")


@admin.register(Bundle)
class BundleAdmin(_ReadOnly):
    list_display = ("id", "destination", "mode", "version_from", "version_to", "size_bytes",
                    "created_at", "purged_at")
    list_filter = ("mode",)
    list_select_related = ("destination__integration",)
    exclude = ("path",)


@admin.register(DownloadLink)
class DownloadLinkAdmin(_ReadOnly):
    list_display = ("id", "destination", "bundle", "expires_at", "single_use", "downloads",
                    "used_at", "revoked_at")
    list_select_related = ("destination__integration", "bundle")
    exclude = ("token_sha256",)


@admin.register(SisSource)
class SisSourceAdmin(admin.ModelAdmin):
    list_display = ("name", "transport", "roster_source", "enabled", "interval_minutes",
                    "last_polled_at")
    list_filter = ("transport", "enabled")
    search_fields = ("name",)
    exclude = ("sftp_private_key_wrapped", "sftp_private_key_master_key_id",
               "rest_client_secret_wrapped", "rest_client_secret_master_key_id")
    formfield_overrides = HTTPS_URL_FIELDS

    actions = ("poll_now",)

    def has_add_permission(self, request) -> bool:  # type: ignore[no-untyped-def]
        return False  # created with their secret (sis_source_create)

    @admin.action(description="Pull from the SIS now", permissions=["operate"])
    def poll_now(self, request, queryset):  # type: ignore[no-untyped-def]
        for source in queryset:
            try:
                runs = sis_source_poll(source=source)
            except sources.SOURCE_ERRORS as exc:
                self.message_user(request, f"{source}: {exc}", messages.ERROR)
                continue
            self.message_user(request, f"{source}: {len(runs)} new import run(s).")

    def has_operate_permission(self, request) -> bool:  # type: ignore[no-untyped-def]
        return request.user.has_perm("delivery.operate_delivery")


@admin.register(SourcePickup)
class SourcePickupAdmin(_ReadOnly):
    list_display = ("sis_source", "file_name", "size_bytes", "sha256", "import_run",
                    "created_at")
    list_select_related = ("sis_source", "import_run")
