"""The scope-request journey through the admin over HTTP: raise, see the diff, decide."""

from __future__ import annotations

import pytest
from django.urls import reverse

from apps.governance.models import ScopeRequest, ScopeRequestStatus
from apps.governance.selectors.grant import effective_grant
from apps.governance.services import requests as svc
from tests.vendors.factories import IntegrationFactory, ready_vendor

pytestmark = pytest.mark.django_db

OR = "https://purl.imsglobal.org/spec/or/v1p2/scope/"
ADD_URL = "/admin/governance/scoperequest/add/"
LIST_URL = "/admin/governance/scoperequest/"


def change_url(request) -> str:  # type: ignore[no-untyped-def]
    return reverse("admin:governance_scoperequest_change", args=[request.pk])


@pytest.fixture
def people(staff_user_factory):  # type: ignore[no-untyped-def]
    return {
        "engineer": staff_user_factory(username="dev.engineer", role="engineer"),
        "dpo": staff_user_factory(username="amira.dpo", role="governance"),
        "lead": staff_user_factory(username="ben.itlead", role="governance"),
        "auditor": staff_user_factory(username="audrey.audit", role="auditor"),
        "dsl": staff_user_factory(username="sam.dsl", role="safeguarding"),
    }


@pytest.fixture
def integration():  # type: ignore[no-untyped-def]
    vendor = ready_vendor(classes=["identifier", "directory", "demographic"], name="MathsCo")
    return IntegrationFactory(vendor=vendor, name="MathsCo REST")


def raise_demographic_request(client, integration, **extra):  # type: ignore[no-untyped-def]
    data = {
        "integration": integration.pk,
        "services": ["oneroster.rostering"],
        "scopes": [OR + "roster.readonly", OR + "roster-demographics.readonly"],
        "field_classes": ["identifier", "directory", "demographic"],
        "fields": "", "org_sourced_ids": "school-1",
        "justification": "Adaptive maths needs year group and date of birth.",
        "duration_days": 365, "dpia_reference": "DPIA-2026-004", "dpia_not_needed_reason": "",
        **extra,
    }
    return client.post(ADD_URL, data)


def test_an_engineer_raises_a_request_in_the_admin(client, people, integration):
    client.force_login(people["engineer"])

    response = raise_demographic_request(client, integration)

    request = ScopeRequest.objects.get()
    assert response.status_code == 302 and response.url == change_url(request)
    assert request.requested_by == people["engineer"]
    assert request.approvals_required == 2
    page = client.get(change_url(request)).content.decode()
    assert "2 more approvals needed" in page
    assert "+ demographic" in page  # the diff against today's (empty) grant


def test_the_admin_form_refuses_a_sensitive_request_without_a_dpia(client, people, integration):
    client.force_login(people["engineer"])

    response = raise_demographic_request(client, integration, dpia_reference="")

    assert response.status_code == 200
    assert "give a DPIA reference" in response.content.decode()
    assert not ScopeRequest.objects.exists()


def test_two_governance_users_approve_in_the_admin_and_only_then_is_it_granted(
    client, people, integration
):
    client.force_login(people["engineer"])
    raise_demographic_request(client, integration)
    request = ScopeRequest.objects.get()

    client.force_login(people["dpo"])
    page = client.get(change_url(request)).content.decode()
    assert 'name="_approve"' in page
    response = client.post(change_url(request), {"_approve": "1", "decision_reason": "DPIA ok"})
    assert response.status_code == 302
    assert effective_grant(integration).is_empty
    follow = client.get(change_url(request)).content.decode()
    assert "1 of 2" in follow
    assert svc.ERROR_ALREADY_DECIDED in follow  # the first approver cannot approve again

    client.force_login(people["lead"])
    client.post(change_url(request), {"_approve": "1", "decision_reason": "Agreed"})
    request.refresh_from_db()
    assert request.status == ScopeRequestStatus.APPROVED
    assert "demographic" in effective_grant(integration).field_classes


def test_the_same_approver_posting_twice_is_refused_and_not_counted(client, people, integration):
    client.force_login(people["engineer"])
    raise_demographic_request(client, integration)
    request = ScopeRequest.objects.get()
    client.force_login(people["dpo"])
    client.post(change_url(request), {"_approve": "1", "decision_reason": "ok"})

    response = client.post(change_url(request), {"_approve": "1", "decision_reason": "again"},
                           follow=True)

    assert svc.ERROR_ALREADY_DECIDED in response.content.decode()
    assert request.decisions.count() == 1
    request.refresh_from_db()
    assert request.status == ScopeRequestStatus.PENDING


def test_the_requester_sees_why_they_cannot_decide_and_a_forged_post_is_refused(
    client, people, integration
):
    client.force_login(people["dpo"])
    raise_demographic_request(client, integration)
    request = ScopeRequest.objects.get()

    page = client.get(change_url(request)).content.decode()
    assert 'name="_approve"' not in page
    assert svc.ERROR_SELF_APPROVAL in page
    response = client.post(change_url(request), {"_approve": "1", "decision_reason": "mine"},
                           follow=True)
    assert "Refused: " + svc.ERROR_SELF_APPROVAL in response.content.decode()
    assert not request.decisions.exists()


def test_blockers_are_shown_before_anyone_clicks(client, people):
    integration = IntegrationFactory(vendor=ready_vendor(classes=["directory"]))
    client.force_login(people["engineer"])
    raise_demographic_request(client, integration)
    request = ScopeRequest.objects.get()

    client.force_login(people["dpo"])
    page = client.get(change_url(request)).content.decode()

    assert "Approval is blocked" in page
    assert "exceeds the schedule of data" in page
    assert "disabled" in page


def test_an_engineer_can_view_but_not_decide(client, people, integration):
    request = svc.scope_request_create(
        integration=integration, requested_by=people["dpo"], justification="x",
        field_classes=["directory"])
    client.force_login(people["engineer"])

    response = client.post(change_url(request), {"_approve": "1", "decision_reason": "ok"},
                           follow=True)

    assert svc.ERROR_NOT_ALLOWED_TO_DECIDE in response.content.decode()
    request.refresh_from_db()
    assert request.status == ScopeRequestStatus.PENDING


def test_the_queues_count_pending_and_expiring_work(client, people, integration):
    svc.scope_request_create(integration=integration, requested_by=people["engineer"],
                             justification="x", field_classes=["directory"])
    client.force_login(people["dpo"])

    page = client.get(LIST_URL).content.decode()
    assert 'data-testid="queue-mine"' in page
    mine = client.get(LIST_URL + "?queue=mine")
    assert mine.status_code == 200
    assert "MathsCo REST" in mine.content.decode()
    client.force_login(people["lead"])
    assert client.get(LIST_URL + "?queue=expiring").status_code == 200


@pytest.mark.parametrize(
    "role,can_view,can_add",
    [("governance", True, True), ("engineer", True, True), ("auditor", True, False),
     ("safeguarding", True, False)],
)
def test_who_sees_and_raises_requests(client, staff_user_factory, role, can_view, can_add):
    client.force_login(staff_user_factory(role=role))
    assert (client.get(LIST_URL).status_code == 200) == can_view
    assert (client.get(ADD_URL).status_code == 200) == can_add


def test_auditors_see_vendors_read_only(client, staff_user_factory, integration):
    client.force_login(staff_user_factory(role="auditor"))
    assert client.get("/admin/vendors/vendor/").status_code == 200
    assert client.get("/admin/vendors/vendor/add/").status_code == 403
    page = client.get(f"/admin/vendors/vendor/{integration.vendor.pk}/change/")
    assert page.status_code == 200
