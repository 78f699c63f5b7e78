"""The release policy, rule by rule: levers, minimisation, org scope, exclusions, counting."""

from __future__ import annotations

import datetime as dt

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from apps.governance import release_cache
from apps.governance.models import Exclusion, ExclusionHit, ExclusionReason, ExclusionScope
from apps.governance.release import release_for
from apps.governance.services.exclusions import exclusion_create
from tests.governance import release_world as world

pytestmark = pytest.mark.django_db

ENTITY_METHODS = (
    "orgs", "academic_sessions", "courses", "classes", "users", "roles", "user_profiles",
    "enrollments", "demographics", "categories", "line_items", "results", "score_scales",
)


@pytest.fixture
def school():  # type: ignore[no-untyped-def]
    """A district with two schools; pupils p1, p2 and teacher t1 at sch1, p3 at sch2,
    guardian g1 (of p1 and p2) at sch1; one class with enrollments, demographics, results."""
    world.org("dist", type="district")
    world.org("sch1", "dist")
    world.org("sch2", "dist")
    world.org("dept1", "sch1", type="department")
    world.user("p1", org="sch1")
    world.user("p2", org="sch1")
    world.user("p3", org="sch2")
    world.user("t1", org="sch1", role="teacher")
    world.user("g1", org="sch1", role="guardian", agents=["p1", "p2"])
    world.klass("cls1", "sch1")
    world.klass("cls2", "sch2")
    for pupil in ("p1", "p2"):
        world.enrol(pupil, "cls1", "sch1")
        world.demographic(pupil)
    world.enrol("t1", "cls1", "sch1", role="teacher")
    world.enrol("p3", "cls2", "sch2")
    world.demographic("p3")
    world.line_item("li1", "cls1")
    world.result("res-p1", "li1", "p1", "cls1")
    world.result("res-p2", "li1", "p2", "cls1")


def _exclude(officer, pupil="p1", **kwargs):  # type: ignore[no-untyped-def]
    values = {"scope": ExclusionScope.ALL_VENDORS, "reason_code": ExclusionReason.COURT_ORDER,
              "ends_at": timezone.now() + dt.timedelta(days=30)}
    values.update(kwargs)
    return exclusion_create(actor=officer, user_sourced_id=pupil, **values)


ALL_CLASSES = ("identifier", "directory", "contact", "demographic", "special_category",
               "assessment")


# --- levers ----------------------------------------------------------------------------------


@pytest.mark.parametrize("status", ["draft", "suspended", "offboarding", "offboarded"])
def test_an_integration_that_is_not_active_gets_nothing(school, status):
    integration = world.integration(status=status)
    world.approve(integration, orgs=["dist"], field_classes=ALL_CLASSES)

    release = release_for(integration)

    assert release.live is False
    assert not release.scopes and not release.services and not release.projection
    for method in ENTITY_METHODS:
        assert list(getattr(release, method)()) == []


def test_a_suspended_vendor_stops_all_its_integrations(school):
    vendor = world.vendor(status="suspended")
    integration = world.integration(vendor)
    world.approve(integration, orgs=["dist"])

    release = release_for(integration)

    assert release.live is False and list(release.users()) == []


def test_suspension_acts_on_the_very_next_release(school, governance_user):
    from apps.vendors.models import Integration
    from apps.vendors.services import integration_suspend

    integration = world.integration()
    world.approve(integration, orgs=["dist"])
    # the spoke holds the object it loaded before the suspension
    held_by_spoke = Integration.objects.get(pk=integration.pk)
    assert release_for(held_by_spoke).live

    integration_suspend(integration=integration, actor=governance_user, reason="incident")

    assert held_by_spoke.status == "active"
    assert release_for(held_by_spoke).live is False


def test_an_integration_with_no_approval_gets_nothing(school):
    release = release_for(world.integration())

    assert release.live and not release.projection and list(release.users()) == []


# --- minimisation ----------------------------------------------------------------------------


def test_unapproved_fields_do_not_exist_in_the_projection(school):
    integration = world.integration()
    world.approve(integration, orgs=["dist"], field_classes=["directory"])

    release = release_for(integration)
    row = release.users().get(sourced_id="p1")

    assert "given_name" in row and "sourced_id" in row
    assert "email" not in row and "agent_sourced_ids" not in row and "pronouns" not in row
    assert "demographics" not in release.projection
    assert list(release.demographics()) == [] and list(release.results()) == []


def test_a_single_approved_field_is_released_without_its_class(school):
    integration = world.integration()
    world.approve(integration, orgs=["dist"], field_classes=["directory"], fields=["users.email"])

    row = release_for(integration).users().get(sourced_id="p1")

    assert row["email"] == "p1@pupils.example" and "phone" not in row


def test_approvals_expire_and_then_grant_nothing(school):
    integration = world.integration()
    world.approve(integration, orgs=["dist"],
                  approved_at=timezone.now() - dt.timedelta(days=10), days=5)

    assert list(release_for(integration).users()) == []


# --- org scope -------------------------------------------------------------------------------


def test_org_scope_includes_descendants_and_nothing_above_or_beside(school):
    integration = world.integration()
    world.approve(integration, orgs=["sch1"])

    release = release_for(integration)

    assert release.org_sourced_ids == {"sch1", "dept1"}
    assert world.ids(release.users()) == {"p1", "p2", "t1", "g1"}
    assert world.ids(release.classes()) == {"cls1"}
    assert world.ids(release.enrollments(), "user_sourced_id") == {"p1", "p2", "t1"}
    assert world.ids(release.orgs()) == {"sch1", "dept1"}
    # sch1's parent is outside the scope: the reference is released empty
    assert {r["sourced_id"]: r["parent_sourced_id"] for r in release.orgs()} == {
        "sch1": None, "dept1": "sch1"
    }


def test_an_org_that_is_no_longer_current_takes_no_descendants_with_it(school):
    world.org("old-annex", "sch1", closed=True)
    world.org("annex-child", "old-annex")
    integration = world.integration()
    world.approve(integration, orgs=["sch1"])

    assert "annex-child" not in release_for(integration).org_sourced_ids


def test_a_cycle_in_the_org_tree_does_not_hang_the_scope(school):
    world.org("loop-a", "loop-b")
    world.org("loop-b", "loop-a")
    integration = world.integration()
    world.approve(integration, orgs=["loop-a"])

    assert release_for(integration).org_sourced_ids == {"loop-a", "loop-b"}


# --- exclusions ------------------------------------------------------------------------------


def test_an_excluded_pupil_looks_exactly_like_one_who_left(school, officer):
    integration = world.integration()
    world.approve(integration, orgs=["dist"], field_classes=ALL_CLASSES)
    _exclude(officer, "p1")

    release = release_for(integration)

    assert "p1" not in world.ids(release.users())
    assert "p1" not in world.ids(release.enrollments(), "user_sourced_id")
    assert "p1" not in world.ids(release.roles(), "user_sourced_id")
    assert "p1" not in world.ids(release.demographics())
    assert "p1" not in world.ids(release.results(), "student_sourced_id")
    guardian = release.users().get(sourced_id="g1")
    assert guardian["agent_sourced_ids"] == ["p2"]
    # everyone else is untouched
    assert world.ids(release.users()) == {"p2", "p3", "t1", "g1"}


def test_an_exclusion_from_one_integration_leaves_the_vendors_other_integrations_alone(
    school, officer
):
    vendor = world.vendor()
    rest, lti = world.integration(vendor), world.integration(vendor, kind="lti_tool")
    for integration in (rest, lti):
        world.approve(integration, orgs=["dist"])
    _exclude(officer, "p1", scope=ExclusionScope.INTEGRATION, integration=rest)

    assert "p1" not in world.ids(release_for(rest).users())
    assert "p1" in world.ids(release_for(lti).users())


def test_an_exclusion_from_a_vendor_reaches_all_its_integrations_only(school, officer):
    vendor, other = world.vendor(), world.vendor()
    mine, theirs = world.integration(vendor), world.integration(other)
    for integration in (mine, theirs):
        world.approve(integration, orgs=["dist"])
    _exclude(officer, "p1", scope=ExclusionScope.VENDOR, vendor=vendor)

    assert "p1" not in world.ids(release_for(mine).users())
    assert "p1" in world.ids(release_for(theirs).users())


def test_an_exclusion_stops_applying_exactly_at_its_end(school, officer):
    integration = world.integration()
    world.approve(integration, orgs=["dist"])
    exclusion = _exclude(officer, "p1")
    just_before = exclusion.ends_at - dt.timedelta(microseconds=1)

    assert "p1" not in world.ids(release_for(integration, at=just_before).users())
    assert "p1" in world.ids(release_for(integration, at=exclusion.ends_at).users())


def test_a_lifted_exclusion_no_longer_applies(school, officer):
    from apps.governance.services.exclusions import exclusion_lift

    integration = world.integration()
    world.approve(integration, orgs=["dist"])
    exclusion = _exclude(officer, "p1")
    exclusion_lift(exclusion=exclusion, actor=officer, reason="Reviewed at case conference")

    assert "p1" in world.ids(release_for(integration).users())


def test_a_pupil_excluded_before_import_is_withheld_from_the_first_release(officer):
    _exclude(officer, "new-pupil")
    world.org("sch9")
    world.user("new-pupil", org="sch9")
    integration = world.integration()
    world.approve(integration, orgs=["sch9"])

    assert list(release_for(integration).users()) == []


def test_withheld_records_are_counted_per_exclusion_and_day_in_one_statement(school, officer):
    integration = world.integration()
    world.approve(integration, orgs=["dist"], field_classes=ALL_CLASSES)
    exclusion = _exclude(officer, "p1")
    release = release_for(integration)

    with CaptureQueriesContext(connection) as queries:
        assert release.record_withheld() == 1
    release.record_withheld(entities=["users"])

    assert len(queries) == 1
    hit = ExclusionHit.objects.get(exclusion=exclusion)
    # user row, role, enrollment, demographic, result, guardian's link;
    # then, for users alone, the user row and the guardian's link again
    assert (hit.records, hit.releases) == (6 + 2, 2)
    assert hit.day == timezone.localdate()


def test_nothing_is_counted_when_no_exclusion_applies(school):
    integration = world.integration()
    world.approve(integration, orgs=["dist"])

    assert release_for(integration).record_withheld() == 0
    assert not ExclusionHit.objects.exists()


# --- shape and cost --------------------------------------------------------------------------


def test_a_page_of_users_is_one_query(school, officer):
    integration = world.integration(pseudonymised=True)
    world.approve(integration, orgs=["dist"], field_classes=ALL_CLASSES)
    _exclude(officer, "p2")
    release = release_for(integration)

    with CaptureQueriesContext(connection) as queries:
        page = list(release.users().order_by("sourced_id")[:2])
        enrollments = list(release.enrollments()[:10])

    assert len(page) == 2 and enrollments
    assert len(queries) == 2


def test_rows_come_as_dicts_of_the_projection_in_order(school):
    integration = world.integration()
    world.approve(integration, orgs=["dist"])
    release = release_for(integration)

    for method, entity in (("users", "users"), ("enrollments", "enrollments"),
                           ("classes", "classes")):
        rows = list(getattr(release, method)())
        assert rows and all(tuple(row) == release.columns(entity) for row in rows)


def test_the_release_carries_the_grant(school):
    integration = world.integration()
    request = world.approve(integration, orgs=["sch1"], services=("oneroster.rostering",),
                            claims=("name",))

    release = release_for(integration)

    assert release.allows_service("oneroster.rostering")
    assert not release.allows_service("oneroster.gradebook")
    assert release.claims == {"name"} and release.approvals == (request.pk,)
    assert release.vendor_id == integration.vendor_id


def test_a_logged_release_does_not_name_who_is_withheld(school, officer):
    integration = world.integration()
    world.approve(integration, orgs=["dist"])
    _exclude(officer, "p1")

    release = release_for(integration)

    assert release.excluded_user_sourced_ids == {"p1"}
    assert "p1" not in repr(release) and "court_order" not in repr(release)
    assert Exclusion.objects.count() == 1


def test_building_a_release_costs_a_few_small_queries(school, officer, master_key):
    integration = world.integration(pseudonymised=True)
    world.approve(integration, orgs=["dist"])
    _exclude(officer, "p1")
    release_for(integration)  # the vendor's pseudonym key is created on first use
    release_cache.clear()  # build afresh (a reused release costs one query: test_release_cache)

    with CaptureQueriesContext(connection) as queries:
        release_for(integration)

    # generations; status, grant, classification overrides, org scope, exclusions,
    # overrides, vendor key; the time window the release holds for
    assert len(queries) <= 9
