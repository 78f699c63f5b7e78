"""Admin for exclusions and overrides: the safeguarding officers' pages.

Only holders of ``governance.view_exclusion`` / ``view_override`` (the safeguarding role)
can open these pages at all, their history included; everybody else meets a 403. Records
are created and ended through the services (``exclusion_create``, ``exclusion_lift``,
``override_create``, ``override_end``), never edited in place, so every decision is audited
and the history stays truthful.
"""

from __future__ import annotations

import datetime as dt

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.db.models import Q, Sum
from django.http import HttpRequest
from django.utils import timezone
from django.utils.html import format_html
from simple_history.admin import SimpleHistoryAdmin

from apps.governance.models import Exclusion, ExclusionScope, Override
from apps.governance.services import exclusions as services
from apps.roster.models import User as RosterUser

ENDING_SOON_DAYS = services.REMINDER_DAYS


class StateFilter(admin.SimpleListFilter):
    """The officers' queues: in force, ending soon (review these), and the past."""

    title = "state"
    parameter_name = "state"

    def lookups(self, request, model_admin):  # type: ignore[no-untyped-def]
        return (
            ("active", "In force"),
            ("ending", f"Ending within {ENDING_SOON_DAYS} days"),
            ("ended", "Expired or lifted"),
        )

    def queryset(self, request, queryset):  # type: ignore[no-untyped-def]
        now = timezone.now()
        if self.value() == "active":
            return queryset.active(now)
        if self.value() == "ending":
            horizon = now + dt.timedelta(days=ENDING_SOON_DAYS)
            return queryset.active(now).filter(ends_at__lte=horizon)
        if self.value() == "ended":
            ended = "lifted_at" if queryset.model is Exclusion else "ended_at"
            return queryset.filter(Q(ends_at__lte=now) | Q(**{f"{ended}__lte": now}))
        return queryset


def _state_badge(state: str) -> str:
    css = {"active": "ok", "scheduled": "info", "expired": "info", "lifted": "warning",
           "ended": "warning"}.get(state, "info")
    return format_html('<span class="ix-badge ix-badge-{}">{}</span>', css, state)


def _roster_match(sourced_id: str) -> str:
    """For officers only: whether the sourcedId names a current roster user, and whom."""
    row = (
        RosterUser.objects.filter(sourced_id=sourced_id, valid_to_version__isnull=True)
        .values("given_name", "family_name").first()
    )
    if row is None:
        return "Not in the roster (yet): the exclusion applies from the first import."
    return f"{row['given_name']} {row['family_name']} (current roster user)"


# --------------------------------------------------------------------------------------------
# Exclusions
# --------------------------------------------------------------------------------------------


class ExclusionAddForm(forms.ModelForm):
    class Meta:
        model = Exclusion
        fields = ("user_sourced_id", "scope", "vendor", "integration", "reason_code", "note",
                  "ends_at")
        widgets = {
            "note": forms.Textarea(attrs={"rows": 3, "cols": 60}),
            "scope": forms.RadioSelect,
        }
        labels = {"ends_at": "Ends", "scope": "Withhold from"}
        help_texts = {
            "ends_at": "Mandatory, at most one year from now. The exclusion takes effect at "
                       "once and ends by itself at this moment; you are reminded "
                       f"{services.REMINDER_DAYS} days before.",
            "vendor": "Only when withholding from one vendor (all its integrations).",
            "integration": "Only when withholding from one integration.",
        }

    def __init__(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        super().__init__(*args, **kwargs)
        self.fields["scope"].choices = ExclusionScope.choices  # no blank radio
        self.fields["scope"].initial = ExclusionScope.ALL_VENDORS

    def clean(self):  # type: ignore[no-untyped-def]
        data = super().clean()
        try:
            self.cleaned_service_input = services.exclusion_clean(
                user_sourced_id=data.get("user_sourced_id", ""),
                scope=data.get("scope", ""),
                reason_code=data.get("reason_code", ""),
                ends_at=data.get("ends_at"),
                vendor=data.get("vendor"),
                integration=data.get("integration"),
            )
        except ValidationError as exc:
            field = {"scope_target": "scope", "too_long": "ends_at", "end_in_past": "ends_at",
                     "end_required": "ends_at"}.get(exc.code or "")
            self.add_error(field, exc)
        return data


class ExclusionLiftForm(forms.ModelForm):
    """The change page of an exclusion offers one thing: lifting it early, with a reason."""

    lift_reason_input = forms.CharField(
        label="Lift early: reason", required=False,
        widget=forms.Textarea(attrs={"rows": 3, "cols": 60}),
        help_text="Fill in only to lift the exclusion now. Recorded in the audit log "
                  "(visible to safeguarding officers only).",
    )

    class Meta:
        model = Exclusion
        fields = ()


@admin.register(Exclusion)
class ExclusionAdmin(SimpleHistoryAdmin):
    list_display = ("__str__", "user_sourced_id", "scope_display", "reason_code", "ends_on",
                    "state_badge", "withheld_records")
    list_filter = (StateFilter, "scope", "reason_code")
    search_fields = ("=user_sourced_id", "=id")
    list_select_related = ("vendor", "integration")
    ordering = ("ends_at",)
    readonly_fields = ("user_sourced_id", "roster_match", "scope", "vendor", "integration",
                       "reason_code", "note", "starts_at", "ends_at", "created_by", "created_at",
                       "lifted_at", "lifted_by", "lift_reason", "state_badge", "withheld_records")

    def get_queryset(self, request: HttpRequest):  # type: ignore[no-untyped-def]
        return super().get_queryset(request).annotate(withheld=Sum("hits__records"))

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:  # type: ignore[no-untyped-def]
        return False  # lifting is the way out, with a reason; the record stays

    def get_form(self, request, obj=None, change=False, **kwargs):  # type: ignore[no-untyped-def]
        kwargs["form"] = ExclusionLiftForm if obj is not None else ExclusionAddForm
        return super().get_form(request, obj, change=change, **kwargs)

    def get_fields(self, request, obj=None):  # type: ignore[no-untyped-def]
        if obj is None:
            return ExclusionAddForm.Meta.fields
        fields = list(self.readonly_fields)
        if obj.state in ("active", "scheduled"):
            fields.append("lift_reason_input")
        return fields

    def get_readonly_fields(self, request, obj=None):  # type: ignore[no-untyped-def]
        return self.readonly_fields if obj is not None else ()

    def save_model(self, request, obj, form, change):  # type: ignore[no-untyped-def]
        if not change:
            created = services.exclusion_create(
                actor=request.user, note=form.cleaned_data.get("note", ""),
                **{k: v for k, v in form.cleaned_service_input.items() if k != "starts_at"},
            )
            obj.pk = created.pk
            return
        reason = form.cleaned_data.get("lift_reason_input", "").strip()
        if reason:
            try:
                services.exclusion_lift(exclusion=obj, actor=request.user, reason=reason)
            except ValidationError as exc:
                self.message_user(request, "; ".join(exc.messages), messages.ERROR)
            else:
                self.message_user(request, f"{obj} lifted.", messages.SUCCESS)

    def save_related(self, request, form, formsets, change):  # type: ignore[no-untyped-def]
        pass  # no related objects; the service saved everything

    @admin.display(description="Applies to")
    def scope_display(self, obj: Exclusion) -> str:
        return obj.scope_label()

    @admin.display(description="Ends", ordering="ends_at")
    def ends_on(self, obj: Exclusion) -> str:
        return timezone.localtime(obj.ends_at).strftime("%-d %b %Y")

    @admin.display(description="State")
    def state_badge(self, obj: Exclusion) -> str:
        return _state_badge(obj.state)

    @admin.display(description="Withheld", ordering="withheld")
    def withheld_records(self, obj: Exclusion) -> int:
        return getattr(obj, "withheld", None) or 0

    @admin.display(description="Roster")
    def roster_match(self, obj: Exclusion) -> str:
        return _roster_match(obj.user_sourced_id)


# --------------------------------------------------------------------------------------------
# Overrides
# --------------------------------------------------------------------------------------------


class OverrideAddForm(forms.ModelForm):
    class Meta:
        model = Override
        fields = ("kind", "user_sourced_id", "given_name", "middle_name", "family_name",
                  "class_sourced_id", "role", "reason", "owner", "ends_at")
        widgets = {"reason": forms.Textarea(attrs={"rows": 3, "cols": 60})}

    def __init__(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        super().__init__(*args, **kwargs)
        if "owner" in self.fields:
            self.fields["owner"].required = False
            self.fields["owner"].help_text = "Accountable member of staff (default: you)."

    def clean(self):  # type: ignore[no-untyped-def]
        data = super().clean()
        try:
            self.cleaned_service_input = services.override_clean(
                kind=data.get("kind", ""),
                user_sourced_id=data.get("user_sourced_id", ""),
                reason=data.get("reason", ""),
                ends_at=data.get("ends_at"),
                class_sourced_id=data.get("class_sourced_id", ""),
                role=data.get("role", ""),
                given_name=data.get("given_name", ""),
                middle_name=data.get("middle_name", ""),
                family_name=data.get("family_name", ""),
            )
        except ValidationError as exc:
            self.add_error(None, exc)
        return data


class OverrideEndForm(forms.ModelForm):
    end_reason_input = forms.CharField(
        label="End early: reason", required=False,
        widget=forms.Textarea(attrs={"rows": 3, "cols": 60}),
        help_text="Fill in only to stop applying the override now.",
    )

    class Meta:
        model = Override
        fields = ()


@admin.register(Override)
class OverrideAdmin(SimpleHistoryAdmin):
    list_display = ("__str__", "user_sourced_id", "kind", "owner", "ends_at", "state_badge")
    list_filter = (StateFilter, "kind")
    search_fields = ("=user_sourced_id", "=id")
    list_select_related = ("owner",)
    ordering = ("ends_at",)
    readonly_fields = ("kind", "user_sourced_id", "given_name", "middle_name", "family_name",
                       "class_sourced_id", "role", "reason", "owner", "starts_at", "ends_at",
                       "created_by", "created_at", "ended_at", "ended_by", "end_reason",
                       "state_badge")

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:  # type: ignore[no-untyped-def]
        return False

    def get_form(self, request, obj=None, change=False, **kwargs):  # type: ignore[no-untyped-def]
        kwargs["form"] = OverrideEndForm if obj is not None else OverrideAddForm
        return super().get_form(request, obj, change=change, **kwargs)

    def get_fields(self, request, obj=None):  # type: ignore[no-untyped-def]
        if obj is None:
            return OverrideAddForm.Meta.fields
        fields = list(self.readonly_fields)
        if obj.is_active() or obj.starts_at > timezone.now():
            fields.append("end_reason_input")
        return fields

    def get_readonly_fields(self, request, obj=None):  # type: ignore[no-untyped-def]
        return self.readonly_fields if obj is not None else ()

    def save_model(self, request, obj, form, change):  # type: ignore[no-untyped-def]
        if not change:
            created = services.override_create(
                actor=request.user, owner=form.cleaned_data.get("owner"),
                **{k: v for k, v in form.cleaned_service_input.items() if k != "starts_at"},
            )
            obj.pk = created.pk
            return
        reason = form.cleaned_data.get("end_reason_input", "").strip()
        if reason:
            try:
                services.override_end(override=obj, actor=request.user, reason=reason)
            except ValidationError as exc:
                self.message_user(request, "; ".join(exc.messages), messages.ERROR)
            else:
                self.message_user(request, f"{obj} ended.", messages.SUCCESS)

    def save_related(self, request, form, formsets, change):  # type: ignore[no-untyped-def]
        pass

    @admin.display(description="State")
    def state_badge(self, obj: Override) -> str:
        now = timezone.now()
        if obj.ended_at is not None and obj.ended_at <= now:
            return _state_badge("ended")
        if obj.ends_at <= now:
            return _state_badge("expired")
        if obj.starts_at > now:
            return _state_badge("scheduled")
        return _state_badge("active")


__all__ = ["ExclusionAdmin", "OverrideAdmin"]
