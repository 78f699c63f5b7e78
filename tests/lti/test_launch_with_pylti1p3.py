"""Launches from the outside: a pupil and a teacher drive the portal through a browser, and a
real, independent tool (pylti1p3) validates what the platform sends.

pylti1p3 accepts a token without checking ``aud`` and never consumes a nonce, so each test
checks those itself instead of trusting the library's acceptance.
"""

from __future__ import annotations

import json

import jwt
import pytest
from pylti1p3.deep_link_resource import DeepLinkResource

from apps.audit.models import AccessRecord, Disclosure
from apps.governance.pseudonyms import pseudonymiser_for_vendor
from apps.lti.models import ResourceLink, ResourceLinkOrigin
from tests.lti.conftest import browser_for, register_tool, tool_for
from tests.lti.tool import REDIRECT_URI, TARGET_LINK_URI, TOOL_ORIGIN, auth_params

pytestmark = pytest.mark.django_db(transaction=True)

LTI = "https://purl.imsglobal.org/spec/lti/claim/"
DL = "https://purl.imsglobal.org/spec/lti-dl/claim/"
LEARNER = "http://purl.imsglobal.org/vocab/lis/v2/membership#Learner"
INSTRUCTOR = "http://purl.imsglobal.org/vocab/lis/v2/membership#Instructor"


def full_launch(platform, browser, tool, registered, class_id="cls1", **extra):  # type: ignore[no-untyped-def]
    """Launch page -> tool login -> /lti/auth -> tool launch; returns (message, token, auth)."""
    initiation = browser.start(registered.client_id, class_id, **extra)
    assert initiation.status == 200, initiation.text
    auth_url = tool.oidc_login(initiation)
    answer = browser.follow(auth_url)
    assert answer.action == REDIRECT_URI, answer.text
    message = tool.launch(answer)
    return message, answer.fields["id_token"], auth_url


def verified(token: str, platform: str, audience: str) -> dict:
    """What the library skips: audience (and issuer), checked with our own published keys."""
    client = jwt.PyJWKClient(platform + "/lti/jwks")
    key = client.get_signing_key_from_jwt(token)
    return jwt.decode(token, key.key, algorithms=["RS256"], audience=audience, issuer=platform)


def test_pupil_launches_an_approved_tool_from_a_class(platform, school, tool_registration):
    # given a pupil signed in to the portal, and the tool registered and approved
    browser = browser_for(platform, "pupil.one")
    tool = tool_for(platform, tool_registration)

    # when the pupil opens the tool from Maths 7A
    initiation = browser.start(tool_registration.client_id, "cls1")

    # then the browser carries the login initiation to the tool
    assert initiation.action == TOOL_ORIGIN + "/lti/login"
    assert set(initiation.fields) == {"iss", "login_hint", "target_link_uri",
                                      "lti_message_hint", "lti_deployment_id", "client_id"}
    assert initiation.fields["iss"] == platform
    assert initiation.fields["client_id"] == tool_registration.client_id
    assert initiation.fields["lti_deployment_id"] == tool_registration.deployment_id
    assert initiation.fields["target_link_uri"] == TARGET_LINK_URI

    # and the tool accepts the id_token the platform posts back
    auth_url = tool.oidc_login(initiation)
    answer = browser.follow(auth_url)
    assert answer.action == REDIRECT_URI
    assert set(answer.fields) == {"id_token", "state"}
    assert answer.fields["state"] == auth_params(auth_url)["state"]
    message = tool.launch(answer)
    assert message.is_resource_launch()
    data = message.get_launch_data()

    # checks the library does not make: audience, issuer, the nonce echoed unchanged
    claims = verified(answer.fields["id_token"], platform, tool_registration.client_id)
    assert claims["azp"] == tool_registration.client_id
    assert claims["nonce"] == tool.nonce_issued(auth_url)
    assert jwt.get_unverified_header(answer.fields["id_token"])["kid"]
    assert claims["exp"] - claims["iat"] <= 300

    # the claims: minimised, pseudonymous, the class as context
    assert data[LTI + "message_type"] == "LtiResourceLinkRequest"
    assert data[LTI + "version"] == "1.3.0"
    assert data[LTI + "deployment_id"] == tool_registration.deployment_id
    assert data[LTI + "target_link_uri"] == TARGET_LINK_URI
    assert data[LTI + "roles"] == [
        LEARNER, "http://purl.imsglobal.org/vocab/lis/v2/institution/person#Student"
    ]
    assert data[LTI + "context"]["id"] == "cls1"
    assert data[LTI + "context"]["title"] == "Maths 7A"
    assert data[LTI + "tool_platform"]["guid"] == platform
    assert data[LTI + "launch_presentation"]["return_url"] == platform + "/launch/"
    link = ResourceLink.objects.get(origin=ResourceLinkOrigin.DEFAULT, class_sourced_id="cls1")
    assert data[LTI + "resource_link"]["id"] == str(link.pk)
    vendor_id = tool_registration.integration.vendor_id
    assert data["sub"] == pseudonymiser_for_vendor(vendor_id).pseudonym("p1")
    for personal in ("name", "given_name", "family_name", "email"):
        assert personal not in data
    # the real sourcedId appears nowhere in what was signed (the signature's base64 could
    # contain "p1" by chance, so look at the decoded claims only)
    assert '"p1"' not in json.dumps(claims)

    # and the launch left an access record and a disclosure
    assert AccessRecord.objects.filter(
        integration_id=tool_registration.integration.pk, channel="lti_launch",
        status_code=200,
    ).count() == 1
    assert Disclosure.objects.filter(
        integration_id=tool_registration.integration.pk, user_sourced_id="p1",
        channel="lti_launch",
    ).count() == 1


def test_a_second_launch_reuses_the_resource_link_with_a_fresh_nonce(platform, school,
                                                                      tool_registration):
    browser = browser_for(platform, "pupil.one")
    tool = tool_for(platform, tool_registration)
    first, first_token, _ = full_launch(platform, browser, tool, tool_registration)
    second, second_token, _ = full_launch(platform, browser, tool, tool_registration)
    a, b = first.get_launch_data(), second.get_launch_data()
    assert a[LTI + "resource_link"]["id"] == b[LTI + "resource_link"]["id"]
    assert a["sub"] == b["sub"]
    assert a["nonce"] != b["nonce"]


def test_personal_claims_are_sent_only_when_approved(platform, school):
    registered = register_tool(claims=("name", "given_name", "family_name", "email"))
    browser = browser_for(platform, "pupil.one")
    message, _, _ = full_launch(platform, browser, tool_for(platform, registered), registered)
    data = message.get_launch_data()
    assert data["given_name"] == "Givenp1"
    assert data["family_name"] == "Familyp1"
    assert data["name"] == "Givenp1 Familyp1"
    assert data["email"] == "p1@pupils.example"
    disclosure = Disclosure.objects.get(integration_id=registered.integration.pk)
    assert disclosure.user_sourced_id == "p1"


def test_only_the_approved_personal_claims_are_sent(platform, school):
    registered = register_tool(claims=("given_name",))
    browser = browser_for(platform, "pupil.one")
    message, _, _ = full_launch(platform, browser, tool_for(platform, registered), registered)
    data = message.get_launch_data()
    assert data["given_name"] == "Givenp1"
    assert "family_name" not in data and "name" not in data and "email" not in data


def test_teacher_adds_content_through_deep_linking_and_pupils_launch_it(platform, school,
                                                                        tool_registration):
    # given the teacher of Maths 7A
    teacher = browser_for(platform, "teacher.one")
    tool = tool_for(platform, tool_registration)

    # when they ask the tool for content
    message, token, auth_url = full_launch(platform, teacher, tool, tool_registration,
                                           deep_linking="1")
    assert message.is_deep_link_launch()
    data = message.get_launch_data()
    assert INSTRUCTOR in data[LTI + "roles"]
    settings_claim = data[DL + "deep_linking_settings"]
    assert settings_claim["deep_link_return_url"] == platform + "/lti/deep-linking/return"
    assert settings_claim["accept_types"] == ["ltiResourceLink"]
    assert settings_claim["data"]
    assert verified(token, platform, tool_registration.client_id)["nonce"] == (
        tool.nonce_issued(auth_url)
    )

    # and the tool answers with a chosen activity
    resource = (DeepLinkResource().set_url(TOOL_ORIGIN + "/activities/fractions")
                .set_title("Fractions quiz").set_custom_params({"level": "2"}))
    return_url, response_jwt = tool.deep_link_response(message, [resource])
    page = teacher.post(return_url, {"JWT": response_jwt})

    # then the platform accepts it and the class has the new resource link
    assert page.status_code == 200, page.text
    assert "1 item added" in page.text
    link = ResourceLink.objects.get(origin=ResourceLinkOrigin.DEEP_LINK)
    assert (link.title, link.url, link.class_sourced_id) == (
        "Fractions quiz", TOOL_ORIGIN + "/activities/fractions", "cls1"
    )

    # and a pupil of the class sees it and launches it
    pupil = browser_for(platform, "pupil.one")
    assert "Fractions quiz" in pupil.launch_page().text
    launched, _, _ = full_launch(platform, pupil, tool_for(platform, tool_registration),
                                 tool_registration, link=str(link.pk))
    pupil_data = launched.get_launch_data()
    assert pupil_data[LTI + "resource_link"] == {"id": str(link.pk), "title": "Fractions quiz"}
    assert pupil_data[LTI + "target_link_uri"] == TOOL_ORIGIN + "/activities/fractions"
    assert pupil_data[LTI + "custom"] == {"level": "2"}

    # and the same response cannot be replayed
    replay = teacher.post(return_url, {"JWT": response_jwt})
    assert replay.status_code == 400
    assert ResourceLink.objects.filter(origin=ResourceLinkOrigin.DEEP_LINK).count() == 1
