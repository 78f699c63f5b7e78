"""Overrides: time-bound corrections applied at release, each owned, reasoned and audited."""

from __future__ import annotations

import datetime as dt

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.utils import timezone

from apps.audit.models import AuditEvent, PendingAuditEvent
from apps.governance.models import OverrideKind
from apps.governance.release import release_for
from apps.governance.services import exclusions as svc
from tests.governance import release_world as world

pytestmark = pytest.mark.django_db

DIRECTORY_AND_CONTACT = ("identifier", "directory", "contact")


@pytest.fixture
def school():  # type: ignore[no-untyped-def]
    world.org("sch1")
    world.user("p1", org="sch1", preferred_given_name="Legal-pref")
    world.user("p2", org="sch1")
    world.user("g1", org="sch1", role="guardian", agents=["p1"])
    world.klass("cls1", "sch1")
    world.klass("cls2", "sch1")
    world.enrol("p1", "cls1", "sch1")
    world.enrol("p1", "cls2", "sch1")


@pytest.fixture
def release_now(school):  # type: ignore[no-untyped-def]
    integration = world.integration()
    world.approve(integration, orgs=["sch1"], field_classes=DIRECTORY_AND_CONTACT)
    return lambda at=None: release_for(integration, at=at)


def _override(officer, **kwargs):  # type: ignore[no-untyped-def]
    values = {"actor": officer, "user_sourced_id": "p1", "reason": "Protected identity",
              "ends_at": timezone.now() + dt.timedelta(days=60)}
    values.update(kwargs)
    return svc.override_create(**values)


def test_a_preferred_name_replaces_every_released_name(officer, release_now):
    _override(officer, kind=OverrideKind.PREFERRED_NAME, given_name="Sam", family_name="Rivers")

    row = release_now().users().get(sourced_id="p1")

    assert (row["given_name"], row["family_name"], row["middle_name"]) == ("Sam", "Rivers", None)
    assert (row["preferred_given_name"], row["preferred_family_name"]) == ("Sam", "Rivers")
    other = release_now().users().get(sourced_id="p2")
    assert other["given_name"] == "Givenp2"


def test_a_role_correction_applies_in_its_class_only(officer, release_now):
    _override(officer, kind=OverrideKind.ROLE_CORRECTION, class_sourced_id="cls1", role="aide")

    roles = {r["class_sourced_id"]: r["role"] for r in release_now().enrollments()}

    assert roles == {"cls1": "aide", "cls2": "student"}


def test_hiding_from_directory_empties_directory_and_contact_fields_only(officer, release_now):
    _override(officer, kind=OverrideKind.HIDE_DIRECTORY)

    row = release_now().users().get(sourced_id="p1")

    assert row["given_name"] is None and row["family_name"] is None and row["email"] is None
    assert row["sourced_id"] == "p1"  # still there: enrolled, launchable
    assert row["primary_org_sourced_id"] is None
    assert release_now().users().get(sourced_id="p2")["email"] == "p2@pupils.example"


def test_an_override_stops_applying_exactly_at_its_end(officer, release_now):
    override = _override(officer, kind=OverrideKind.PREFERRED_NAME, given_name="Sam",
                         family_name="Rivers")

    before_end = override.ends_at - dt.timedelta(microseconds=1)
    assert release_now(before_end).users().get(sourced_id="p1")["given_name"] == "Sam"
    assert release_now(override.ends_at).users().get(sourced_id="p1")["given_name"] == "Givenp1"


def test_ending_early_needs_a_reason_and_then_stops_the_override(officer, release_now):
    override = _override(officer, kind=OverrideKind.HIDE_DIRECTORY)

    with pytest.raises(ValidationError) as exc:
        svc.override_end(override=override, actor=officer, reason="")
    assert exc.value.messages == [svc.ERROR_END_REASON]

    svc.override_end(override=override, actor=officer, reason="Family asked to undo")
    assert release_now().users().get(sourced_id="p1")["email"] == "p1@pupils.example"


def test_each_kind_needs_its_values(officer):
    with pytest.raises(ValidationError):
        _override(officer, kind=OverrideKind.PREFERRED_NAME, given_name="Sam")
    with pytest.raises(ValidationError):
        _override(officer, kind=OverrideKind.ROLE_CORRECTION, role="aide")
    with pytest.raises(ValidationError) as exc:
        _override(officer, kind=OverrideKind.HIDE_DIRECTORY, reason=" ")
    assert exc.value.messages == [svc.ERROR_OVERRIDE_REASON]


def test_an_override_is_time_bound_and_owned(officer, staff_user_factory):
    with pytest.raises(ValidationError) as exc:
        _override(officer, kind=OverrideKind.HIDE_DIRECTORY, ends_at=None)
    assert exc.value.messages == [svc.ERROR_END_REQUIRED]

    owner = staff_user_factory(username="head.of.year", role="safeguarding")
    override = _override(officer, kind=OverrideKind.HIDE_DIRECTORY, owner=owner)
    assert override.owner == owner and override.created_by == officer


def test_only_safeguarding_officers_set_overrides(staff_user_factory):
    with pytest.raises(PermissionDenied):
        _override(staff_user_factory(role="engineer"), kind=OverrideKind.HIDE_DIRECTORY)


def test_override_audit_events_keep_the_person_restricted(officer):
    # this test's events only: the append-only log keeps what earlier tests committed
    # (live-server and transactional ones), and an override's id can come round again
    seen = {model: model.objects.order_by("-pk").values_list("pk", flat=True).first() or 0
            for model in (AuditEvent, PendingAuditEvent)}
    override = _override(officer, kind=OverrideKind.PREFERRED_NAME, given_name="Sam",
                         family_name="Rivers")
    svc.override_end(override=override, actor=officer, reason="Undo")

    fields = ("action", "target_repr", "details", "restricted_details")
    mine = {"target_id": str(override.pk), "action__startswith": "governance.override_"}
    events = [event for model in (AuditEvent, PendingAuditEvent)
              for event in model.objects.filter(pk__gt=seen[model], **mine).values(*fields)]

    # (an event may still be pending when the next is appended, or the other way round:
    # the two tables do not say which came first)
    assert sorted(e["action"] for e in events) == [
        "governance.override_created", "governance.override_ended"
    ]
    for event in events:
        assert event["target_repr"] == f"override #{override.pk}"
        assert "p1" not in str(event["details"]) and "Sam" not in str(event["details"])
        assert event["restricted_details"]["user_sourced_id"] == "p1"
