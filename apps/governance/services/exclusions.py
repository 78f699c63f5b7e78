"""Exclusions and overrides: setting, lifting, ending, reminding, expiring.

Only safeguarding officers decide these (the ``governance.add_exclusion`` /
``governance.add_override`` permissions, held by the safeguarding role alone); the
services check it, so the admin, a command or a script share one rule.

Audit events name the record ("exclusion #12"), never the person: the person's sourcedId
and the reason code go into ``restricted_details``, which only safeguarding officers
see. The free-text note is never copied into the audit log (which is append-only and
could not be erased if the note ever had to be).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.urls import NoReverseMatch, reverse
from django.utils import timezone

from apps.alerts import alerts
from apps.audit import audit
from apps.governance.models import (
    Exclusion,
    ExclusionReason,
    ExclusionScope,
    Override,
    OverrideKind,
)

# Reminders go out this many days before an exclusion ends.
REMINDER_DAYS = 14
# A start this far in the past is refused: the record must say when it really began.
BACKDATE_TOLERANCE = dt.timedelta(minutes=5)

ERROR_NOT_ALLOWED = "Only safeguarding officers may set or change exclusions and overrides."
ERROR_USER_REQUIRED = "Give the person's roster sourcedId."
ERROR_END_REQUIRED = "An end date is mandatory."
ERROR_END_IN_PAST = "The end must be in the future."
ERROR_END_BEFORE_START = "The end must be after the start."
ERROR_TOO_LONG = "At most one year: the end may be no later than {latest}."
ERROR_BACKDATED = "The start cannot be in the past; an exclusion takes effect from now."
ERROR_SCOPE_TARGET = "Choose the vendor (one vendor) or the integration (one integration)."
ERROR_REASON_CODE = "Choose a reason code."
ERROR_LIFT_REASON = "Say why the exclusion is lifted early."
ERROR_NOT_IN_FORCE = "This exclusion is no longer in force (already lifted or expired)."
ERROR_OVERRIDE_REASON = "Say why the override is needed."
ERROR_OVERRIDE_FIELDS = {
    OverrideKind.PREFERRED_NAME: "A preferred name needs a given name and a family name.",
    OverrideKind.ROLE_CORRECTION: "A role correction needs the class and the corrected role.",
}
ERROR_OVERRIDE_KIND = "Choose what the override does."
ERROR_END_REASON = "Say why the override is ended early."
ERROR_OVERRIDE_NOT_IN_FORCE = "This override is no longer in force."

ALERT_RULE_ENDING = "governance.exclusion_ending"


def one_year_after(moment: dt.datetime) -> dt.datetime:
    """The same instant a calendar year later (29 February -> 28 February)."""
    try:
        return moment.replace(year=moment.year + 1)
    except ValueError:
        return moment.replace(year=moment.year + 1, day=28)


def _require(actor: Any, permission: str) -> None:
    if actor is None or not actor.has_perm(permission):
        raise PermissionDenied(ERROR_NOT_ALLOWED)


def _check_window(
    *, starts_at: dt.datetime, ends_at: dt.datetime | None, now: dt.datetime
) -> None:
    if ends_at is None:
        raise ValidationError(ERROR_END_REQUIRED, code="end_required")
    if starts_at < now - BACKDATE_TOLERANCE:
        raise ValidationError(ERROR_BACKDATED, code="backdated")
    if ends_at <= starts_at:
        raise ValidationError(ERROR_END_BEFORE_START, code="end_before_start")
    if ends_at <= now:
        raise ValidationError(ERROR_END_IN_PAST, code="end_in_past")
    latest = one_year_after(starts_at)
    if ends_at > latest:
        raise ValidationError(
            ERROR_TOO_LONG.format(latest=timezone.localtime(latest).date().isoformat()),
            code="too_long",
        )


# --------------------------------------------------------------------------------------------
# Exclusions
# --------------------------------------------------------------------------------------------


def exclusion_clean(
    *,
    user_sourced_id: str,
    scope: str,
    reason_code: str,
    ends_at: dt.datetime | None,
    vendor: Any = None,
    integration: Any = None,
    starts_at: dt.datetime | None = None,
) -> dict[str, Any]:
    """Check an exclusion's input and return it normalised (the admin form uses this too,
    so the form and the service refuse exactly the same things)."""
    now = timezone.now()
    starts_at = starts_at or now
    user_sourced_id = (user_sourced_id or "").strip()
    if not user_sourced_id:
        raise ValidationError(ERROR_USER_REQUIRED, code="user_required")
    if reason_code not in ExclusionReason.values:
        raise ValidationError(ERROR_REASON_CODE, code="reason_code")
    _check_window(starts_at=starts_at, ends_at=ends_at, now=now)
    if scope == ExclusionScope.ALL_VENDORS:
        vendor = integration = None
    elif scope == ExclusionScope.VENDOR:
        integration = None
        if vendor is None:
            raise ValidationError(ERROR_SCOPE_TARGET, code="scope_target")
    elif scope == ExclusionScope.INTEGRATION:
        vendor = None
        if integration is None:
            raise ValidationError(ERROR_SCOPE_TARGET, code="scope_target")
    else:
        raise ValidationError(ERROR_SCOPE_TARGET, code="scope_target")
    return {
        "user_sourced_id": user_sourced_id, "scope": scope, "reason_code": reason_code,
        "vendor": vendor, "integration": integration, "starts_at": starts_at,
        "ends_at": ends_at,
    }


@transaction.atomic
def exclusion_create(
    *,
    actor: Any,
    user_sourced_id: str,
    scope: str,
    reason_code: str,
    ends_at: dt.datetime | None,
    vendor: Any = None,
    integration: Any = None,
    note: str = "",
    starts_at: dt.datetime | None = None,
) -> Exclusion:
    """Withhold one person from vendors until ``ends_at``, effective at once.

    The person may not have been imported yet: the exclusion is by sourcedId, and applies
    from the first release after they appear.
    """
    _require(actor, "governance.add_exclusion")
    cleaned = exclusion_clean(
        user_sourced_id=user_sourced_id, scope=scope, reason_code=reason_code, ends_at=ends_at,
        vendor=vendor, integration=integration, starts_at=starts_at,
    )
    exclusion = Exclusion.objects.create(**cleaned, note=note, created_by=actor)
    audit.record(
        actor=actor,
        action="governance.exclusion_created",
        target=exclusion,
        details=_public_details(exclusion),
        restricted_details={
            "user_sourced_id": exclusion.user_sourced_id,
            "reason_code": exclusion.reason_code,
        },
    )
    return exclusion


def _public_details(exclusion: Exclusion) -> dict:
    """What anyone reading the audit log may know: the record, its reach and its dates."""
    return {
        "exclusion_id": exclusion.pk,
        "scope": exclusion.scope,
        "vendor_id": exclusion.vendor_id,
        "integration_id": exclusion.integration_id,
        "starts_at": exclusion.starts_at,
        "ends_at": exclusion.ends_at,
    }


@transaction.atomic
def exclusion_lift(*, exclusion: Exclusion, actor: Any, reason: str) -> Exclusion:
    """End an exclusion before its end date; the person is released again from now on."""
    _require(actor, "governance.change_exclusion")
    reason = (reason or "").strip()
    if not reason:
        raise ValidationError(ERROR_LIFT_REASON, code="lift_reason")
    exclusion = Exclusion.objects.select_for_update().get(pk=exclusion.pk)
    now = timezone.now()
    if exclusion.lifted_at is not None or exclusion.ends_at <= now:
        raise ValidationError(ERROR_NOT_IN_FORCE, code="not_in_force")
    exclusion.lifted_at = now
    exclusion.lifted_by = actor
    exclusion.lift_reason = reason
    exclusion.save(update_fields=["lifted_at", "lifted_by", "lift_reason"])
    audit.record(
        actor=actor,
        action="governance.exclusion_lifted",
        target=exclusion,
        details={**_public_details(exclusion), "lifted_at": now},
        restricted_details={"user_sourced_id": exclusion.user_sourced_id, "reason": reason},
    )
    return exclusion


def _admin_url(exclusion_id: int) -> str:
    try:
        return reverse("admin:governance_exclusion_change", args=[exclusion_id])
    except NoReverseMatch:  # admin not mounted (a worker without URLs)
        return ""


def exclusions_send_reminders(
    *, now: dt.datetime | None = None, days: int = REMINDER_DAYS
) -> list[int]:
    """Raise one alert per exclusion ending within ``days``, once.

    Alerts are seen by every staff role, so they name the exclusion and its end, never
    the person or the reason; the evidence link opens only for safeguarding officers.
    """
    now = now or timezone.now()
    due = list(
        Exclusion.objects.active(now)
        .filter(ends_at__lte=now + dt.timedelta(days=days), reminder_sent_at__isnull=True)
        .order_by("ends_at", "id")
        .values("id", "ends_at", "scope")
    )
    for row in due:
        ends = timezone.localtime(row["ends_at"]).date().isoformat()
        url = _admin_url(row["id"])
        alerts.raise_alert(
            rule=ALERT_RULE_ENDING,
            subject=f"Exclusion #{row['id']} ends on {ends}: renew it or let it lapse",
            dedup_key=f"{ALERT_RULE_ENDING}:{row['id']}",
            details={"exclusion_id": row["id"], "ends_on": ends, "scope": row["scope"]},
            evidence=[{"label": f"Exclusion #{row['id']}", "url": url}] if url else [],
        )
    if due:
        Exclusion.objects.filter(pk__in=[row["id"] for row in due]).update(reminder_sent_at=now)
    return [row["id"] for row in due]


def exclusions_record_expired(*, now: dt.datetime | None = None) -> list[int]:
    """Record in the audit log, once each, the exclusions that ran to their end.

    Nothing depends on this for correctness (an exclusion stops applying at ``ends_at``
    by itself); it makes the expiry visible in the log.
    """
    now = now or timezone.now()
    with transaction.atomic():
        expired = list(
            Exclusion.objects.select_for_update(skip_locked=True)
            .filter(ends_at__lte=now, lifted_at__isnull=True, expiry_recorded_at__isnull=True)
            .order_by("id")
        )
        for exclusion in expired:
            audit.record(
                actor=None,
                action="governance.exclusion_expired",
                target=exclusion,
                details=_public_details(exclusion),
                restricted_details={"user_sourced_id": exclusion.user_sourced_id},
            )
        if expired:
            Exclusion.objects.filter(pk__in=[e.pk for e in expired]).update(
                expiry_recorded_at=now
            )
    return [e.pk for e in expired]


def exclusions_sweep(*, now: dt.datetime | None = None) -> dict[str, list[int]]:
    """The scheduled job: reminders before the end, and expiries into the audit log."""
    now = now or timezone.now()
    return {
        "reminded": exclusions_send_reminders(now=now),
        "expired": exclusions_record_expired(now=now),
    }


# --------------------------------------------------------------------------------------------
# Overrides
# --------------------------------------------------------------------------------------------


def override_clean(
    *,
    kind: str,
    user_sourced_id: str,
    reason: str,
    ends_at: dt.datetime | None,
    starts_at: dt.datetime | None = None,
    class_sourced_id: str = "",
    role: str = "",
    given_name: str = "",
    middle_name: str = "",
    family_name: str = "",
) -> dict[str, Any]:
    """Check an override's input and return it normalised (shared with the admin form)."""
    now = timezone.now()
    starts_at = starts_at or now
    user_sourced_id = (user_sourced_id or "").strip()
    if not user_sourced_id:
        raise ValidationError(ERROR_USER_REQUIRED, code="user_required")
    if not (reason or "").strip():
        raise ValidationError(ERROR_OVERRIDE_REASON, code="reason")
    if kind not in OverrideKind.values:
        raise ValidationError(ERROR_OVERRIDE_KIND, code="kind")
    _check_window(starts_at=starts_at, ends_at=ends_at, now=now)
    given_name, middle_name, family_name = (
        (v or "").strip() for v in (given_name, middle_name, family_name)
    )
    class_sourced_id, role = (class_sourced_id or "").strip(), (role or "").strip()
    if kind == OverrideKind.PREFERRED_NAME and not (given_name and family_name):
        raise ValidationError(ERROR_OVERRIDE_FIELDS[kind], code="fields")
    if kind == OverrideKind.ROLE_CORRECTION and not (class_sourced_id and role):
        raise ValidationError(ERROR_OVERRIDE_FIELDS[kind], code="fields")
    # Keep only what the kind uses, so nothing stray is applied or stored.
    if kind != OverrideKind.PREFERRED_NAME:
        given_name = middle_name = family_name = ""
    if kind != OverrideKind.ROLE_CORRECTION:
        class_sourced_id = role = ""
    return {
        "kind": kind, "user_sourced_id": user_sourced_id, "reason": reason.strip(),
        "starts_at": starts_at, "ends_at": ends_at, "class_sourced_id": class_sourced_id,
        "role": role, "given_name": given_name, "middle_name": middle_name,
        "family_name": family_name,
    }


@transaction.atomic
def override_create(
    *,
    actor: Any,
    kind: str,
    user_sourced_id: str,
    reason: str,
    ends_at: dt.datetime | None,
    owner: Any = None,
    starts_at: dt.datetime | None = None,
    class_sourced_id: str = "",
    role: str = "",
    given_name: str = "",
    middle_name: str = "",
    family_name: str = "",
) -> Override:
    """A time-bound correction applied at release to every vendor."""
    _require(actor, "governance.add_override")
    cleaned = override_clean(
        kind=kind, user_sourced_id=user_sourced_id, reason=reason, ends_at=ends_at,
        starts_at=starts_at, class_sourced_id=class_sourced_id, role=role,
        given_name=given_name, middle_name=middle_name, family_name=family_name,
    )
    override = Override.objects.create(**cleaned, owner=owner or actor, created_by=actor)
    audit.record(
        actor=actor,
        action="governance.override_created",
        target=override,
        details={
            "override_id": override.pk,
            "kind": override.kind,
            "owner_id": override.owner_id,
            "starts_at": override.starts_at,
            "ends_at": override.ends_at,
        },
        restricted_details={
            "user_sourced_id": override.user_sourced_id,
            "class_sourced_id": override.class_sourced_id,
            "role": override.role,
            "reason": override.reason,
        },
    )
    return override


@transaction.atomic
def override_end(*, override: Override, actor: Any, reason: str) -> Override:
    """Stop applying an override before its end date."""
    _require(actor, "governance.change_override")
    reason = (reason or "").strip()
    if not reason:
        raise ValidationError(ERROR_END_REASON, code="end_reason")
    override = Override.objects.select_for_update().get(pk=override.pk)
    now = timezone.now()
    if override.ended_at is not None or override.ends_at <= now:
        raise ValidationError(ERROR_OVERRIDE_NOT_IN_FORCE, code="not_in_force")
    override.ended_at = now
    override.ended_by = actor
    override.end_reason = reason
    override.save(update_fields=["ended_at", "ended_by", "end_reason"])
    audit.record(
        actor=actor,
        action="governance.override_ended",
        target=override,
        details={"override_id": override.pk, "kind": override.kind, "ended_at": now},
        restricted_details={"user_sourced_id": override.user_sourced_id, "reason": reason},
    )
    return override
