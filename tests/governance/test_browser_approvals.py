"""The two-person rule in a real browser: an engineer asks for demographic data, two members
of governance staff approve it, and nothing is granted until the second approval."""

from __future__ import annotations

from pathlib import Path

import pytest

from apps.governance.models import ScopeRequest, ScopeRequestStatus
from apps.governance.selectors.grant import effective_grant
from apps.vendors.models import ContactRole
from tests.conftest import sign_in
from tests.vendors.factories import ContactFactory, IntegrationFactory, ready_vendor

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-results" / "screenshots"
OR = "https://purl.imsglobal.org/spec/or/v1p2/scope/"


def shot(page, name: str) -> None:  # type: ignore[no-untyped-def]
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


def test_a_demographic_scope_needs_two_approvers_in_the_browser(
    browser, live_server, staff_user_factory
):
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    staff_user_factory(username="dev.engineer", role="engineer", first_name="Dev")
    staff_user_factory(username="amira.dpo", role="governance", first_name="Amira")
    staff_user_factory(username="ben.itlead", role="governance", first_name="Ben")
    vendor = ready_vendor(classes=["identifier", "directory", "demographic"],
                          name="Numbersense Learning")
    ContactFactory(vendor=vendor, role=ContactRole.SECURITY, name="Priya Shah",
                   email="security@numbersense.example")
    integration = IntegrationFactory(vendor=vendor, name="Numbersense roster (REST)")

    # given: the engineer raises a request for demographic data
    engineer = sign_in(browser, live_server, "dev.engineer")
    engineer.goto(f"{live_server.url}/admin/governance/scoperequest/add/"
                  f"?integration={integration.pk}")
    engineer.check("input[name=services][value='oneroster.rostering']")
    engineer.check(f"input[name=scopes][value='{OR}roster.readonly']")
    engineer.check(f"input[name=scopes][value='{OR}roster-demographics.readonly']")
    for cls in ("identifier", "directory", "demographic"):
        engineer.check(f"input[name=field_classes][value='{cls}']")
    engineer.fill("#id_org_sourced_ids", "school-north")
    engineer.fill("#id_justification",
                  "Adaptive maths groups pupils by year and age; the date of birth sets the "
                  "starting level.")
    engineer.fill("#id_dpia_reference", "DPIA-2026-004")
    shot(engineer, "scope_request_form")
    engineer.click("input[name=_save]")
    engineer.wait_for_selector("[data-testid=scope-request]")
    request = ScopeRequest.objects.get()
    assert request.requested_by.username == "dev.engineer"
    assert engineer.inner_text("[data-testid=approval-count]") == "0 of 2"
    # the engineer cannot decide it
    assert engineer.locator("button[name=_approve]").count() == 0
    shot(engineer, "scope_request_pending")

    # when: the DPO opens her queue and approves
    dpo = sign_in(browser, live_server, "amira.dpo")
    dpo.goto(f"{live_server.url}/admin/governance/scoperequest/?queue=mine")
    assert dpo.inner_text("[data-testid=queue-mine] .ix-queue-count") == "1"
    shot(dpo, "approval_queue")
    dpo.click("text=Numbersense roster (REST)")
    dpo.wait_for_selector("[data-testid=decide]")
    assert "+ demographic" in dpo.inner_text("[data-testid=diff]")
    dpo.fill("#id_decision_reason", "DPIA-2026-004 reviewed; date of birth only, no ethnicity.")
    dpo.click("button[name=_approve]")
    dpo.wait_for_selector(".messagelist")
    assert "Nothing is granted until a second" in dpo.inner_text(".messagelist")
    assert dpo.inner_text("[data-testid=approval-count]") == "1 of 2"
    shot(dpo, "scope_request_first_approval")

    # then: one approval alone grants nothing
    request.refresh_from_db()
    assert request.status == ScopeRequestStatus.PENDING
    assert effective_grant(integration).is_empty

    # when: the IT lead, a different person, approves too
    lead = sign_in(browser, live_server, "ben.itlead")
    lead.goto(f"{live_server.url}/admin/governance/scoperequest/{request.pk}/change/")
    lead.fill("#id_decision_reason", "Agreed with Amira; matches the DPA schedule.")
    lead.click("button[name=_approve]")
    lead.wait_for_selector(".messagelist")
    assert "is approved until" in lead.inner_text(".messagelist")
    assert lead.inner_text("[data-testid=status]") == "Approved"
    shot(lead, "scope_request_approved")

    # then: the grant holds the demographic class
    request.refresh_from_db()
    assert request.status == ScopeRequestStatus.APPROVED
    grant = effective_grant(integration)
    assert "demographic" in grant.field_classes
    assert OR + "roster-demographics.readonly" in grant.scopes

    # and the vendor page tells the DPO where the vendor stands
    lead.goto(f"{live_server.url}/admin/vendors/vendor/")
    assert "Numbersense Learning" in lead.inner_text("#result_list")
    shot(lead, "vendor_list")
    lead.goto(f"{live_server.url}/admin/vendors/vendor/{vendor.pk}/change/")
    shot(lead, "vendor_detail")
    lead.goto(f"{live_server.url}/admin/vendors/integration/")
    shot(lead, "integration_list")
