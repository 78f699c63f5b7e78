"""scope_requests and approve_scope_request: the admin's rules, from the command line."""

from __future__ import annotations

import json

import pytest
from django.core.management import ManagementUtility, call_command
from django.db import connections

from apps.governance.models import ScopeRequestStatus
from apps.governance.selectors.grant import effective_grant
from apps.governance.services import requests as svc
from tests.vendors.factories import IntegrationFactory, ready_vendor

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _keep_the_test_connection(monkeypatch):  # type: ignore[no-untyped-def]
    """``run_from_argv`` closes every connection when it ends; the test's transaction must
    survive it (Django's own behaviour, not ours, is what is replaced)."""
    monkeypatch.setattr(connections, "close_all", lambda: None)


def manage(*argv: str) -> int:
    """Run a command exactly as ``manage.py`` does, returning its exit status."""
    try:
        ManagementUtility(["manage.py", *argv]).execute()
    except SystemExit as exit_:
        return int(exit_.code or 0)
    return 0


@pytest.fixture
def people(staff_user_factory):  # type: ignore[no-untyped-def]
    return {
        "engineer": staff_user_factory(username="dev.engineer", role="engineer"),
        "dpo": staff_user_factory(username="amira.dpo", role="governance"),
        "lead": staff_user_factory(username="ben.itlead", role="governance"),
    }


@pytest.fixture
def demographic_request(people):  # type: ignore[no-untyped-def]
    integration = IntegrationFactory(
        vendor=ready_vendor(classes=["identifier", "directory", "demographic"],
                            fields=["users.email"]),
        name="MathsCo REST")
    return svc.scope_request_create(
        integration=integration, requested_by=people["engineer"],
        justification="Adaptive maths", field_classes=["directory", "demographic"],
        fields=["users.email"], dpia_reference="DPIA-7",
    )


def test_scope_requests_json_lists_requests_with_their_approvals(
    people, demographic_request, capsys
):
    svc.scope_request_approve(request=demographic_request, approver=people["dpo"], reason="ok")

    call_command("scope_requests", "--json")

    rows = json.loads(capsys.readouterr().out)
    assert rows == [{
        "id": demographic_request.pk, "integration": "MathsCo REST",
        "vendor": demographic_request.integration.vendor.name, "status": "pending",
        "services": [], "scopes": [], "field_classes": ["demographic", "directory"],
        "fields": ["users.email"], "claims": [], "org_sourced_ids": [],
        "requested_by": "dev.engineer", "requested_at": rows[0]["requested_at"],
        "approvals_required": 2,
        "approvals": [{"by": "amira.dpo", "decision": "approve", "reason": "ok",
                       "at": rows[0]["approvals"][0]["at"]}],
        "expires_at": None,
    }]


def test_two_approvals_from_the_command_line_grant_the_request(people, demographic_request,
                                                                capsys):
    pk = str(demographic_request.pk)
    assert manage("approve_scope_request", pk, "--as", "amira.dpo", "--reason", "DPIA ok") == 0
    assert "1 more approval(s)" in capsys.readouterr().out
    assert effective_grant(demographic_request.integration).is_empty

    assert manage("approve_scope_request", pk, "--as", "ben.itlead", "--reason", "Agreed") == 0
    assert "approved until" in capsys.readouterr().out
    demographic_request.refresh_from_db()
    assert demographic_request.status == ScopeRequestStatus.APPROVED


@pytest.mark.parametrize(
    "username,message",
    [("dev.engineer", svc.ERROR_NOT_ALLOWED_TO_DECIDE), ("nobody", "No active staff user")],
)
def test_a_refused_decision_exits_non_zero_with_the_reason(
    people, demographic_request, capsys, username, message
):
    status = manage("approve_scope_request", str(demographic_request.pk), "--as", username,
                    "--reason", "ok")

    assert status != 0
    assert message in capsys.readouterr().err
    assert not demographic_request.decisions.exists()


def test_the_same_approver_twice_is_refused_on_the_command_line(
    people, demographic_request, capsys
):
    pk = str(demographic_request.pk)
    manage("approve_scope_request", pk, "--as", "amira.dpo", "--reason", "ok")

    status = manage("approve_scope_request", pk, "--as", "amira.dpo", "--reason", "again")

    assert status == 1
    assert svc.ERROR_ALREADY_DECIDED in capsys.readouterr().err
    assert demographic_request.decisions.count() == 1


def test_self_approval_is_refused_on_the_command_line(people, capsys):
    integration = IntegrationFactory(vendor=ready_vendor())
    request = svc.scope_request_create(integration=integration, requested_by=people["dpo"],
                                       justification="x", field_classes=["directory"])

    status = manage("approve_scope_request", str(request.pk), "--as", "amira.dpo",
                    "--reason", "mine")

    assert status == 1
    assert svc.ERROR_SELF_APPROVAL in capsys.readouterr().err


def test_deny_from_the_command_line(people, demographic_request, capsys):
    assert manage("approve_scope_request", str(demographic_request.pk), "--as", "ben.itlead",
                  "--reason", "Not needed", "--deny") == 0
    demographic_request.refresh_from_db()
    assert demographic_request.status == ScopeRequestStatus.DENIED
