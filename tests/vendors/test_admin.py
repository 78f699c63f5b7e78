"""The vendor pages a DPO works from: badges that say whether paperwork is current, and the
suspend lever (asks for a reason, then calls the audited service)."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from apps.audit.models import PendingAuditEvent
from apps.vendors.models import IntegrationStatus
from tests.vendors.factories import (
    AgreementFactory,
    IntegrationFactory,
    SecurityReviewFactory,
    VendorFactory,
    ready_vendor,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def dpo_client(client, staff_user_factory):  # type: ignore[no-untyped-def]
    client.force_login(staff_user_factory(username="amira.dpo", role="governance"))
    return client


def test_the_vendor_list_flags_stale_reviews_and_missing_agreements(dpo_client):
    ready_vendor(name="Current Co")
    stale = VendorFactory(name="Stale Co")
    AgreementFactory(vendor=stale)
    today = timezone.localdate()
    SecurityReviewFactory(vendor=stale, reviewed_on=today - dt.timedelta(days=400),
                          expires_on=today - dt.timedelta(days=20))
    VendorFactory(name="Paperless Co")

    page = dpo_client.get("/admin/vendors/vendor/").content.decode()

    assert "Review stale" in page
    assert "No current DPA" in page
    assert "Review to" in page


def test_the_vendor_page_answers_whether_data_may_be_shared_today(dpo_client):
    vendor = ready_vendor(name="Current Co")
    page = dpo_client.get(f"/admin/vendors/vendor/{vendor.pk}/change/").content.decode()
    assert "Yes: paperwork current" in page

    other = VendorFactory(name="Paperless Co")
    page = dpo_client.get(f"/admin/vendors/vendor/{other.pk}/change/").content.decode()
    assert "No: new approvals are blocked" in page


def test_expiring_reviews_are_listed_in_their_queue(dpo_client):
    vendor = VendorFactory(name="Soon Co")
    today = timezone.localdate()
    SecurityReviewFactory(vendor=vendor, expires_on=today + dt.timedelta(days=10))

    page = dpo_client.get("/admin/vendors/securityreview/?state=expiring").content.decode()

    assert "Soon Co" in page


def test_suspending_from_the_admin_asks_for_a_reason_then_suspends(dpo_client):
    integration = IntegrationFactory(name="Quizzical LTI")
    url = "/admin/vendors/integration/"
    form = {"action": "suspend_selected", "_selected_action": [integration.pk]}

    # given: the action asks for a reason first
    page = dpo_client.post(url, form)
    assert page.status_code == 200
    assert "Suspend integrations" in page.content.decode()
    integration.refresh_from_db()
    assert integration.status == IntegrationStatus.ACTIVE

    # when: a reason is given
    dpo_client.post(url, {**form, "reason": "Vendor reported a breach"})

    # then: it is suspended, and the audit log says why
    integration.refresh_from_db()
    assert integration.status == IntegrationStatus.SUSPENDED
    event = PendingAuditEvent.objects.get(action="vendors.integration_suspended")
    assert event.details["reason"] == "Vendor reported a breach"


def test_engineers_see_integrations_but_cannot_pull_levers(client, staff_user_factory):
    integration = IntegrationFactory()
    client.force_login(staff_user_factory(role="engineer"))

    assert client.get("/admin/vendors/integration/").status_code == 200
    client.post("/admin/vendors/integration/", {
        "action": "suspend_selected", "_selected_action": [integration.pk], "reason": "x"})

    integration.refresh_from_db()
    assert integration.status == IntegrationStatus.ACTIVE
    assert client.get("/admin/vendors/securityreview/").status_code == 403
