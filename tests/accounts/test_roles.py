"""Each role sees what its persona needs, and nothing else (least privilege)."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group

from apps.accounts.roles import ROLES
from apps.audit import audit
from apps.audit.models import AuditEvent

pytestmark = pytest.mark.django_db

# admin page -> roles that may open it (every other staff role gets 403)
VISIBILITY = {
    "/admin/alerts/alert/": {"governance", "safeguarding", "engineer", "auditor"},
    "/admin/audit/auditevent/": {"governance", "safeguarding", "auditor"},
    "/admin/audit/accessrecord/": {"governance", "engineer", "auditor"},
    "/admin/audit/disclosure/": {"governance", "auditor"},
    "/admin/keys/signingkey/": {"governance", "safeguarding", "engineer", "auditor"},
    "/admin/monitoring/dashboard/": {"governance", "safeguarding", "engineer", "auditor"},
    "/admin/monitoring/monitoringrule/": {"governance", "engineer", "auditor"},
    "/admin/monitoring/alertchannel/": {"governance", "engineer", "auditor"},
    "/admin/lti/tokenrequest/": {"governance", "engineer", "auditor"},
    "/admin/lti/agslineitem/": {"governance", "engineer", "auditor"},
    "/admin/offboarding/offboarding/": {"governance", "auditor"},
    "/admin/offboarding/controlpack/": {"governance", "auditor"},
    "/admin/offboarding/disclosurehistory/": {"governance"},
    "/admin/auth/user/": set(),  # staff accounts are managed by break-glass administrators only
    "/admin/auth/group/": set(),
}
ALL_ROLES = ("governance", "safeguarding", "engineer", "auditor")


@pytest.mark.parametrize("path", sorted(VISIBILITY))
@pytest.mark.parametrize("role", ALL_ROLES)
def test_admin_pages_open_only_for_the_roles_that_need_them(client, staff_user_factory, role, path):
    client.force_login(staff_user_factory(role=role))

    response = client.get(path)

    expected = 200 if role in VISIBILITY[path] else 403
    assert response.status_code == expected, f"{role} on {path}"


def test_role_groups_hold_exactly_the_permissions_defined_in_code():
    for role in ROLES:
        group = Group.objects.get(name=role.group_name)
        granted = {
            f"{perm.content_type.app_label}.{perm.codename}"
            for perm in group.permissions.select_related("content_type")
        }
        assert granted == set(role.permissions), role.key


@pytest.mark.parametrize("role", ALL_ROLES)
def test_nobody_but_a_superuser_can_change_staff_or_audit_records(client, staff_user_factory, role):
    user = staff_user_factory(role=role)

    assert not user.has_perm("auth.change_user")
    assert not user.has_perm("auth.change_group")
    assert not user.has_perm("audit.change_auditevent")
    assert not user.has_perm("audit.delete_auditevent")


def test_auditors_read_but_cannot_change_alerts(staff_user_factory):
    auditor = staff_user_factory(role="auditor")

    assert auditor.has_perm("alerts.view_alert")
    assert not auditor.has_perm("alerts.change_alert")


def test_only_safeguarding_officers_see_restricted_audit_details(
    client, staff_user_factory, django_capture_on_commit_callbacks
):
    officer = staff_user_factory(role="safeguarding")
    with django_capture_on_commit_callbacks(execute=True):
        audit.record(
            actor=officer,
            action="governance.exclusion_created",
            details={"exclusion": "EXC-1"},
            restricted_details={"reason": "court order R-7731"},
        )
    event = AuditEvent.objects.get()
    url = f"/admin/audit/auditevent/{event.pk}/change/"

    client.force_login(officer)
    assert "court order R-7731" in client.get(url).content.decode()

    client.force_login(staff_user_factory(role="governance"))
    page = client.get(url).content.decode()
    assert "court order R-7731" not in page
    assert "EXC-1" in page


def test_auditors_export_control_packs_but_cannot_run_offboarding(staff_user_factory):
    auditor = staff_user_factory(role="auditor")
    governance = staff_user_factory(role="governance")

    assert auditor.has_perm("offboarding.export_controlpack")
    assert auditor.has_perm("offboarding.view_offboarding")
    assert not auditor.has_perm("offboarding.run_offboarding")
    assert not auditor.has_perm("offboarding.change_offboarding")
    assert not auditor.has_perm("offboarding.view_disclosurehistory")
    assert governance.has_perm("offboarding.run_offboarding")
    assert governance.has_perm("offboarding.view_disclosurehistory")


def test_governance_records_incidents_and_auditors_read_them(staff_user_factory):
    assert staff_user_factory(role="governance").has_perm("offboarding.add_incident")
    auditor = staff_user_factory(role="auditor")
    assert auditor.has_perm("offboarding.view_incident")
    assert not auditor.has_perm("offboarding.change_incident")
