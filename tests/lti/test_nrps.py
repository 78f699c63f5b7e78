"""Names and Roles from the outside: a tool reads the members of the class it was launched
from, with the token it got from /lti/token, through the release policy."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from apps.audit.models import AccessRecord, Channel, Disclosure, field_classes_mask
from apps.governance.models import ExclusionReason, ExclusionScope
from apps.governance.release import release_for
from apps.governance.services.exclusions import exclusion_create
from apps.lti import apis, nrps
from apps.lti.models import ResourceLink
from apps.vendors.models import IntegrationStatus
from tests.governance import release_world as world
from tests.lti.advantage import (
    AGS_CLAIM,
    INSTRUCTOR,
    LEARNER,
    NRPS,
    NRPS_CLAIM,
    SCORE,
    bearer,
    launch_claims,
    path_of,
    token_for,
)
from tests.lti.conftest import register_tool

pytestmark = pytest.mark.django_db

MEDIA_TYPE = "application/vnd.ims.lti-nrps.v2.membershipcontainer+json"


@pytest.fixture
def tool(school):  # type: ignore[no-untyped-def]
    return register_tool(services=("lti.launch", "lti.nrps"), scopes=(NRPS,),
                         field_classes=("identifier", "directory"), claims=("given_name",))


@pytest.fixture
def memberships_url(tool) -> str:  # type: ignore[no-untyped-def]
    return launch_claims(tool)[NRPS_CLAIM]["context_memberships_url"]


def read(client, url: str, token: str, **params):  # type: ignore[no-untyped-def]
    return client.get(path_of(url), params, **bearer(token),
                      HTTP_ACCEPT="application/vnd.ims.lti-nrps.v2.membershipcontainer+json")


def test_the_launch_carries_the_memberships_url_only_when_approved(school, tool):
    claims = launch_claims(tool)
    assert claims[NRPS_CLAIM]["service_versions"] == ["2.0"]
    url = claims[NRPS_CLAIM]["context_memberships_url"]
    assert url == url.lower() and url.endswith("/memberships")
    assert AGS_CLAIM not in claims  # AGS is not approved

    plain = register_tool()  # launch and Deep Linking only
    claims = launch_claims(plain)
    assert NRPS_CLAIM not in claims and AGS_CLAIM not in claims


def test_a_tool_reads_the_members_of_its_class(client, tool, memberships_url):
    token = token_for(client, tool, NRPS)
    response = read(client, memberships_url, token)

    assert response.status_code == 200, response.content
    assert response["Content-Type"] == MEDIA_TYPE
    body = response.json()
    assert body["id"].endswith(path_of(memberships_url))
    assert body["context"] == {"id": "cls1", "label": "MA7A", "title": "Maths 7A"}
    members = {m["given_name"]: m for m in body["members"]}
    assert set(members) == {"Givenp1", "Givenp2", "Givent1"}
    assert members["Givenp1"]["roles"] == [LEARNER]
    assert members["Givent1"]["roles"] == [INSTRUCTOR]
    # minimised: no family name, email or school identifiers without approval
    for member in body["members"]:
        assert set(member) <= {"status", "user_id", "roles", "given_name",
                               "lis_person_sourcedid"}
        assert "p1" not in member["user_id"] and "t1" not in member["user_id"]


def test_member_ids_are_the_launch_sub_of_the_same_person(client, tool, memberships_url):
    pupil_sub = launch_claims(tool, username="pupil.one")["sub"]
    token = token_for(client, tool, NRPS)
    members = read(client, memberships_url, token).json()["members"]
    assert pupil_sub in {m["user_id"] for m in members}
    mine = next(m for m in members if m["user_id"] == pupil_sub)
    assert mine["given_name"] == "Givenp1"


def test_an_excluded_pupil_is_absent_from_nrps(client, tool, memberships_url,
                                               staff_user_factory):
    officer = staff_user_factory(username="officer.dsl", role="safeguarding")
    exclusion_create(actor=officer, user_sourced_id="p2", scope=ExclusionScope.ALL_VENDORS,
                     reason_code=ExclusionReason.CHILD_PROTECTION,
                     ends_at=timezone.now() + dt.timedelta(days=30))
    token = token_for(client, tool, NRPS)
    names = {m.get("given_name") for m in read(client, memberships_url, token).json()["members"]}
    assert names == {"Givenp1", "Givent1"}


def test_an_exclusion_set_between_two_pages_acts_on_the_second(client, tool, memberships_url,
                                                               staff_user_factory):
    # the page statement is compiled once per release content: a new exclusion is new content
    token = token_for(client, tool, NRPS)
    before = {m.get("given_name") for m in read(client, memberships_url, token).json()["members"]}
    officer = staff_user_factory(username="officer.dsl", role="safeguarding")
    exclusion_create(actor=officer, user_sourced_id="p2", scope=ExclusionScope.VENDOR,
                     vendor=tool.integration.vendor, reason_code=ExclusionReason.COURT_ORDER,
                     ends_at=timezone.now() + dt.timedelta(days=30))

    after = {m.get("given_name") for m in read(client, memberships_url, token).json()["members"]}

    assert before == {"Givenp1", "Givenp2", "Givent1"}
    assert after == {"Givenp1", "Givent1"}


def test_the_role_filter_accepts_short_names_and_lowercased_uris(client, tool, memberships_url):
    token = token_for(client, tool, NRPS)
    for role in ("Learner", LEARNER, LEARNER.lower()):
        members = read(client, memberships_url, token, role=role).json()["members"]
        assert {m["given_name"] for m in members} == {"Givenp1", "Givenp2"}, role
    instructors = read(client, memberships_url, token, role="Instructor").json()["members"]
    assert [m["given_name"] for m in instructors] == ["Givent1"]
    assert read(client, memberships_url, token, role="Mentor").json()["members"] == []


def next_link(response) -> str:  # type: ignore[no-untyped-def]
    """The next page as pylti1p3 reads it: it lowercases the whole Link header first."""
    return response["Link"].lower().split("<", 1)[1].split('>; rel="next"', 1)[0]


def test_pages_follow_a_lowercased_next_link(client, tool, memberships_url):
    token = token_for(client, tool, NRPS)
    first = read(client, memberships_url, token, limit=2)
    assert len(first.json()["members"]) == 2
    assert next_link(first).startswith(memberships_url + "?")

    last = read(client, next_link(first), token)
    assert last.status_code == 200, last.content
    assert len(last.json()["members"]) == 1
    assert "Link" not in last
    seen = {m["user_id"] for m in first.json()["members"] + last.json()["members"]}
    assert len(seen) == 3


def test_the_role_filter_survives_a_lowercased_next_link(client, tool, memberships_url):
    token = token_for(client, tool, NRPS)
    first = read(client, memberships_url, token, limit=1, role=LEARNER)
    second = read(client, next_link(first), token)
    names = [m["given_name"] for m in first.json()["members"] + second.json()["members"]]
    assert sorted(names) == ["Givenp1", "Givenp2"]
    assert "Link" not in second


def test_limit_and_offset_are_checked(client, tool, memberships_url):
    token = token_for(client, tool, NRPS)
    for params in ({"limit": "0"}, {"limit": "x"}, {"limit": "5000"}, {"offset": "-1"}):
        response = read(client, memberships_url, token, **params)
        assert response.status_code == 400, params
        assert response.json()["error"] == "invalid_request"


def test_an_rlid_of_this_context_is_accepted_and_another_is_refused(client, school, tool,
                                                                     memberships_url):
    from apps.lti.models import LtiContext

    token = token_for(client, tool, NRPS)
    own = ResourceLink.objects.get(registration=tool.registration, class_sourced_id="cls1")
    assert read(client, memberships_url, token, rlid=str(own.pk)).status_code == 200
    # a link of the same tool in another class (Science 7A)
    launch_claims(tool, username="pupil.one", class_id="cls2")
    other = ResourceLink.objects.get(registration=tool.registration, class_sourced_id="cls2")
    assert LtiContext.objects.count() == 2
    for rlid in (str(other.pk), str(uuid.uuid4()), "not-a-uuid"):
        response = read(client, memberships_url, token, rlid=rlid)
        assert response.status_code == 404, rlid
        assert response.json()["error_description"] == apis.DESCRIPTION_RLID


def test_another_tools_token_cannot_read_this_context(client, school, tool, memberships_url):
    other = register_tool(services=("lti.launch", "lti.nrps"), scopes=(NRPS,),
                          field_classes=("identifier", "directory"))
    response = read(client, memberships_url, token_for(client, other, NRPS))
    assert response.status_code == 404
    assert response.json()["error_description"] == apis.DESCRIPTION_CONTEXT


def test_a_token_without_the_nrps_scope_is_refused(client, school):
    tool = register_tool(services=("lti.launch", "lti.nrps", "lti.ags"), scopes=(NRPS, SCORE),
                         field_classes=("identifier", "directory"))
    url = launch_claims(tool)[NRPS_CLAIM]["context_memberships_url"]
    response = read(client, url, token_for(client, tool, SCORE))
    assert response.status_code == 403
    assert response["WWW-Authenticate"] == 'Bearer error="insufficient_scope"'


def test_no_or_unknown_token_is_refused(client, tool, memberships_url):
    assert client.get(path_of(memberships_url)).status_code == 401
    response = read(client, memberships_url, "forged-token")
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == 'Bearer error="invalid_token"'


def test_a_suspended_integrations_token_fails_on_the_next_call(client, tool, memberships_url):
    token = token_for(client, tool, NRPS)
    assert read(client, memberships_url, token).status_code == 200
    tool.integration.status = IntegrationStatus.SUSPENDED
    tool.integration.save()
    assert read(client, memberships_url, token).status_code == 401
    tool.integration.status = IntegrationStatus.ACTIVE
    tool.integration.save()
    assert read(client, memberships_url, token).status_code == 200


def test_a_withdrawn_approval_stops_the_token_on_the_next_call(client, tool, memberships_url):
    from apps.governance.models import ScopeRequest

    token = token_for(client, tool, NRPS)
    ScopeRequest.objects.filter(integration=tool.integration).update(
        expires_at=timezone.now() - dt.timedelta(seconds=1))
    response = read(client, memberships_url, token)
    assert response.status_code == 403
    assert response["WWW-Authenticate"] == 'Bearer error="insufficient_scope"'


def test_an_expired_token_is_refused(client, tool, memberships_url):
    from apps.lti.models import ServiceToken

    token = token_for(client, tool, NRPS)
    ServiceToken.objects.update(expires_at=timezone.now())
    assert read(client, memberships_url, token).status_code == 401


def test_members_shown_are_disclosed_and_the_call_recorded(client, tool, memberships_url):
    token = token_for(client, tool, NRPS)
    read(client, memberships_url, token, limit=2)

    disclosed = Disclosure.objects.filter(channel=Channel.LTI_NRPS)
    assert disclosed.count() == 2
    assert {d.integration_id for d in disclosed} == {tool.integration.pk}
    # identifiers, and directory data: the given name and the role in the class
    assert {d.field_classes for d in disclosed} == {
        field_classes_mask(["directory", "identifier"])}
    record = AccessRecord.objects.get(channel=Channel.LTI_NRPS)
    assert record.status_code == 200 and record.records == 2
    assert record.endpoint == "/lti/contexts/{id}/memberships"


def test_a_class_leaving_the_approved_orgs_disappears(client, school, memberships_url, tool):
    token = token_for(client, tool, NRPS)
    from apps.governance.models import ScopeRequest

    ScopeRequest.objects.filter(integration=tool.integration).update(org_sourced_ids=["sch9"])
    response = read(client, memberships_url, token)
    assert response.status_code == 404


def test_the_members_page_is_one_query(tool, school):
    world.user("p3", org="sch1", primary_org="sch1")
    world.enrol("p3", "cls1", "sch1")
    release = release_for(tool.integration)
    sql, params = nrps.members_statement(release, "cls1")
    with CaptureQueriesContext(connection) as queries, connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    assert len(rows) == 4
    assert len(queries) == 1


def test_a_page_with_its_context_is_one_statement(tool, school):
    release = release_for(tool.integration)
    nrps.memberships(release, "cls1")  # compiles the page statement for this release
    with CaptureQueriesContext(connection) as queries:
        page = nrps.memberships(release, "cls1", limit=2)
    assert len(queries) == 1
    assert page.context == {"id": "cls1", "label": "MA7A", "title": "Maths 7A"}
    assert len(page.members) == 2 and page.has_more


# A service call: the token with its tool and the context, the release's generations, the
# page, the disclosure (two statements in a savepoint) and the access record.
NRPS_CALL_BUDGET = 8


def test_an_nrps_call_stays_within_its_statement_budget(client, tool, memberships_url):
    token = token_for(client, tool, NRPS)
    read(client, memberships_url, token)
    with CaptureQueriesContext(connection) as queries:
        response = read(client, memberships_url, token)
    assert response.status_code == 200
    assert len(queries) <= NRPS_CALL_BUDGET, "\n".join(q["sql"] for q in queries)


def test_a_role_correction_shows_in_the_launch_and_in_nrps(client, tool, staff_user_factory):
    from apps.governance.models import OverrideKind
    from apps.governance.services.exclusions import override_create
    from tests.lti.advantage import launch_claims as claims_of

    # given the roster says p2 is a student in Maths 7A, and governance corrects it to teacher
    officer = staff_user_factory(username="officer.dsl", role="safeguarding")
    override_create(actor=officer, kind=OverrideKind.ROLE_CORRECTION, user_sourced_id="p2",
                    class_sourced_id="cls1", role="teacher", reason="Student teacher",
                    ends_at=timezone.now() + dt.timedelta(days=30))

    # then both channels carry the corrected role
    roles = claims_of(tool, username="pupil.two")["https://purl.imsglobal.org/spec/lti/claim/roles"]
    assert INSTRUCTOR in roles and LEARNER not in roles
    url = claims_of(tool)[NRPS_CLAIM]["context_memberships_url"]
    members = read(client, url, token_for(client, tool, NRPS)).json()["members"]
    assert next(m for m in members if m["given_name"] == "Givenp2")["roles"] == [INSTRUCTOR]


def test_a_token_bound_to_one_deployment_cannot_read_another_deployments_context(client,
                                                                                  tool):
    from apps.lti.services import deployment_create
    from tests.lti.advantage import ASSERTION_TYPE, assertion

    # given the tool gets a deployment of its own for sch1: Maths 7A launches through it
    school_deployment = deployment_create(registration=tool.registration, org_sourced_id="sch1")
    url = launch_claims(tool)[NRPS_CLAIM]["context_memberships_url"]

    def token_naming(deployment_id: str) -> str:
        response = client.post("/lti/token", {
            "grant_type": "client_credentials", "client_assertion_type": ASSERTION_TYPE,
            "scope": NRPS, "client_assertion": assertion(tool, **{
                "https://purl.imsglobal.org/spec/lti/claim/deployment_id": deployment_id})})
        assert response.status_code == 200, response.content
        return response.json()["access_token"]

    # then a token bound to the tool-wide deployment does not reach the school's context
    assert read(client, url, token_naming(tool.deployment_id)).status_code == 404
    # a token bound to the school's deployment does, and so does one naming none
    assert read(client, url, token_naming(school_deployment.deployment_id)).status_code == 200
    assert read(client, url, token_for(client, tool, NRPS)).status_code == 200
