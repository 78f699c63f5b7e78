"""Quality gates: out-of-proportion imports are held for a person to approve or reject."""

from __future__ import annotations

import pytest
from django.core.exceptions import PermissionDenied

from apps.alerts.models import Alert
from apps.roster.ingest.gates import RULE_CHANGE, RULE_DELETE, RULE_LEARNERS_DOUBLE
from apps.roster.models import ImportState, QualityGate, RosterVersion, Source
from apps.roster.services import (
    ERROR_REASON_REQUIRED,
    import_run_approve,
    import_run_reject,
)
from tests.roster.builders import small_district
from tests.roster.conftest import audited, current_count

pytestmark = pytest.mark.django_db


def _rules(run) -> set[tuple[str, str, str]]:  # type: ignore[no-untyped-def]
    return {(t["rule"], t["entity"], t["kind"]) for t in run.gate_report}


def test_the_first_import_sets_the_baseline_and_is_never_held(import_feed):
    run = import_feed(small_district(students=200))
    assert run.state == ImportState.APPLIED


def test_ordinary_changes_at_a_small_school_pass(import_feed):
    import_feed(small_district(students=30))
    run = import_feed(small_district(students=50))  # +20: under 25 records
    assert run.state == ImportState.APPLIED


def test_a_change_over_ten_percent_and_25_records_is_held_with_an_alert(import_feed):
    import_feed(small_district(students=100))
    before = RosterVersion.objects.count()

    run = import_feed(small_district(students=140))

    assert run.state == ImportState.HELD
    assert (RULE_CHANGE, "roles", "student") in _rules(run)
    assert ("change", "users", "") in _rules(run)
    assert RosterVersion.objects.count() == before and current_count("users") == 101
    alert = Alert.objects.get(rule="roster.import_held")
    assert str(run.pk) in alert.subject
    assert "learners" not in run.message


def test_deleting_over_five_percent_and_25_records_is_held(import_feed):
    import_feed(small_district(students=600))
    run = import_feed(small_district(students=565))  # 35 of 600 students go: 5.8%
    assert run.state == ImportState.HELD
    assert (RULE_DELETE, "roles", "student") in _rules(run)


def test_a_trip_of_an_entity_counted_whole_shows_its_exact_baseline(import_feed):
    # users are gated as one count (no org, no kind)
    import_feed(small_district(students=600))

    run = import_feed(small_district(students=565))

    users = [t for t in run.gate_report if t["entity"] == "users" and t["org"] == ""]
    assert [(t["rule"], t["baseline"], t["proposed"], t["deleted"]) for t in users] == [
        (RULE_DELETE, 601, 566, 35)]


def test_a_small_change_to_an_entity_counted_whole_passes(import_feed):
    import_feed(small_district(students=600))
    run = import_feed(small_district(students=590))  # 10 users go: under 25 records
    assert run.state == ImportState.APPLIED
    assert current_count("users") == 591


def test_learners_doubling_always_holds(import_feed):
    import_feed(small_district(students=10))
    run = import_feed(small_district(students=20))  # only +10, but double
    assert run.state == ImportState.HELD
    assert (RULE_LEARNERS_DOUBLE, "roles", "student") in _rules(run)


def test_a_source_can_switch_its_gate_off(import_feed):
    import_feed(small_district(students=10))
    QualityGate.objects.create(source=Source.objects.get(name="sis"), enabled=False)
    assert import_feed(small_district(students=20)).state == ImportState.APPLIED


def test_an_approved_hold_is_applied_and_audited(import_feed, approver):
    import_feed(small_district(students=10))
    held = import_feed(small_district(students=20))

    run = import_run_approve(run=held, actor=approver, reason="new intake confirmed")

    assert run.state == ImportState.APPLIED and run.version is not None
    assert current_count("users") == 21
    [event] = audited("roster.import_approved")
    assert event["actor_id"] == approver.pk and event["reason"] == "new intake confirmed"
    assert audited("roster.import_applied")[-1]["approved_hold"] is True


def test_a_rejected_hold_applies_nothing_and_needs_a_reason(import_feed, approver):
    import_feed(small_district(students=10))
    held = import_feed(small_district(students=20))

    with pytest.raises(ValueError, match=ERROR_REASON_REQUIRED):
        import_run_reject(run=held, actor=approver, reason=" ")
    run = import_run_reject(run=held, actor=approver, reason="wrong file from the SIS")

    assert run.state == ImportState.REJECTED and run.decision_reason
    assert current_count("users") == 11
    assert audited("roster.import_rejected")[0]["reason"] == "wrong file from the SIS"


def test_only_an_authorised_role_may_decide_a_hold(import_feed, staff_user_factory):
    import_feed(small_district(students=10))
    held = import_feed(small_district(students=20))
    engineer = staff_user_factory(role="engineer")

    with pytest.raises(PermissionDenied):
        import_run_approve(run=held, actor=engineer)
    with pytest.raises(PermissionDenied):
        import_run_reject(run=held, actor=engineer, reason="no")
    held.refresh_from_db()
    assert held.state == ImportState.HELD
