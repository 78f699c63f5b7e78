"""The sandbox's demo vendors: current paperwork, one integration of each kind, a plain REST
integration approved for names and emails, and a pending demographic request."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model

from apps.accounts.demo import demo_staff_seed
from apps.governance.models import ScopeRequest, ScopeRequestStatus
from apps.governance.selectors.grant import effective_grant
from apps.governance.services import requests as svc
from apps.vendors.demo import PLAIN_REST, demo_vendors_seed
from apps.vendors.models import Integration, IntegrationStatus, Vendor

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff():  # type: ignore[no-untyped-def]
    demo_staff_seed()
    return {u.username: u for u in get_user_model().objects.all()}


def test_demo_vendors_are_ready_and_integrations_cover_every_kind(staff):
    result = demo_vendors_seed(staff=staff)

    assert len(result["vendors"]) == 4
    for vendor in Vendor.objects.all():
        assert vendor.current_agreement() is not None
        assert vendor.current_security_review() is not None
    kinds = {row["kind"] for row in result["integrations"]}
    assert kinds == {"oneroster_rest", "oneroster_csv", "lti_tool"}
    assert all(row["client_id"] is None for row in result["integrations"])
    assert any(row["pseudonymised"] for row in result["integrations"])
    assert all(i.status == IntegrationStatus.ACTIVE for i in Integration.objects.all())


def test_the_plain_rest_integration_is_approved_for_names_and_emails(staff):
    result = demo_vendors_seed(staff=staff)

    row = next(r for r in result["integrations"] if r["name"] == PLAIN_REST)
    assert row["kind"] == "oneroster_rest" and row["pseudonymised"] is False
    assert row["scopes"] == ["https://purl.imsglobal.org/spec/or/v1p2/scope/roster.readonly"]
    grant = effective_grant(Integration.objects.get(name=PLAIN_REST))
    assert "directory" in grant.field_classes
    assert "users.email" in grant.fields


def test_a_pending_demographic_request_waits_for_the_two_demo_approvers(staff):
    demo_vendors_seed(staff=staff)

    pending = ScopeRequest.objects.get(status=ScopeRequestStatus.PENDING)
    assert pending.requested_by.username == "dev.engineer"
    assert "demographic" in pending.field_classes
    assert pending.approvals_required == 2
    assert svc.approval_blockers(pending) == []
    svc.scope_request_approve(request=pending, approver=staff["amira.dpo"], reason="ok")
    svc.scope_request_approve(request=pending, approver=staff["ben.itlead"], reason="ok")
    pending.refresh_from_db()
    assert pending.status == ScopeRequestStatus.APPROVED


def test_reseeding_changes_nothing(staff):
    first = demo_vendors_seed(staff=staff)
    requests = ScopeRequest.objects.count()

    assert demo_vendors_seed(staff=staff) == first
    assert ScopeRequest.objects.count() == requests
