"""The negative suite, from the outside: what a careless or hostile tool, or a user who may
not launch, meets at the platform's HTTP surface.

These run over Django's test client; the tool is still pylti1p3, given the platform's
published key set instead of fetching it (the live-server tests cover the fetch).
"""

from __future__ import annotations

import datetime as dt
import time

import jwt
import pytest
from django.conf import settings
from django.utils import timezone

from apps.audit.models import AccessRecord
from apps.governance.models import ExclusionReason, ExclusionScope
from apps.governance.services.exclusions import exclusion_create
from apps.keys import selectors as key_selectors
from apps.keys.models import SigningKey
from apps.keys.services import signing_key_active, signing_keys_rotate
from apps.lti import services
from apps.lti.models import DeepLinkingRequest, LaunchHint, ResourceLink
from apps.vendors.models import IntegrationStatus, VendorStatus
from tests.lti.conftest import PASSWORD, register_tool
from tests.lti.tool import REDIRECT_URI, TOOL_ORIGIN, ClientBrowser, Form, Tool, auth_params

pytestmark = pytest.mark.django_db

DL = "https://purl.imsglobal.org/spec/lti-dl/claim/"
LTI = "https://purl.imsglobal.org/spec/lti/claim/"


def tool_for(registered, **kwargs) -> Tool:  # type: ignore[no-untyped-def]
    signing_key_active(purpose=SigningKey.Purpose.LTI)
    kwargs.setdefault("key_set", key_selectors.lti_jwks())
    return Tool(issuer=settings.INTERCHANGE_PUBLIC_URL, client_id=registered.client_id,
                deployment_ids=list(registered.registration.deployments.values_list(
                    "deployment_id", flat=True)),
                private_pem=registered.private_pem, public_pem=registered.public_pem, **kwargs)


def browser(username: str = "pupil.one") -> ClientBrowser:
    return ClientBrowser(username, PASSWORD)


def auth_request(user_browser, tool, registered, class_id="cls1", **extra):  # type: ignore[no-untyped-def]
    """The tool's authentication request for a fresh launch, as parameters."""
    initiation = user_browser.start(registered.client_id, class_id, **extra)
    assert initiation.action, initiation.text
    return auth_params(tool.oidc_login(initiation))


@pytest.fixture
def registered(school):  # type: ignore[no-untyped-def]
    return register_tool()


@pytest.fixture
def pupil():  # type: ignore[no-untyped-def]
    return browser("pupil.one")


# --- the authentication request -----------------------------------------------------------------


def test_an_unregistered_redirect_uri_gets_a_plain_page_and_no_redirect(registered, pupil):
    tool = tool_for(registered)
    params = auth_request(pupil, tool, registered)
    for uri in (TOOL_ORIGIN + "/evil", REDIRECT_URI + "/x", REDIRECT_URI + "?a=b",
                "https://evil.example/lti/launch", REDIRECT_URI.upper(), ""):
        answer = pupil.auth({**params, "redirect_uri": uri})
        assert answer.status == 400
        assert answer.action == ""
        assert services.ERROR_REDIRECT_URI in answer.text
    # the hint was not spent by those attempts
    assert pupil.auth(params).fields.keys() == {"id_token", "state"}


def test_an_unknown_client_gets_a_plain_page(registered, pupil):
    params = auth_request(pupil, tool_for(registered), registered)
    answer = pupil.auth({**params, "client_id": "nobody"})
    assert (answer.status, answer.action) == (400, "")


@pytest.mark.parametrize("name, value, error", [
    ("scope", "openid profile", "invalid_scope"),
    ("response_type", "code", "unsupported_response_type"),
    ("response_mode", "query", "invalid_request"),
    ("prompt", "login", "invalid_request"),
    ("nonce", "", "invalid_request"),
])
def test_a_wrong_parameter_is_answered_the_oidc_way(registered, pupil, name, value, error):
    params = auth_request(pupil, tool_for(registered), registered)
    answer = pupil.auth({**params, name: value})
    assert answer.action == REDIRECT_URI
    assert answer.fields["error"] == error
    assert answer.fields["state"] == params["state"]
    assert "id_token" not in answer.fields


def test_a_missing_nonce_is_refused(registered, pupil):
    params = auth_request(pupil, tool_for(registered), registered)
    del params["nonce"]
    answer = pupil.auth(params)
    assert answer.fields["error"] == "invalid_request"


def test_a_login_hint_that_is_not_the_session_user_is_refused(registered, pupil):
    tool = tool_for(registered)
    params = auth_request(pupil, tool, registered)
    # another pupil's hint, with this pupil's session
    other = browser("pupil.two")
    other_params = auth_request(other, tool, registered)
    answer = pupil.auth({**params, "login_hint": other_params["login_hint"]})
    assert answer.fields["error"] == "login_required"
    # the other pupil's message hint, with this pupil's session and login hint
    answer = pupil.auth({**params, "lti_message_hint": other_params["lti_message_hint"]})
    assert answer.fields["error"] == "invalid_request"


def test_an_anonymous_browser_cannot_complete_a_launch(registered, pupil):
    from django.test import Client

    params = auth_request(pupil, tool_for(registered), registered)
    answer = Form.parse(Client().get("/lti/auth", params))
    assert answer.fields["error"] == "login_required"


def test_a_message_hint_launches_once(registered, pupil):
    tool = tool_for(registered)
    params = auth_request(pupil, tool, registered)
    first = pupil.auth(params)
    assert "id_token" in first.fields
    tool.launch(first)
    # the same request again (same nonce, same hint): refused, no second token
    again = pupil.auth(params)
    assert again.fields["error"] == "invalid_request"
    assert "id_token" not in again.fields


def test_an_expired_message_hint_is_refused(registered, pupil):
    params = auth_request(pupil, tool_for(registered), registered)
    LaunchHint.objects.update(expires_at=timezone.now() - dt.timedelta(seconds=1))
    assert pupil.auth(params).fields["error"] == "invalid_request"


def test_the_nonce_is_echoed_and_the_audience_is_the_client(registered, pupil):
    tool = tool_for(registered)
    params = auth_request(pupil, tool, registered)
    answer = pupil.auth(params)
    token = answer.fields["id_token"]
    key = next(k for k in key_selectors.lti_jwks()["keys"]
               if k["kid"] == jwt.get_unverified_header(token)["kid"])
    claims = jwt.decode(token, jwt.PyJWK(key).key, algorithms=["RS256"],
                        audience=registered.client_id, issuer=settings.INTERCHANGE_PUBLIC_URL)
    assert claims["nonce"] == params["nonce"]
    with pytest.raises(jwt.InvalidAudienceError):
        jwt.decode(token, jwt.PyJWK(key).key, algorithms=["RS256"], audience="another-tool")


# --- who may launch -----------------------------------------------------------------------------


def test_an_excluded_pupil_cannot_launch_and_is_told_nothing(registered, pupil,
                                                             staff_user_factory):
    officer = staff_user_factory(username="officer.dsl", role="safeguarding")
    exclusion_create(actor=officer, user_sourced_id="p1", scope=ExclusionScope.ALL_VENDORS,
                     reason_code=ExclusionReason.CHILD_PROTECTION,
                     ends_at=timezone.now() + dt.timedelta(days=30))
    page = pupil.launch_page()
    assert registered.integration.name not in page.content.decode()
    refused = pupil.start(registered.client_id, "cls1")
    assert refused.status == 403 and refused.action == ""
    assert services.REFUSED in refused.text
    assert "exclu" not in refused.text.lower()
    record = AccessRecord.objects.filter(endpoint="/launch/start").get()
    assert (record.integration_id, record.status_code, record.records) == (
        registered.integration.pk, 403, 0)


def test_exclusion_is_rechecked_when_the_launch_completes(registered, pupil,
                                                          staff_user_factory):
    params = auth_request(pupil, tool_for(registered), registered)
    officer = staff_user_factory(username="officer.dsl", role="safeguarding")
    exclusion_create(actor=officer, user_sourced_id="p1", scope=ExclusionScope.INTEGRATION,
                     integration=registered.integration,
                     reason_code=ExclusionReason.COURT_ORDER,
                     ends_at=timezone.now() + dt.timedelta(days=30))
    answer = pupil.auth(params)
    assert answer.status == 403 and answer.action == ""
    assert services.REFUSED in answer.text


def test_a_disabled_pupil_cannot_launch(registered, pupil):
    params = auth_request(pupil, tool_for(registered), registered)
    from apps.roster.models import User

    User.objects.filter(sourced_id="p1").update(enabled_user=False)
    assert pupil.auth(params).status == 403
    refused = pupil.start(registered.client_id, "cls1")
    assert refused.status == 403 and services.REFUSED in refused.text


def test_a_pupil_no_longer_current_cannot_launch(registered, pupil):
    params = auth_request(pupil, tool_for(registered), registered)
    from apps.roster.models import User

    User.objects.filter(sourced_id="p1").update(valid_to_version=2)  # tobedeleted
    assert pupil.auth(params).status == 403
    assert pupil.start(registered.client_id, "cls1").status == 403


def test_a_pupil_cannot_launch_from_a_class_they_are_not_in(registered, pupil):
    assert pupil.start(registered.client_id, "cls9").status == 403


def test_a_suspended_integration_or_vendor_stops_launches_in_flight(registered, pupil):
    params = auth_request(pupil, tool_for(registered), registered)
    registered.integration.status = IntegrationStatus.SUSPENDED
    registered.integration.save()
    assert pupil.auth(params).status == 403
    registered.integration.status = IntegrationStatus.ACTIVE
    registered.integration.save()
    vendor = registered.integration.vendor
    vendor.status = VendorStatus.SUSPENDED
    vendor.save()
    assert pupil.start(registered.client_id, "cls1").status == 403


def test_a_tool_not_approved_for_launches_is_not_offered(school, pupil):
    unapproved = register_tool(approve=False, name="Unapproved tool")
    other_orgs = register_tool(orgs=("other",), name="Other district tool")
    page = pupil.launch_page().content.decode()
    assert "Unapproved tool" not in page and "Other district tool" not in page
    assert pupil.start(unapproved.client_id, "cls1").status == 403
    assert pupil.start(other_orgs.client_id, "cls1").status == 403


def test_a_pupil_cannot_ask_for_deep_linking(registered, pupil):
    assert pupil.start(registered.client_id, "cls1", deep_linking="1").status == 403


def test_a_staff_account_does_not_launch(registered, staff_user_factory):
    from django.test import Client

    staff = staff_user_factory(username="gov.dpo", role="governance")
    client = Client()
    client.force_login(staff)
    assert client.get("/launch/").status_code == 403


# --- key rotation ---------------------------------------------------------------------------------


def test_key_rotation_never_breaks_a_launch_in_flight(registered, pupil):
    # given a tool holding the key set published before a rotation
    before = tool_for(registered)
    params = auth_request(pupil, before, registered)

    # when the keys rotate mid-launch
    signing_keys_rotate(purpose=SigningKey.Purpose.LTI)
    answer = pupil.auth(params)

    # then the token is signed by the new key, which the old key set already published
    kid = jwt.get_unverified_header(answer.fields["id_token"])["kid"]
    assert kid == signing_key_active(purpose=SigningKey.Purpose.LTI).kid
    before.launch(answer)

    # and a token signed just before a rotation verifies against the set published after it
    params = auth_request(pupil, before, registered)
    answer = pupil.auth(params)
    signing_keys_rotate(purpose=SigningKey.Purpose.LTI)
    before.config = tool_for(registered).config  # the tool refetches the key set
    before.launch(answer)


# --- Deep Linking responses -----------------------------------------------------------------------


@pytest.fixture
def deep_link(registered):  # type: ignore[no-untyped-def]
    """A teacher's Deep Linking request, validated by the tool; returns (tool, message, teacher)."""
    teacher = browser("teacher.one")
    tool = tool_for(registered)
    params = auth_request(teacher, tool, registered, deep_linking="1")
    message = tool.launch(teacher.auth(params))
    return tool, message, teacher


def response_claims(registered, message, **changes):  # type: ignore[no-untyped-def]
    now = int(time.time())
    settings_claim = message.get_launch_data()[DL + "deep_linking_settings"]
    claims = {
        "iss": registered.client_id, "aud": [settings.INTERCHANGE_PUBLIC_URL],
        "iat": now, "exp": now + 300, "nonce": f"n-{time.time_ns()}",
        LTI + "deployment_id": registered.deployment_id,
        LTI + "message_type": "LtiDeepLinkingResponse", LTI + "version": "1.3.0",
        DL + "content_items": [{"type": "ltiResourceLink", "title": "Quiz",
                                "url": TOOL_ORIGIN + "/quiz"}],
        DL + "data": settings_claim["data"],
    }
    claims.update(changes)
    return claims


def kid_of(registered) -> str:  # type: ignore[no-untyped-def]
    return registered.registration.public_key_kid


def post_response(teacher, token):  # type: ignore[no-untyped-def]
    return teacher.post("/lti/deep-linking/return", {"JWT": token})


def test_a_well_formed_deep_linking_response_is_accepted(registered, deep_link):
    tool, message, teacher = deep_link
    token = tool.sign(response_claims(registered, message), kid=kid_of(registered))
    assert post_response(teacher, token).status_code == 200
    assert ResourceLink.objects.filter(origin="deep_link", title="Quiz").count() == 1


@pytest.mark.parametrize("change", [
    {"aud": ["https://another-platform.example"]},
    {"iss": "someone-else"},
    {"exp": int(time.time()) - 3600},
    {"iat": int(time.time()) + 3600, "exp": int(time.time()) + 7200},
    {LTI + "deployment_id": "not-a-deployment"},
    {LTI + "message_type": "LtiResourceLinkRequest"},
    {DL + "data": "forged"},
    {DL + "data": None},
    {"nonce": None},
])
def test_a_deep_linking_response_that_fails_a_check_is_refused(registered, deep_link, change):
    tool, message, teacher = deep_link
    claims = {k: v for k, v in response_claims(registered, message, **change).items()
              if v is not None}
    response = post_response(teacher, tool.sign(claims, kid=kid_of(registered)))
    assert response.status_code == 400
    assert not ResourceLink.objects.filter(origin="deep_link").exists()


def test_a_deep_linking_response_signed_by_another_key_or_without_kid_is_refused(
    registered, deep_link
):
    from tests.lti.tool import rsa_key_pair

    tool, message, teacher = deep_link
    other_private, _ = rsa_key_pair()
    claims = response_claims(registered, message)
    assert post_response(teacher, tool.sign(claims, kid=kid_of(registered),
                                            private_pem=other_private)).status_code == 400
    assert post_response(teacher, tool.sign(claims)).status_code == 400
    unsigned = jwt.encode(claims, "secret-secret-secret-secret-32b!", algorithm="HS256",
                          headers={"kid": kid_of(registered)})
    assert post_response(teacher, unsigned).status_code == 400
    assert not ResourceLink.objects.filter(origin="deep_link").exists()


def test_a_replayed_deep_linking_nonce_is_refused(registered, deep_link, school):
    tool, message, teacher = deep_link
    first = response_claims(registered, message, nonce="same-nonce")
    assert post_response(teacher, tool.sign(first, kid=kid_of(registered))).status_code == 200
    # a second, valid request of the teacher, answered with the old nonce
    params = auth_request(teacher, tool, registered, deep_linking="1")
    second_message = tool.launch(teacher.auth(params))
    replay = response_claims(registered, second_message, nonce="same-nonce")
    assert post_response(teacher, tool.sign(replay, kid=kid_of(registered))).status_code == 400
    assert ResourceLink.objects.filter(origin="deep_link").count() == 1


def test_deep_linking_data_is_bound_to_the_session_user(registered, deep_link):
    tool, message, teacher = deep_link
    token = tool.sign(response_claims(registered, message), kid=kid_of(registered))
    intruder = browser("pupil.one")
    assert post_response(intruder, token).status_code == 400
    # the request was not consumed by the intruder's attempt? it was: single use, by design
    assert DeepLinkingRequest.objects.filter(used_at__isnull=False).count() == 1
    assert not ResourceLink.objects.filter(origin="deep_link").exists()


def test_deep_linking_content_outside_the_tool_is_dropped(registered, deep_link):
    tool, message, teacher = deep_link
    items = [{"type": "ltiResourceLink", "title": "Elsewhere", "url": "https://evil.example/x"},
             {"type": "link", "title": "Plain link", "url": TOOL_ORIGIN + "/y"},
             {"type": "ltiResourceLink", "title": "Kept", "url": TOOL_ORIGIN + "/z"}]
    token = tool.sign(response_claims(registered, message, **{DL + "content_items": items}),
                      kid=kid_of(registered))
    assert post_response(teacher, token).status_code == 200
    assert list(ResourceLink.objects.filter(origin="deep_link").values_list("title", flat=True)
                ) == ["Kept"]
