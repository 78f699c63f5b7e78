"""A launch carries what the release policy releases, from the outside: the id_token's person,
roles and identifiers come through ``release_launch``, so overrides, exclusions, org scope and
pseudonyms act on a launch exactly as on the vendor's REST channel."""

from __future__ import annotations

import datetime as dt

import jwt
import pytest
from django.conf import settings
from django.utils import timezone

from apps.governance.models import OverrideKind
from apps.governance.release import release_for
from apps.governance.services import exclusions as governance
from apps.keys import selectors as key_selectors
from apps.keys.models import SigningKey
from apps.keys.services import signing_key_active
from apps.lti import services
from apps.lti.roles import INSTITUTION, MEMBERSHIP
from apps.vendors.models import Integration, IntegrationKind, IntegrationStatus
from tests.governance import release_world as world
from tests.lti.conftest import PASSWORD, register_tool
from tests.lti.tool import ClientBrowser, Tool, auth_params

pytestmark = pytest.mark.django_db

LTI = "https://purl.imsglobal.org/spec/lti/claim/"


@pytest.fixture
def officer(staff_user_factory):  # type: ignore[no-untyped-def]
    return staff_user_factory(username="officer.dsl", role="safeguarding")


def _override(officer, **kwargs):  # type: ignore[no-untyped-def]
    values = {"actor": officer, "user_sourced_id": "p1", "reason": "Correction",
              "ends_at": timezone.now() + dt.timedelta(days=60)}
    values.update(kwargs)
    return governance.override_create(**values)


def launch(registered, username: str = "pupil.one", class_id: str = "cls1"):  # type: ignore[no-untyped-def]
    """A full launch; the verified id_token's claims, or the refusal page."""
    signing_key_active(purpose=SigningKey.Purpose.LTI)
    tool = Tool(issuer=settings.INTERCHANGE_PUBLIC_URL, client_id=registered.client_id,
                deployment_ids=[registered.deployment_id], private_pem=registered.private_pem,
                public_pem=registered.public_pem, key_set=key_selectors.lti_jwks())
    browser = ClientBrowser(username, PASSWORD)
    initiation = browser.start(registered.client_id, class_id)
    if not initiation.action:
        return initiation
    answer = browser.auth(auth_params(tool.oidc_login(initiation)))
    if "id_token" not in answer.fields:
        return answer
    token = answer.fields["id_token"]
    key = next(k for k in key_selectors.lti_jwks()["keys"]
               if k["kid"] == jwt.get_unverified_header(token)["kid"])
    return jwt.decode(token, jwt.PyJWK(key).key, algorithms=["RS256"],
                      audience=registered.client_id, issuer=settings.INTERCHANGE_PUBLIC_URL)


def test_a_role_correction_reaches_the_launch(school, officer):
    registered = register_tool()
    assert launch(registered)[LTI + "roles"] == [MEMBERSHIP + "Learner", INSTITUTION + "Student"]

    _override(officer, kind=OverrideKind.ROLE_CORRECTION, class_sourced_id="cls1",
              role="teacher")

    claims = launch(registered)
    assert claims[LTI + "roles"] == [MEMBERSHIP + "Instructor", INSTITUTION + "Student"]
    assert launch(registered, class_id="cls2")[LTI + "roles"][0] == MEMBERSHIP + "Learner"


def test_a_preferred_name_reaches_the_name_claims(school, officer):
    registered = register_tool(claims=("name", "given_name"))
    _override(officer, kind=OverrideKind.PREFERRED_NAME, given_name="Sam", family_name="Rivers")

    claims = launch(registered)

    assert (claims["given_name"], claims["name"]) == ("Sam", "Sam Rivers")


def test_the_launch_identifiers_are_the_vendors_rest_identifiers(school):
    registered = register_tool(field_classes=("identifier", "directory"))
    rest = Integration.objects.create(
        vendor=registered.integration.vendor, name="Same vendor's roster feed",
        kind=IntegrationKind.ONEROSTER_REST, status=IntegrationStatus.ACTIVE, pseudonymised=True,
    )
    world.approve(rest, orgs=["dist"], field_classes=("identifier", "directory"))
    released = release_for(rest).users().get(given_name="Givenp1")

    claims = launch(registered)

    assert claims["sub"] == released["sourced_id"] != "p1"
    assert claims[LTI + "lis"]["person_sourcedid"] == released["sourced_id"]


def test_an_excluded_pupil_is_refused_while_classmates_launch(school, officer):
    registered = register_tool()
    governance.exclusion_create(
        actor=officer, user_sourced_id="p1", scope="vendor",
        vendor=registered.integration.vendor, reason_code="court_order",
        ends_at=timezone.now() + dt.timedelta(days=30))

    refused = launch(registered)

    assert refused.status == 403 and services.REFUSED in refused.text
    assert launch(registered, username="pupil.two")["sub"]


def test_a_pupil_known_only_outside_the_approved_orgs_cannot_launch(school):
    # p9's only role and primary org are at sch9; enrolling them in cls1 (in scope) does
    # not make them visible to a tool approved for dist, as REST would not show them.
    world.enrol("p9", "cls1", "sch1")
    registered = register_tool()

    refused = launch(registered, username="pupil.nine")

    assert refused.status == 403
