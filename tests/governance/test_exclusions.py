"""Exclusions: who may set them, their bounds, lifting, reminders, expiry, and secrecy."""

from __future__ import annotations

import datetime as dt

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.utils import timezone

from apps.alerts.models import Alert
from apps.audit.models import AuditEvent, PendingAuditEvent
from apps.governance.models import Exclusion, ExclusionReason, ExclusionScope
from apps.governance.services import exclusions as svc
from tests.governance import release_world as world

pytestmark = pytest.mark.django_db

PUPIL = "pupil-7731"


def _exclude(officer, **kwargs):  # type: ignore[no-untyped-def]
    values = {
        "actor": officer, "user_sourced_id": PUPIL, "scope": ExclusionScope.ALL_VENDORS,
        "reason_code": ExclusionReason.CHILD_PROTECTION, "note": "Strategy meeting 3 March",
        "ends_at": timezone.now() + dt.timedelta(days=30),
    }
    values.update(kwargs)
    return svc.exclusion_create(**values)


def _all_audit_rows() -> list[dict]:
    fields = ("action", "target_repr", "details", "restricted_details")
    return list(AuditEvent.objects.values(*fields)) + list(
        PendingAuditEvent.objects.values(*fields)
    )


# --- who may ---------------------------------------------------------------------------------


@pytest.mark.parametrize("role", ["governance", "engineer", "auditor"])
def test_only_safeguarding_officers_may_set_an_exclusion(staff_user_factory, role):
    with pytest.raises(PermissionDenied):
        _exclude(staff_user_factory(role=role))
    assert not Exclusion.objects.exists()


def test_a_safeguarding_officer_sets_an_exclusion_effective_at_once(officer):
    before = timezone.now()

    exclusion = _exclude(officer)

    assert exclusion.is_active()
    assert before <= exclusion.starts_at <= timezone.now()
    assert exclusion.created_by == officer


def test_a_pupil_not_yet_imported_can_be_excluded_by_sourced_id(officer):
    exclusion = _exclude(officer, user_sourced_id="not-in-the-roster-yet")

    assert exclusion.user_sourced_id == "not-in-the-roster-yet"


# --- bounds ----------------------------------------------------------------------------------


def test_the_end_is_mandatory(officer):
    with pytest.raises(ValidationError) as exc:
        _exclude(officer, ends_at=None)
    assert exc.value.messages == [svc.ERROR_END_REQUIRED]


def test_an_exclusion_may_last_at_most_one_year(officer):
    start = timezone.now()

    with pytest.raises(ValidationError) as exc:
        _exclude(officer, starts_at=start, ends_at=svc.one_year_after(start)
                 + dt.timedelta(seconds=1))
    assert exc.value.code == "too_long"

    exactly_a_year = _exclude(officer, starts_at=start, ends_at=svc.one_year_after(start))
    assert exactly_a_year.ends_at == svc.one_year_after(start)


def test_the_database_refuses_a_longer_exclusion_written_around_the_service(officer):
    from django.db import IntegrityError, transaction

    now = timezone.now()
    with pytest.raises(IntegrityError), transaction.atomic():
        Exclusion.objects.create(
            user_sourced_id=PUPIL, scope=ExclusionScope.ALL_VENDORS,
            reason_code=ExclusionReason.OTHER, starts_at=now,
            ends_at=now + dt.timedelta(days=400), created_by=officer,
        )


def test_an_end_in_the_past_is_refused(officer):
    with pytest.raises(ValidationError) as exc:
        _exclude(officer, ends_at=timezone.now() - dt.timedelta(minutes=1))
    assert exc.value.code in {"end_in_past", "end_before_start"}


def test_a_backdated_start_is_refused(officer):
    with pytest.raises(ValidationError) as exc:
        _exclude(officer, starts_at=timezone.now() - dt.timedelta(days=2))
    assert exc.value.messages == [svc.ERROR_BACKDATED]


def test_one_vendor_or_one_integration_must_be_named(officer):
    with pytest.raises(ValidationError) as exc:
        _exclude(officer, scope=ExclusionScope.VENDOR)
    assert exc.value.messages == [svc.ERROR_SCOPE_TARGET]
    with pytest.raises(ValidationError):
        _exclude(officer, scope=ExclusionScope.INTEGRATION)

    integration = world.integration()
    exclusion = _exclude(officer, scope=ExclusionScope.INTEGRATION, integration=integration,
                         vendor=integration.vendor)
    assert exclusion.integration == integration and exclusion.vendor is None


def test_the_calendar_year_of_a_leap_day_ends_on_the_28th():
    leap = dt.datetime(2028, 2, 29, 12, tzinfo=dt.UTC)
    assert svc.one_year_after(leap) == dt.datetime(2029, 2, 28, 12, tzinfo=dt.UTC)


# --- lifting ---------------------------------------------------------------------------------


def test_lifting_early_needs_a_reason(officer):
    exclusion = _exclude(officer)

    with pytest.raises(ValidationError) as exc:
        svc.exclusion_lift(exclusion=exclusion, actor=officer, reason="  ")
    assert exc.value.messages == [svc.ERROR_LIFT_REASON]
    exclusion.refresh_from_db()
    assert exclusion.is_active()


def test_lifting_ends_the_exclusion_from_now(officer):
    exclusion = _exclude(officer)

    svc.exclusion_lift(exclusion=exclusion, actor=officer, reason="Plan closed at review")

    exclusion.refresh_from_db()
    assert not exclusion.is_active()
    assert exclusion.state == "lifted"
    assert exclusion.lifted_by == officer
    with pytest.raises(ValidationError) as exc:
        svc.exclusion_lift(exclusion=exclusion, actor=officer, reason="again")
    assert exc.value.messages == [svc.ERROR_NOT_IN_FORCE]


def test_only_safeguarding_officers_may_lift(officer, staff_user_factory):
    exclusion = _exclude(officer)
    with pytest.raises(PermissionDenied):
        svc.exclusion_lift(exclusion=exclusion, actor=staff_user_factory(role="governance"),
                           reason="no")


# --- secrecy in the audit log -----------------------------------------------------------------


def test_audit_events_name_the_exclusion_never_the_pupil(officer):
    exclusion = _exclude(officer)
    svc.exclusion_lift(exclusion=exclusion, actor=officer, reason="Moved school")

    events = _all_audit_rows()

    assert [e["action"] for e in events] == [
        "governance.exclusion_created", "governance.exclusion_lifted"
    ]
    for event in events:
        assert event["target_repr"] == f"exclusion #{exclusion.pk}"
        public = str(event["details"])
        assert PUPIL not in public and "child_protection" not in public
        assert event["restricted_details"]["user_sourced_id"] == PUPIL
        # the free-text note never enters the append-only log
        assert "Strategy meeting" not in str(event["restricted_details"])
    assert str(exclusion) == f"Exclusion #{exclusion.pk}"


def test_history_is_kept(officer):
    exclusion = _exclude(officer)
    svc.exclusion_lift(exclusion=exclusion, actor=officer, reason="Moved school")

    assert exclusion.history.count() == 2


# --- reminders and expiry ---------------------------------------------------------------------


def test_a_reminder_is_raised_once_before_the_end_without_pupil_data(officer):
    soon = _exclude(officer, ends_at=timezone.now() + dt.timedelta(days=3))
    _exclude(officer, user_sourced_id="later", ends_at=timezone.now() + dt.timedelta(days=60))

    first = svc.exclusions_send_reminders()
    second = svc.exclusions_send_reminders()

    assert first == [soon.pk] and second == []
    alert = Alert.objects.get(rule=svc.ALERT_RULE_ENDING)
    assert f"Exclusion #{soon.pk}" in alert.subject
    everything = f"{alert.subject} {alert.details} {alert.evidence}"
    assert PUPIL not in everything and "child_protection" not in everything


def test_an_exclusion_expires_by_itself_and_the_expiry_is_recorded_once(officer):
    exclusion = _exclude(officer, ends_at=timezone.now() + dt.timedelta(hours=1))
    later = timezone.now() + dt.timedelta(hours=2)

    assert not exclusion.is_active(later)
    assert svc.exclusions_record_expired(now=later) == [exclusion.pk]
    assert svc.exclusions_record_expired(now=later) == []
    expired = [e for e in _all_audit_rows() if e["action"] == "governance.exclusion_expired"]
    assert len(expired) == 1 and PUPIL not in str(expired[0]["details"])


def test_the_sweep_task_runs_reminders_and_expiries(officer):
    from apps.governance.tasks import exclusions_sweep_task

    soon = _exclude(officer, ends_at=timezone.now() + dt.timedelta(days=1))

    outcome = exclusions_sweep_task.delay().get()

    assert outcome == {"reminded": [soon.pk], "expired": []}


def test_the_sweep_is_scheduled():
    from django.conf import settings

    entry = settings.CELERY_BEAT_SCHEDULE["governance.exclusions_sweep"]
    assert entry["task"] == "governance.exclusions_sweep"
