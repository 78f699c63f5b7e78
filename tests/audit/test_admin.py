"""The audit admin: read-only records, restricted details only for those allowed to see them."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse

from apps.audit import audit, services
from apps.audit.admin import RESTRICTED_PLACEHOLDER
from apps.audit.models import AuditEvent, Channel, Disclosure
from apps.audit.services import disclosures_record

pytestmark = pytest.mark.django_db

SECRET_REASON = "court order 2026/17"


@pytest.fixture
def exclusion_event(django_capture_on_commit_callbacks, staff_user_factory):
    officer = staff_user_factory(username="dsl", role="safeguarding")
    with django_capture_on_commit_callbacks(execute=True):
        audit.record(
            actor=officer,
            action="governance.exclusion_created",
            details={"scope": "all vendors"},
            restricted_details={"pupil": "S123", "reason": SECRET_REASON},
        )
    return AuditEvent.objects.get()


def event_page(client, event):
    return client.get(reverse("admin:audit_auditevent_change", args=[event.pk]))


def test_safeguarding_officers_see_restricted_details(client, exclusion_event):
    client.force_login(get_user_model().objects.get(username="dsl"))

    page = event_page(client, exclusion_event)

    assert page.status_code == 200
    assert SECRET_REASON in page.content.decode()


@pytest.mark.parametrize("role", ["governance", "auditor"])
def test_other_roles_see_that_details_are_restricted_but_not_what_they_are(
    client, staff_user_factory, exclusion_event, role
):
    client.force_login(staff_user_factory(role=role))

    page = event_page(client, exclusion_event)

    content = page.content.decode()
    assert page.status_code == 200
    assert SECRET_REASON not in content and "S123" not in content
    assert RESTRICTED_PLACEHOLDER in content
    assert "all vendors" in content  # ordinary details are visible


def test_the_log_lists_and_searches_but_cannot_be_edited(
    client, staff_user_factory, exclusion_event
):
    client.force_login(staff_user_factory(role="auditor"))

    listing = client.get(reverse("admin:audit_auditevent_changelist"), {"q": "exclusion"})
    assert listing.status_code == 200
    assert list(listing.context["cl"].result_list) == [exclusion_event]
    assert "governance.exclusion_created" in listing.content.decode()
    assert "dsl" in listing.content.decode()

    assert client.get(reverse("admin:audit_auditevent_add")).status_code == 403
    delete_url = reverse("admin:audit_auditevent_delete", args=[exclusion_event.pk])
    assert client.post(delete_url, {"post": "yes"}).status_code == 403
    client.post(
        reverse("admin:audit_auditevent_change", args=[exclusion_event.pk]),
        {"action": "audit.tampered"},
    )
    assert AuditEvent.objects.get().action == "governance.exclusion_created"


def test_searching_cannot_probe_restricted_details(client, staff_user_factory, exclusion_event):
    client.force_login(staff_user_factory(role="governance"))

    listing = client.get(reverse("admin:audit_auditevent_changelist"), {"q": SECRET_REASON})

    assert listing.status_code == 200
    assert list(listing.context["cl"].result_list) == []


def test_engineers_see_access_records_but_not_the_audit_log(
    client, staff_user_factory, exclusion_event
):
    services.access_record(
        integration_id=5,
        channel=Channel.ONEROSTER_REST,
        endpoint="/ims/oneroster/rostering/v1p2/users",
        status_code=200,
        records=100,
        duration_ms=12,
    )
    client.force_login(staff_user_factory(role="engineer"))

    assert client.get(reverse("admin:audit_auditevent_changelist")).status_code == 403
    for name in ("accessrecord", "accesshourly"):
        page = client.get(reverse(f"admin:audit_{name}_changelist"))
        assert page.status_code == 200
        assert "/ims/oneroster/rostering/v1p2/users" in page.content.decode()


def test_the_disclosure_ledger_shows_pupils_by_sourced_id_and_field_class(
    client, staff_user_factory
):
    disclosures_record(
        vendor_id=1,
        integration_id=2,
        channel=Channel.LTI_NRPS,
        field_classes=["identifier", "directory"],
        user_sourced_ids=["S123"],
    )
    client.force_login(staff_user_factory(role="auditor"))

    page = client.get(reverse("admin:audit_disclosure_changelist"), {"q": "S123"})

    assert "identifier, directory" in page.content.decode()
    assert Disclosure.objects.count() == 1


def test_auditors_may_export_and_only_safeguarding_sees_restricted_details(staff_user_factory):
    auditor = staff_user_factory(role="auditor")
    officer = staff_user_factory(role="safeguarding")

    assert auditor.has_perm("audit.export_audit")
    assert not auditor.has_perm("audit.view_restricted_details")
    assert officer.has_perm("audit.view_restricted_details")
    assert not any(
        user.has_perm(f"audit.{verb}_auditevent")
        for user in (auditor, officer)
        for verb in ("add", "change", "delete")
    )
