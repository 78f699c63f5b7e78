"""The safeguarding pages and the effective-access page, from the outside (HTTP)."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from apps.governance.models import Exclusion, ExclusionReason, ExclusionScope, Override
from apps.governance.services.exclusions import exclusion_create
from tests.governance import release_world as world

pytestmark = pytest.mark.django_db

OTHER_ROLES = ("governance", "engineer", "auditor")
PUPIL = "pupil-4410"


def _exclusion(officer, **kwargs):  # type: ignore[no-untyped-def]
    values = {"user_sourced_id": PUPIL, "scope": ExclusionScope.ALL_VENDORS,
              "reason_code": ExclusionReason.COURT_ORDER, "note": "Order ref 55",
              "ends_at": timezone.now() + dt.timedelta(days=20)}
    values.update(kwargs)
    return exclusion_create(actor=officer, **values)


def _local(moment: dt.datetime) -> str:
    return timezone.localtime(moment).strftime("%Y-%m-%d %H:%M:%S")


@pytest.mark.parametrize("role", OTHER_ROLES)
def test_nobody_but_safeguarding_can_open_exclusions_or_overrides(
    client, staff_user_factory, officer, role
):
    exclusion = _exclusion(officer)
    client.force_login(staff_user_factory(role=role))

    for url in (
        "/admin/governance/exclusion/",
        "/admin/governance/exclusion/add/",
        f"/admin/governance/exclusion/{exclusion.pk}/change/",
        f"/admin/governance/exclusion/{exclusion.pk}/history/",
        "/admin/governance/override/",
    ):
        response = client.get(url)
        assert response.status_code == 403, url
        assert PUPIL not in response.content.decode()


def test_an_officer_sees_who_is_excluded_and_the_queue_of_those_ending(client, officer):
    _exclusion(officer, ends_at=timezone.now() + dt.timedelta(days=5))
    _exclusion(officer, user_sourced_id="pupil-later")
    client.force_login(officer)

    page = client.get("/admin/governance/exclusion/?state=ending").content.decode()

    assert PUPIL in page and "Court order" in page and "pupil-later" not in page


def test_an_officer_sets_an_exclusion_through_the_admin(client, officer):
    client.force_login(officer)
    ends = timezone.now() + dt.timedelta(days=10)

    response = client.post("/admin/governance/exclusion/add/", {
        "user_sourced_id": "pupil-new", "scope": "all", "reason_code": "child_protection",
        "note": "Section 47 enquiry", "ends_at_0": _local(ends)[:10],
        "ends_at_1": _local(ends)[11:],
    })

    assert response.status_code == 302, response.content.decode()[:2000]
    exclusion = Exclusion.objects.get(user_sourced_id="pupil-new")
    assert exclusion.is_active() and exclusion.created_by == officer


def test_the_admin_refuses_an_exclusion_longer_than_a_year(client, officer):
    client.force_login(officer)
    ends = timezone.now() + dt.timedelta(days=400)

    response = client.post("/admin/governance/exclusion/add/", {
        "user_sourced_id": "pupil-new", "scope": "all", "reason_code": "child_protection",
        "ends_at_0": _local(ends)[:10], "ends_at_1": _local(ends)[11:],
    })

    assert response.status_code == 200
    assert "At most one year" in response.content.decode()
    assert not Exclusion.objects.exists()


def test_an_officer_lifts_an_exclusion_early_with_a_reason(client, officer):
    exclusion = _exclusion(officer)
    client.force_login(officer)

    response = client.post(f"/admin/governance/exclusion/{exclusion.pk}/change/",
                           {"lift_reason_input": "Case closed"})

    assert response.status_code == 302
    exclusion.refresh_from_db()
    assert exclusion.state == "lifted" and exclusion.lift_reason == "Case closed"


def test_an_officer_adds_a_preferred_name_override(client, officer):
    client.force_login(officer)
    ends = timezone.now() + dt.timedelta(days=10)

    response = client.post("/admin/governance/override/add/", {
        "kind": "preferred_name", "user_sourced_id": "p1", "given_name": "Sam",
        "family_name": "Rivers", "reason": "Protected identity",
        "ends_at_0": _local(ends)[:10], "ends_at_1": _local(ends)[11:],
    })

    assert response.status_code == 302, response.content.decode()[:2000]
    override = Override.objects.get()
    assert override.owner == officer and override.given_name == "Sam"


# --- effective access ------------------------------------------------------------------------


@pytest.fixture
def access_world(officer):  # type: ignore[no-untyped-def]
    world.org("sch1")
    for sid in ("pupil-x1", "pupil-x2", "pupil-x3"):
        world.user(sid, org="sch1")
    integration = world.integration(name="Reading Rocket REST")
    world.approve(integration, orgs=["sch1"], field_classes=["directory"],
                  fields=["users.email"])
    exclusion = _exclusion(officer, user_sourced_id="pupil-x2")
    return integration, exclusion


def _access_url(integration) -> str:  # type: ignore[no-untyped-def]
    return f"/admin/governance/integrationaccess/{integration.pk}/access/"


def test_effective_access_shows_counts_never_names(client, governance_user, access_world):
    integration, exclusion = access_world
    client.force_login(governance_user)

    page = client.get(_access_url(integration)).content.decode()

    assert 'data-testid="users-visible">2<' in page
    assert 'data-testid="users-withheld">1<' in page
    assert "users.email" in page or "<code>email</code>" in page
    assert "pupil-x2" not in page and f"#{exclusion.pk}</a>" not in page
    assert "Suspend now" in page


def test_safeguarding_officers_get_links_to_the_exclusions(client, officer, access_world):
    integration, exclusion = access_world
    client.force_login(officer)

    page = client.get(_access_url(integration)).content.decode()

    assert f"/admin/governance/exclusion/{exclusion.pk}/change/" in page
    assert "Suspend now" not in page  # the lever belongs to governance staff


def test_suspend_now_stops_the_integration_and_is_audited(
    client, governance_user, access_world
):
    from apps.audit.models import AuditEvent, PendingAuditEvent
    from apps.governance.release import release_for

    integration, _ = access_world
    client.force_login(governance_user)

    response = client.post(
        f"/admin/governance/integrationaccess/{integration.pk}/suspend/",
        {"reason": "Vendor reported a breach"},
    )

    assert response.status_code == 302
    integration.refresh_from_db()
    assert integration.status == "suspended"
    assert release_for(integration).live is False
    recorded = [
        model.objects.filter(target_id=str(integration.pk),
                             action="vendors.integration_suspended").exists()
        for model in (AuditEvent, PendingAuditEvent)
    ]
    assert any(recorded)
    page = client.get(_access_url(integration)).content.decode()
    assert 'data-testid="not-live"' in page and "Suspend now" not in page


@pytest.mark.parametrize("role", ["engineer", "safeguarding", "auditor"])
def test_only_governance_staff_may_suspend(client, staff_user_factory, access_world, role):
    integration, _ = access_world
    client.force_login(staff_user_factory(role=role))

    response = client.post(f"/admin/governance/integrationaccess/{integration.pk}/suspend/",
                           {"reason": "no"})

    assert response.status_code == 403
    integration.refresh_from_db()
    assert integration.status == "active"
