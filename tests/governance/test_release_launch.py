"""The rows of a launch through the release policy: the same people, classes, roles, names and
identifiers REST releases, whatever the projection, and never a stale compiled statement."""

from __future__ import annotations

import datetime as dt

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from apps.governance.models import ExclusionReason, ExclusionScope, OverrideKind
from apps.governance.release import release_for
from apps.governance.release_launch import launch_rows
from apps.governance.services import exclusions as svc
from tests.governance import release_world as world

pytestmark = pytest.mark.django_db

ALL_ROSTER = ("identifier", "directory", "contact")


@pytest.fixture
def school():  # type: ignore[no-untyped-def]
    """A district with two schools: p1, p2 and teacher t1 in cls1 at sch1; p3 in cls2 at
    sch2; p1 also holds a role at sch2."""
    world.org("dist", type="district")
    world.org("sch1", "dist")
    world.org("sch2", "dist")
    world.user("p1", org="sch1", preferred_given_name="Pip")
    world.rows("roles", {"sourced_id": "role-p1-sch2", "user_sourced_id": "p1",
                         "role_type": "secondary", "role": "aide", "org_sourced_id": "sch2"})
    world.user("p2", org="sch1")
    world.user("t1", org="sch1", role="teacher")
    world.user("p3", org="sch2")
    world.klass("cls1", "sch1")
    world.klass("cls2", "sch2")
    world.enrol("p1", "cls1", "sch1")
    world.enrol("p2", "cls1", "sch1")
    world.enrol("t1", "cls1", "sch1", role="teacher")
    world.enrol("p3", "cls2", "sch2")


def _tool(*, orgs=("dist",), pseudonymised=False, field_classes=ALL_ROSTER):  # type: ignore[no-untyped-def]
    integration = world.integration(pseudonymised=pseudonymised)
    world.approve(integration, orgs=list(orgs), field_classes=field_classes,
                  services=("lti.launch",), scopes=(), claims=("name",))
    return integration


def _exclude(officer, pupil="p1", **kwargs):  # type: ignore[no-untyped-def]
    values = {"scope": ExclusionScope.ALL_VENDORS, "reason_code": ExclusionReason.COURT_ORDER,
              "ends_at": timezone.now() + dt.timedelta(days=30)}
    values.update(kwargs)
    return svc.exclusion_create(actor=officer, user_sourced_id=pupil, **values)


def _override(officer, **kwargs):  # type: ignore[no-untyped-def]
    values = {"actor": officer, "user_sourced_id": "p1", "reason": "Protected identity",
              "ends_at": timezone.now() + dt.timedelta(days=60)}
    values.update(kwargs)
    return svc.override_create(**values)


def test_a_launch_reads_the_person_class_and_roles_as_released(school):
    release = release_for(_tool())

    rows = launch_rows(release, person_sourced_id="p1", class_sourced_id="cls1")

    assert rows is not None
    assert rows.person["sourced_id"] == "p1"
    assert rows.person["preferred_given_name"] == "Pip" and rows.person["enabled_user"] is True
    assert rows.klass == {"sourced_id": "cls1", "title": "Class cls1", "class_code": None,
                          "school_sourced_id": "sch1", "course_sourced_id": "course-1"}
    assert rows.enrollment_roles == ("student",)
    assert rows.org_roles == ("aide", "student")


def test_the_person_row_equals_the_rest_row(school, master_key):
    release = release_for(_tool(pseudonymised=True))
    rest = release.users().get(given_name="Givenp1")

    rows = launch_rows(release, person_sourced_id="p1", class_sourced_id="cls1")

    assert rows is not None
    assert rows.person["sourced_id"] == rest["sourced_id"] != "p1"
    for column in ("given_name", "family_name", "preferred_given_name", "email"):
        assert rows.person[column] == rest[column]


def test_a_launch_needs_no_user_columns_in_the_projection(school):
    # An LTI tool approved for roles and context only still launches: its claims grant, not
    # the REST projection, decides which of these values a token carries.
    release = release_for(_tool(field_classes=()))
    assert not release.columns("users")

    rows = launch_rows(release, person_sourced_id="p2", class_sourced_id="cls1")

    assert rows is not None and rows.enrollment_roles == ("student",)


def test_an_excluded_pupil_has_no_launch_rows_from_the_next_call(school, officer):
    integration = _tool()
    assert launch_rows(release_for(integration), person_sourced_id="p1",
                       class_sourced_id="cls1") is not None

    _exclude(officer)

    release = release_for(integration)
    assert launch_rows(release, person_sourced_id="p1", class_sourced_id="cls1") is None
    assert "p1" not in world.ids(release.users())
    assert launch_rows(release, person_sourced_id="p2", class_sourced_id="cls1") is not None


def test_an_exclusion_from_another_vendor_leaves_this_launch_alone(school, officer):
    integration = _tool()
    _exclude(officer, scope=ExclusionScope.VENDOR, vendor=world.vendor())

    rows = launch_rows(release_for(integration), person_sourced_id="p1", class_sourced_id="cls1")

    assert rows is not None


def test_people_and_classes_outside_the_org_scope_have_no_launch_rows(school):
    release = release_for(_tool(orgs=("sch1",)))

    assert launch_rows(release, person_sourced_id="p3", class_sourced_id="cls2") is None
    assert launch_rows(release, person_sourced_id="p1", class_sourced_id="cls2") is None
    rows = launch_rows(release, person_sourced_id="p1", class_sourced_id="cls1")
    assert rows is not None and rows.org_roles == ("student",)  # not the role at sch2


def test_a_person_not_enrolled_in_the_class_has_no_enrollment_roles(school):
    rows = launch_rows(release_for(_tool()), person_sourced_id="p3", class_sourced_id="cls1")

    assert rows is not None and rows.enrollment_roles == ()


def test_a_role_correction_reaches_the_launch_as_it_reaches_rest(school, officer):
    integration = _tool()
    _override(officer, kind=OverrideKind.ROLE_CORRECTION, class_sourced_id="cls1", role="teacher")
    release = release_for(integration)

    rows = launch_rows(release, person_sourced_id="p1", class_sourced_id="cls1")

    rest = {(r["user_sourced_id"], r["class_sourced_id"]): r["role"]
            for r in release.enrollments()}
    assert rows is not None and rows.enrollment_roles == ("teacher",)
    assert rest[("p1", "cls1")] == "teacher"


def test_a_preferred_name_and_a_hidden_directory_apply_as_in_rest(school, officer):
    integration = _tool()
    _override(officer, kind=OverrideKind.PREFERRED_NAME, given_name="Sam", family_name="Rivers")
    _override(officer, user_sourced_id="p2", kind=OverrideKind.HIDE_DIRECTORY)
    release = release_for(integration)

    named = launch_rows(release, person_sourced_id="p1", class_sourced_id="cls1")
    hidden = launch_rows(release, person_sourced_id="p2", class_sourced_id="cls1")

    assert named is not None and hidden is not None
    assert (named.person["given_name"], named.person["preferred_given_name"]) == ("Sam", "Sam")
    rest_hidden = release.users().get(sourced_id="p2")
    assert hidden.person["given_name"] is rest_hidden["given_name"] is None
    assert hidden.person["email"] is rest_hidden["email"] is None


def test_a_release_that_is_not_live_has_no_launch_rows(school):
    integration = _tool()
    integration.status = "suspended"
    integration.save()

    assert launch_rows(release_for(integration), person_sourced_id="p1",
                       class_sourced_id="cls1") is None


def test_launch_rows_are_one_statement(school, officer):
    _exclude(officer, pupil="p2")
    release = release_for(_tool(pseudonymised=False))
    launch_rows(release, person_sourced_id="p1", class_sourced_id="cls1")  # compiles

    with CaptureQueriesContext(connection) as queries:
        rows = launch_rows(release, person_sourced_id="t1", class_sourced_id="cls1")

    assert len(queries) == 1
    assert rows is not None and rows.enrollment_roles == ("teacher",)
