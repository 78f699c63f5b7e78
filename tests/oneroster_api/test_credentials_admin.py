"""Issuing, rotating and revoking OneRoster credentials through the admin, over HTTP: the
secret is shown once, to governance staff only, and works at the token endpoint at once."""

from __future__ import annotations

import base64
import re

import pytest
from django.test import Client

from apps.governance.models import ScopeRequest
from apps.oneroster_api import services as svc
from apps.oneroster_api.models import OneRosterClient
from apps.vendors.models import IntegrationKind
from tests.governance import release_world as world
from tests.oneroster_api.conftest import CORE, FULL

pytestmark = pytest.mark.django_db

ADMIN = "/admin/oneroster_api/onerosterclient"
SECRET = re.compile(r'data-testid="client-secret">([^<]+)<')
CLIENT_ID = re.compile(r'data-testid="client-id">([^<]+)<')


def issue_url(integration) -> str:  # type: ignore[no-untyped-def]
    return f"{ADMIN}/issue/{integration.pk}/"


def approved_integration(kind: str = IntegrationKind.ONEROSTER_REST):  # type: ignore[no-untyped-def]
    integration = world.integration(kind=kind)
    world.approve(integration, scopes=(CORE, FULL))
    return integration


def token_status(client_id: str, secret: str) -> int:
    basic = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
    return Client().post("/oauth/token", {"grant_type": "client_credentials"},
                         HTTP_AUTHORIZATION=f"Basic {basic}").status_code


@pytest.fixture
def governance(client, staff_user_factory):  # type: ignore[no-untyped-def]
    client.force_login(staff_user_factory(username="gov.issuer", role="governance"))
    return client


def issue(http, integration) -> tuple[str, str, object]:  # type: ignore[no-untyped-def]
    response = http.post(issue_url(integration))
    assert response.status_code == 200, response.content
    page = response.content.decode()
    return CLIENT_ID.search(page).group(1), SECRET.search(page).group(1), response


def test_governance_issues_credentials_and_sees_the_secret_once(governance):
    integration = approved_integration()
    assert governance.get(issue_url(integration)).status_code == 200

    client_id, secret, response = issue(governance, integration)

    page = response.content.decode()
    assert "cannot be shown again" in page
    assert "/oauth/token" in page and "/ims/oneroster/rostering/v1p2" in page
    assert "no-store" in response["Cache-Control"].split(", ")
    assert token_status(client_id, secret) == 200
    # a reload (the GET, or the POST again) and the client's own page never show it again
    assert secret not in governance.get(issue_url(integration)).content.decode()
    again = governance.post(issue_url(integration), follow=True).content.decode()
    assert secret not in again
    assert "already has a client" in again
    client = OneRosterClient.objects.get(integration=integration)
    assert secret not in governance.get(f"{ADMIN}/{client.pk}/change/").content.decode()
    assert secret not in str(dict(governance.session.items()))


@pytest.mark.parametrize(("overlap", "old_status"), [(24, 200), (0, 401)])
def test_rotation_keeps_the_old_secret_working_for_the_overlap(governance, overlap, old_status):
    integration = approved_integration()
    client_id, old_secret, _ = issue(governance, integration)
    client = OneRosterClient.objects.get(integration=integration)

    response = governance.post(f"{ADMIN}/{client.pk}/rotate/", {"overlap_hours": overlap})

    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"].split(", ")
    new_secret = SECRET.search(response.content.decode()).group(1)
    assert new_secret != old_secret
    assert token_status(client_id, new_secret) == 200
    assert token_status(client_id, old_secret) == old_status


def test_revocation_makes_the_next_token_request_fail(governance):
    integration = approved_integration()
    client_id, secret, _ = issue(governance, integration)
    client = OneRosterClient.objects.get(integration=integration)
    assert token_status(client_id, secret) == 200

    response = governance.post(f"{ADMIN}/{client.pk}/revoke/", {"reason": "contract ended"})

    assert response.status_code == 302
    assert token_status(client_id, secret) == 401
    client.refresh_from_db()
    assert client.revoked_reason == "contract ended"


def test_revocation_needs_a_reason(governance):
    integration = approved_integration()
    issue(governance, integration)
    client = OneRosterClient.objects.get(integration=integration)

    response = governance.post(f"{ADMIN}/{client.pk}/revoke/", {"reason": ""})

    assert response.status_code == 200  # the form again, with its error
    client.refresh_from_db()
    assert client.revoked_at is None


@pytest.mark.parametrize("role", ["engineer", "auditor"])
def test_engineers_and_auditors_cannot_issue_rotate_or_revoke(client, staff_user_factory, role):
    integration = approved_integration()
    svc.oauth_client_issue(integration=integration, actor=None)
    other = approved_integration()
    onerc = OneRosterClient.objects.get(integration=integration)
    client.force_login(staff_user_factory(role=role))

    assert client.get(f"{ADMIN}/").status_code == 200  # they may read the records
    for url, data in ((issue_url(other), {}),
                      (f"{ADMIN}/{onerc.pk}/rotate/", {"overlap_hours": 1}),
                      (f"{ADMIN}/{onerc.pk}/revoke/", {"reason": "x"})):
        assert client.get(url).status_code == 403, url
        assert client.post(url, data).status_code == 403, url
    assert not OneRosterClient.objects.filter(integration=other).exists()
    onerc.refresh_from_db()
    assert onerc.revoked_at is None and onerc.secrets.count() == 1


def test_an_unapproved_integration_is_refused_with_the_service_message(governance):
    integration = world.integration()

    page = governance.post(issue_url(integration), follow=True).content.decode()

    assert svc.ERROR_NOT_APPROVED.format(name=integration.name).split(";")[0] in page
    assert not OneRosterClient.objects.exists()


def test_a_non_rest_integration_is_refused_with_the_service_message(governance):
    integration = approved_integration(kind=IntegrationKind.ONEROSTER_CSV)

    page = governance.post(issue_url(integration), follow=True).content.decode()

    assert svc.ERROR_NOT_REST.format(name=integration.name) in page
    assert not OneRosterClient.objects.exists()


def test_the_approved_request_offers_to_issue_credentials_until_they_are_issued(governance):
    integration = approved_integration()
    request = ScopeRequest.objects.get(integration=integration)
    page_url = f"/admin/governance/scoperequest/{request.pk}/change/"

    page = governance.get(page_url).content.decode()
    assert "Issue credentials now" in page
    assert issue_url(integration) in page

    issue(governance, integration)
    assert "Issue credentials now" not in governance.get(page_url).content.decode()
