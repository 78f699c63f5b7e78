"""The scope-request rules, as the services enforce them for the admin and the CLI alike."""

from __future__ import annotations

import datetime as dt

import pytest
from django.core import mail
from django.utils import timezone

from apps.alerts.models import Alert
from apps.audit.models import PendingAuditEvent
from apps.governance.models import FieldClassification, ScopeRequestStatus
from apps.governance.selectors.grant import effective_grant, grant_diff
from apps.governance.services import requests as svc
from apps.vendors.models import ContactRole
from tests.vendors.factories import (
    AgreementFactory,
    ContactFactory,
    IntegrationFactory,
    SecurityReviewFactory,
    ready_vendor,
)

pytestmark = pytest.mark.django_db

ROSTER = "https://purl.imsglobal.org/spec/or/v1p2/scope/roster.readonly"
DEMOGRAPHICS = "https://purl.imsglobal.org/spec/or/v1p2/scope/roster-demographics.readonly"
GRADEBOOK_PUT = "https://purl.imsglobal.org/spec/or/v1p2/scope/gradebook.createput"


@pytest.fixture
def engineer(staff_user_factory):  # type: ignore[no-untyped-def]
    return staff_user_factory(username="dev.engineer", role="engineer")


@pytest.fixture
def dpo(staff_user_factory):  # type: ignore[no-untyped-def]
    return staff_user_factory(username="amira.dpo", role="governance")


@pytest.fixture
def it_lead(staff_user_factory):  # type: ignore[no-untyped-def]
    return staff_user_factory(username="ben.itlead", role="governance")


@pytest.fixture
def integration():  # type: ignore[no-untyped-def]
    vendor = ready_vendor(classes=["identifier", "directory", "contact", "demographic"])
    return IntegrationFactory(vendor=vendor, name="Maths Portal REST")


def roster_request(integration, by, **overrides):  # type: ignore[no-untyped-def]
    fields = {
        "services": ["oneroster.rostering"], "scopes_": [ROSTER],
        "field_classes": ["identifier", "directory"], "org_sourced_ids": ["school-1"],
        "justification": "Class lists for maths homework.",
    }
    return svc.scope_request_create(integration=integration, requested_by=by,
                                    **(fields | overrides))


def demographic_request(integration, by, **overrides):  # type: ignore[no-untyped-def]
    return roster_request(
        integration, by, scopes_=[ROSTER, DEMOGRAPHICS],
        field_classes=["identifier", "directory", "demographic"],
        dpia_reference="DPIA-2026-004", **overrides,
    )


def actions() -> list[str]:
    return list(PendingAuditEvent.objects.order_by("id").values_list("action", flat=True))


# --- raising -----------------------------------------------------------------------------------


def test_an_engineer_raises_a_pending_request_and_it_is_audited(integration, engineer):
    request = roster_request(integration, engineer)

    assert request.status == ScopeRequestStatus.PENDING
    assert request.approvals_required == 1
    assert actions() == ["governance.scope_request_created"]
    assert effective_grant(integration).is_empty


def test_an_auditor_cannot_raise_a_request(integration, staff_user_factory):
    with pytest.raises(svc.ScopeRequestRefused, match=svc.ERROR_NOT_ALLOWED_TO_REQUEST):
        roster_request(integration, staff_user_factory(role="auditor"))


def test_unknown_scopes_and_fields_are_refused_at_the_door(integration, engineer):
    with pytest.raises(svc.ScopeRequestRefused) as refused:
        roster_request(integration, engineer, scopes_=["roster.everything"],
                       fields=["users.password"])
    assert "Unknown scope: roster.everything" in str(refused.value)
    assert "Unknown field: users.password" in str(refused.value)


@pytest.mark.parametrize(
    "sensitive",
    [
        {"field_classes": ["demographic"]},
        {"field_classes": ["special_category"]},
        {"field_classes": ["credential"]},
        {"fields": ["demographics.birth_date"]},
        {"scopes_": [GRADEBOOK_PUT]},
    ],
    ids=["demographic", "special_category", "credential", "single sensitive field",
         "gradebook write"],
)
def test_sensitive_requests_need_a_dpia_reference_or_a_recorded_reason(
    integration, engineer, sensitive
):
    with pytest.raises(svc.ScopeRequestRefused, match="give a DPIA reference"):
        roster_request(integration, engineer, **sensitive)

    request = roster_request(integration, engineer, dpia_not_needed_reason="Covered by LA DPIA",
                             **sensitive)
    assert request.approvals_required == 2


# --- deciding ----------------------------------------------------------------------------------


def test_one_approval_grants_non_sensitive_data_for_twelve_months(integration, engineer, dpo):
    request = roster_request(integration, engineer)

    svc.scope_request_approve(request=request, approver=dpo, reason="Matches the DPA")

    request.refresh_from_db()
    assert request.status == ScopeRequestStatus.APPROVED
    assert request.expires_at - request.approved_at == dt.timedelta(days=365)
    grant = effective_grant(integration)
    assert grant.scopes == {ROSTER}
    assert grant.field_classes == {"identifier", "directory"}
    assert grant.org_sourced_ids == {"school-1"}
    assert grant.approvals == (request.pk,)
    assert actions()[-1] == "governance.scope_request_approved"


def test_self_approval_is_refused_even_for_governance_staff(integration, dpo):
    request = roster_request(integration, dpo)

    with pytest.raises(svc.ScopeRequestRefused, match=svc.ERROR_SELF_APPROVAL):
        svc.scope_request_approve(request=request, approver=dpo, reason="Looks fine")
    request.refresh_from_db()
    assert request.status == ScopeRequestStatus.PENDING
    assert not request.decisions.exists()


def test_an_engineer_cannot_approve(integration, engineer, staff_user_factory):
    other_engineer = staff_user_factory(role="engineer")
    request = roster_request(integration, engineer)

    with pytest.raises(svc.ScopeRequestRefused, match=svc.ERROR_NOT_ALLOWED_TO_DECIDE):
        svc.scope_request_approve(request=request, approver=other_engineer, reason="ok")


def test_sensitive_data_needs_a_second_different_approver(integration, engineer, dpo, it_lead):
    request = demographic_request(integration, engineer)

    # given one approval
    svc.scope_request_approve(request=request, approver=dpo, reason="DPIA reviewed")
    request.refresh_from_db()
    # then nothing is granted yet
    assert request.status == ScopeRequestStatus.PENDING
    assert effective_grant(integration).is_empty
    assert actions()[-1] == "governance.scope_request_approval_recorded"

    # and the same approver is not counted twice
    with pytest.raises(svc.ScopeRequestRefused, match=svc.ERROR_ALREADY_DECIDED):
        svc.scope_request_approve(request=request, approver=dpo, reason="Approving again")
    assert request.decisions.count() == 1
    assert effective_grant(integration).is_empty

    # when a different person approves, it is granted
    svc.scope_request_approve(request=request, approver=it_lead, reason="Agreed")
    request.refresh_from_db()
    assert request.status == ScopeRequestStatus.APPROVED
    assert "demographic" in effective_grant(integration).field_classes
    assert actions()[-1] == "governance.scope_request_approved"


def test_one_denial_ends_the_request_and_needs_a_reason(integration, engineer, dpo):
    request = demographic_request(integration, engineer)

    with pytest.raises(svc.ScopeRequestRefused, match=svc.ERROR_REASON_REQUIRED):
        svc.scope_request_deny(request=request, approver=dpo, reason=" ")
    svc.scope_request_deny(request=request, approver=dpo, reason="Not needed for homework")

    request.refresh_from_db()
    assert request.status == ScopeRequestStatus.DENIED
    assert effective_grant(integration).is_empty
    assert actions()[-1] == "governance.scope_request_denied"


def test_a_decided_request_cannot_be_decided_again(integration, engineer, dpo, it_lead):
    request = roster_request(integration, engineer)
    svc.scope_request_deny(request=request, approver=dpo, reason="No")

    with pytest.raises(svc.ScopeRequestRefused, match="is denied; only a pending request"):
        svc.scope_request_approve(request=request, approver=it_lead, reason="Yes")


# --- the vendor's paperwork ----------------------------------------------------------------------


def test_approval_is_blocked_when_the_request_exceeds_the_schedule_of_data(engineer, dpo):
    vendor = ready_vendor(classes=["identifier", "directory"])
    integration = IntegrationFactory(vendor=vendor)
    request = roster_request(integration, engineer, field_classes=["directory", "contact"],
                             fields=["users.phone"])

    with pytest.raises(svc.ScopeRequestRefused) as refused:
        svc.scope_request_approve(request=request, approver=dpo, reason="ok")

    assert "exceeds the schedule of data" in str(refused.value)
    assert "class contact, field users.phone not allowed" in str(refused.value)
    assert effective_grant(integration).is_empty


def test_a_single_field_named_in_the_schedule_is_allowed(engineer, dpo):
    vendor = ready_vendor(classes=["identifier", "directory"], fields=["users.email"])
    integration = IntegrationFactory(vendor=vendor)
    request = roster_request(integration, engineer, fields=["users.email"], claims=["email"])

    svc.scope_request_approve(request=request, approver=dpo, reason="Email is in the DPA")

    assert effective_grant(integration).fields == {"users.email"}
    assert effective_grant(integration).claims == {"email"}


def test_an_lti_email_claim_counts_against_the_schedule(engineer, dpo):
    integration = IntegrationFactory(vendor=ready_vendor(classes=["identifier", "directory"]))
    request = roster_request(integration, engineer, services=["lti.launch"], scopes_=[],
                             field_classes=[], claims=["email"])

    with pytest.raises(svc.ScopeRequestRefused, match="field users.email not allowed"):
        svc.scope_request_approve(request=request, approver=dpo, reason="ok")


def test_approval_is_blocked_without_a_current_agreement(engineer, dpo):
    integration = IntegrationFactory()
    SecurityReviewFactory(vendor=integration.vendor)
    today = timezone.localdate()
    AgreementFactory(vendor=integration.vendor, signed_on=today - dt.timedelta(days=800),
                     expires_on=today - dt.timedelta(days=1))
    request = roster_request(integration, engineer)

    with pytest.raises(svc.ScopeRequestRefused, match="no current data-processing agreement"):
        svc.scope_request_approve(request=request, approver=dpo, reason="ok")


def test_approval_is_blocked_when_the_security_review_is_stale(engineer, dpo):
    integration = IntegrationFactory()
    AgreementFactory(vendor=integration.vendor)
    today = timezone.localdate()
    SecurityReviewFactory(vendor=integration.vendor, reviewed_on=today - dt.timedelta(days=400),
                          expires_on=today - dt.timedelta(days=35))
    request = roster_request(integration, engineer)

    assert any("no current security review" in b for b in svc.approval_blockers(request))
    with pytest.raises(svc.ScopeRequestRefused, match="no current security review"):
        svc.scope_request_approve(request=request, approver=dpo, reason="ok")


def test_a_failed_security_review_does_not_count(engineer, dpo):
    integration = IntegrationFactory()
    AgreementFactory(vendor=integration.vendor)
    SecurityReviewFactory(vendor=integration.vendor, outcome="failed")
    request = roster_request(integration, engineer)

    with pytest.raises(svc.ScopeRequestRefused, match="no current security review"):
        svc.scope_request_approve(request=request, approver=dpo, reason="ok")


def test_a_denial_is_allowed_even_when_the_paperwork_is_missing(engineer, dpo):
    integration = IntegrationFactory()
    request = roster_request(integration, engineer)

    svc.scope_request_deny(request=request, approver=dpo, reason="No agreement yet")

    request.refresh_from_db()
    assert request.status == ScopeRequestStatus.DENIED


def test_a_reviewed_reclassification_makes_a_field_sensitive(integration, engineer, dpo, it_lead):
    FieldClassification.objects.create(
        entity="users", column="email", field_class="special_category", reason="Local policy",
        proposed_by=dpo, reviewed_by=it_lead, reviewed_at=timezone.now(),
    )
    with pytest.raises(svc.ScopeRequestRefused, match="give a DPIA reference"):
        roster_request(integration, engineer, fields=["users.email"])


# --- time ----------------------------------------------------------------------------------------


def test_an_approval_stops_granting_at_its_expiry_and_is_then_marked_expired(
    integration, engineer, dpo
):
    request = roster_request(integration, engineer, duration_days=30)
    svc.scope_request_approve(request=request, approver=dpo, reason="ok")
    request.refresh_from_db()
    end = request.expires_at

    assert effective_grant(integration, at=end - dt.timedelta(seconds=1)).approvals == (request.pk,)
    assert effective_grant(integration, at=end).is_empty

    assert svc.scope_requests_expire(now=end - dt.timedelta(seconds=1)) == []
    assert svc.scope_requests_expire(now=end) == [request.pk]
    request.refresh_from_db()
    assert request.status == ScopeRequestStatus.EXPIRED
    assert actions()[-1] == "governance.scope_request_expired"


def test_before_expiry_the_vendor_is_told_and_the_approval_flagged_for_recertification(
    integration, engineer, dpo
):
    ContactFactory(vendor=integration.vendor, role=ContactRole.DATA_PROTECTION,
                   email="dpo@vendor.example")
    ContactFactory(vendor=integration.vendor, role=ContactRole.BILLING,
                   email="bills@vendor.example")
    request = roster_request(integration, engineer)
    svc.scope_request_approve(request=request, approver=dpo, reason="ok")
    request.refresh_from_db()

    # not yet: more than 30 days to go
    assert svc.scope_requests_send_expiry_notices(
        now=request.expires_at - dt.timedelta(days=31)) == []
    # now: once, however often the task runs
    soon = request.expires_at - dt.timedelta(days=29)
    assert svc.scope_requests_send_expiry_notices(now=soon) == [request.pk]
    assert svc.scope_requests_send_expiry_notices(now=soon) == []

    request.refresh_from_db()
    assert request.recertification_flagged_at is not None
    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    assert sorted(message.to) == ["dpo@vendor.example", "primary@vendor.example"]
    assert "Maths Portal REST" in message.subject
    alert = Alert.objects.get(rule="governance.approval_expiring")
    assert "Maths Portal REST" in alert.subject


def test_withdrawing_an_approval_ends_the_grant_at_once(integration, engineer, dpo):
    request = roster_request(integration, engineer)
    svc.scope_request_approve(request=request, approver=dpo, reason="ok")
    before = timezone.now()

    svc.scope_request_withdraw(request=request, actor=dpo, reason="Vendor left the trust")

    assert effective_grant(integration).is_empty
    # and history is kept: the grant at an earlier instant is unchanged
    assert effective_grant(integration, at=before).approvals == (request.pk,)


def test_only_the_requester_or_governance_can_withdraw(integration, engineer, staff_user_factory):
    request = roster_request(integration, engineer)
    with pytest.raises(svc.ScopeRequestRefused, match=svc.ERROR_NOT_YOURS_TO_WITHDRAW):
        svc.scope_request_withdraw(request=request, actor=staff_user_factory(role="engineer"),
                                   reason="mine now")
    svc.scope_request_withdraw(request=request, actor=engineer, reason="Raised by mistake")
    request.refresh_from_db()
    assert request.status == ScopeRequestStatus.WITHDRAWN


# --- the grant and the diff ----------------------------------------------------------------------


def test_the_grant_is_the_union_of_live_approvals(engineer, dpo, it_lead):
    integration = IntegrationFactory(vendor=ready_vendor(classes=["directory", "contact"]))
    first = roster_request(integration, engineer, org_sourced_ids=["school-1"])
    second = roster_request(integration, engineer, services=["lti.launch"], scopes_=[],
                            field_classes=["contact"], claims=["email"],
                            org_sourced_ids=["school-2"])
    svc.scope_request_approve(request=first, approver=dpo, reason="ok")
    svc.scope_request_approve(request=second, approver=it_lead, reason="ok")

    grant = effective_grant(integration)
    assert grant.services == {"oneroster.rostering", "lti.launch"}
    assert grant.field_classes == {"identifier", "directory", "contact"}
    assert grant.org_sourced_ids == {"school-1", "school-2"}
    assert grant.approvals == (first.pk, second.pk)


def test_a_new_request_shows_what_it_adds_to_todays_grant(integration, engineer, dpo):
    approved = roster_request(integration, engineer)
    svc.scope_request_approve(request=approved, approver=dpo, reason="ok")

    new = demographic_request(integration, engineer)
    diff = grant_diff(new)

    assert diff.added["scopes"] == (DEMOGRAPHICS,)
    assert diff.added["field_classes"] == ("demographic",)
    assert diff.kept["field_classes"] == ("directory", "identifier")
    assert diff.adds_anything


def test_a_recertification_copies_the_request_and_links_it(integration, engineer, dpo):
    approved = roster_request(integration, engineer)
    svc.scope_request_approve(request=approved, approver=dpo, reason="ok")

    renewal = svc.scope_request_recertify(request=approved, requested_by=engineer)

    assert renewal.status == ScopeRequestStatus.PENDING
    assert renewal.renews == approved
    assert renewal.field_classes == approved.field_classes
    assert not grant_diff(renewal).adds_anything


def test_the_daily_task_sends_notices_and_expires(integration, engineer, dpo):
    from apps.governance.tasks import scope_requests_sweep_task

    request = roster_request(integration, engineer, duration_days=10)
    svc.scope_request_approve(request=request, approver=dpo, reason="ok")

    result = scope_requests_sweep_task.delay().get()

    assert result == {"notified": [request.pk], "expired": []}
    assert len(mail.outbox) == 1


def test_an_approved_request_still_shows_what_it_added(integration, engineer, dpo):
    request = roster_request(integration, engineer)
    svc.scope_request_approve(request=request, approver=dpo, reason="ok")

    diff = grant_diff(request)

    assert diff.added["field_classes"] == ("directory", "identifier")
