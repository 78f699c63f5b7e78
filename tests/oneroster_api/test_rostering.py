"""Every rostering endpoint through HTTP: the JSON of the binding, the release deciding rows
and fields, the query parameters, scopes, errors, exclusions and pseudonyms."""

from __future__ import annotations

import datetime as dt

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from apps.audit.models import AccessRecord, Disclosure
from apps.governance.models import ExclusionReason, ExclusionScope
from apps.governance.services.exclusions import exclusion_create
from apps.oneroster_api.endpoints import ENDPOINTS
from apps.oneroster_api.models import PageRun, PendingDisclosure
from apps.oneroster_api.services import disclosures_flush
from tests.governance import release_world as world
from tests.oneroster_api.conftest import ALL_ROSTER_CLASSES, BASE, CORE, DEMO, make_vendor

pytestmark = pytest.mark.django_db


def minor(response) -> str:  # type: ignore[no-untyped-def]
    return response.json()["imsx_CodeMinor"]["imsx_codeMinorField"][0]["imsx_codeMinorFieldValue"]


def ids(response, key: str) -> list[str]:  # type: ignore[no-untyped-def]
    assert response.status_code == 200, response.content
    return [r["sourcedId"] for r in response.json()[key]]


# --- every endpoint --------------------------------------------------------------------------

EXPECTED = {
    # collections and singles: path -> (key, sourcedIds in code-point order)
    "/academicSessions": ("academicSessions", ["gp-1", "term-1", "year-2025"]),
    "/classes": ("classes", ["cls1", "cls2"]),
    "/courses": ("courses", ["course-1"]),
    "/enrollments": ("enrollments", ["enr-p1-cls1", "enr-p2-cls1", "enr-p3-cls2",
                                     "enr-t1-cls1"]),
    "/gradingPeriods": ("academicSessions", ["gp-1"]),
    "/orgs": ("orgs", ["dist", "sch1", "sch2"]),
    "/schools": ("orgs", ["sch1", "sch2"]),
    "/students": ("users", ["p1", "p2", "p3"]),
    "/teachers": ("users", ["t1"]),
    "/terms": ("academicSessions", ["term-1"]),
    "/users": ("users", ["g1", "p1", "p2", "p3", "t1"]),
    # nested
    "/classes/cls1/students": ("users", ["p1", "p2"]),
    "/classes/cls1/teachers": ("users", ["t1"]),
    "/courses/course-1/classes": ("classes", ["cls1", "cls2"]),
    "/schools/sch1/classes": ("classes", ["cls1"]),
    "/schools/sch1/courses": ("courses", ["course-1"]),
    "/schools/sch1/enrollments": ("enrollments", ["enr-p1-cls1", "enr-p2-cls1", "enr-t1-cls1"]),
    "/schools/sch1/students": ("users", ["p1", "p2"]),
    "/schools/sch1/teachers": ("users", ["t1"]),
    "/schools/sch1/terms": ("academicSessions", ["term-1"]),
    "/schools/sch1/classes/cls1/enrollments": ("enrollments", ["enr-p1-cls1", "enr-p2-cls1",
                                                               "enr-t1-cls1"]),
    "/schools/sch1/classes/cls1/students": ("users", ["p1", "p2"]),
    "/schools/sch1/classes/cls1/teachers": ("users", ["t1"]),
    "/students/p1/classes": ("classes", ["cls1"]),
    "/teachers/t1/classes": ("classes", ["cls1"]),
    "/terms/term-1/classes": ("classes", ["cls1", "cls2"]),
    "/terms/term-1/gradingPeriods": ("academicSessions", ["gp-1"]),
    "/users/p3/classes": ("classes", ["cls2"]),
}


@pytest.mark.parametrize("path", sorted(EXPECTED))
def test_every_collection_and_nested_endpoint_serves_the_released_rows(api, token, path):
    key, expected = EXPECTED[path]
    response = api.get(path, token)
    assert ids(response, key) == expected
    assert response["X-Total-Count"] == str(len(expected))


SINGLES = {
    "/academicSessions/term-1": "academicSession", "/classes/cls1": "class",
    "/courses/course-1": "course", "/enrollments/enr-p1-cls1": "enrollment",
    "/gradingPeriods/gp-1": "academicSession", "/orgs/dist": "org", "/schools/sch1": "org",
    "/students/p1": "user", "/teachers/t1": "user", "/terms/term-1": "academicSession",
    "/users/g1": "user",
}


@pytest.mark.parametrize("path", sorted(SINGLES))
def test_every_single_endpoint_wraps_its_record(api, token, path):
    response = api.get(path, token)
    assert response.status_code == 200, response.content
    assert response.json()[SINGLES[path]]["sourcedId"] == path.rsplit("/", 1)[1]


@pytest.mark.parametrize("path", [
    "/classes/cls9", "/orgs/sch3", "/users/p9", "/students/t1", "/teachers/p1",
    "/schools/dist", "/terms/gp-1", "/gradingPeriods/term-1", "/enrollments/enr-p9-cls9",
    "/classes/cls9/students", "/schools/sch3/classes", "/schools/sch2/classes/cls1/students",
    "/students/p9/classes", "/teachers/p1/classes", "/terms/year-2025/classes",
    "/users/nobody/classes",
])
def test_objects_outside_the_release_are_404_unknownobject(api, token, path):
    response = api.get(path, token)
    assert response.status_code == 404
    assert minor(response) == "unknownobject"


def test_every_endpoint_of_the_binding_is_routed():
    routed = {ep.pattern for ep in ENDPOINTS}
    for path in ("/users", "/users/{sourcedId}", "/demographics/{sourcedId}",
                 "/schools/{schoolSourcedId}/classes/{classSourcedId}/teachers",
                 "/terms/{termSourcedId}/gradingPeriods"):
        assert path in routed
    assert len(ENDPOINTS) == 24 + 17


# --- the JSON of the binding --------------------------------------------------------------------


def test_user_json_is_exactly_the_binding(api, token):
    user = api.get("/users/p2", token).json()["user"]
    assert user["enabledUser"] == "true"
    assert user["status"] == "active"
    assert user["userIds"] == [{"type": "MIS", "identifier": "1002"}]
    assert user["primaryOrg"] == {"href": f"http://127.0.0.1:8000{BASE}/orgs/sch1",
                                  "sourcedId": "sch1", "type": "org"}
    assert user["roles"] == [{"roleType": "primary", "role": "student", "org": {
        "href": f"http://127.0.0.1:8000{BASE}/orgs/sch1", "sourcedId": "sch1", "type": "org"}}]
    assert "password" not in user


def test_a_users_roles_and_ids_come_in_a_stable_order_with_dates_when_set(
    api, governance_user, district
):
    world.user("t5", org="sch2", role="teacher", primary_org="sch1",
               user_ids=["{MIS:5}", "{LDAP:t5}", "bare"])
    # inserted out of order: the rendering orders by org, then roleType, then role
    world.rows("roles",
               {"sourced_id": "r-t5-b", "user_sourced_id": "t5", "role_type": "secondary",
                "role": "aide", "org_sourced_id": "sch1"},
               {"sourced_id": "r-t5-a", "user_sourced_id": "t5", "role_type": "primary",
                "role": "teacher", "org_sourced_id": "sch1", "begin_date": dt.date(2024, 9, 1)},
               {"sourced_id": "r-t5-x", "user_sourced_id": "t5", "role_type": "primary",
                "role": "teacher", "org_sourced_id": "sch3"})  # out of scope: not shown
    user = api.get("/users/t5", api.token(make_vendor(governance_user))).json()["user"]

    assert [(r["org"]["sourcedId"], r["roleType"], r["role"]) for r in user["roles"]] == [
        ("sch1", "primary", "teacher"), ("sch1", "secondary", "aide"),
        ("sch2", "primary", "teacher"),
    ]
    assert user["roles"][0]["beginDate"] == "2024-09-01"
    assert "beginDate" not in user["roles"][1] and "endDate" not in user["roles"][0]
    assert user["userIds"] == [{"type": "MIS", "identifier": "5"},
                               {"type": "LDAP", "identifier": "t5"},
                               {"type": "", "identifier": "bare"}]


def _profiles(*owners: str) -> None:
    world.rows("userProfiles", *(
        {"sourced_id": f"prof-{who}", "user_sourced_id": who, "profile_type": "lms",
         "vendor_id": "acme", "credential_type": "password", "username": f"{who}.acme"}
        for who in owners
    ))


def test_a_user_embeds_their_profiles_when_credential_data_is_approved(
    api, governance_user, district
):
    _profiles("p1", "p9")
    vendor = make_vendor(governance_user, classes=(*ALL_ROSTER_CLASSES, "credential"))

    user = api.get("/users/p1", api.token(vendor)).json()["user"]

    assert user["userProfiles"] == [{
        "profileId": "prof-p1", "profileType": "lms", "vendorId": "acme",
        "credentials": [{"type": "password", "username": "p1.acme"}],
    }]
    assert "userProfiles" not in api.get("/users/p2", api.token(vendor)).json()["user"]


def test_a_role_names_its_user_profile_as_the_profile_collection_does(
    api, governance_user, district
):
    # given a pupil whose role points at one of their application profiles
    _profiles("p1")
    world.rows("roles", {"sourced_id": "r-p1-prof", "user_sourced_id": "p1",
                         "role_type": "secondary", "role": "student", "org_sourced_id": "sch2",
                         "user_profile_sourced_id": "prof-p1"})
    classes = (*ALL_ROSTER_CLASSES, "credential")

    plain = api.get("/users/p1", api.token(make_vendor(governance_user, classes=classes)))
    pseudo_token = api.token(make_vendor(governance_user, pseudonymised=True, classes=classes,
                                         name="pseudo"))
    hidden = api.get("/users", pseudo_token, limit=100)

    # then a plain integration sees the profile's sourcedId on the role, and a pseudonymised
    # one the same pseudonym its embedded profile carries, never the school's id
    roles = plain.json()["user"]["roles"]
    assert [r.get("userProfile") for r in roles] == [None, "prof-p1"]
    pupil = next(u for u in hidden.json()["users"]
                 if any(r.get("userProfile") for r in u["roles"]))
    profile_ids = [p["profileId"] for p in pupil["userProfiles"]]
    assert [r["userProfile"] for r in pupil["roles"] if "userProfile" in r] == profile_ids
    assert b"prof-p1" not in hidden.content


def test_profiles_do_not_exist_for_a_vendor_without_credential_approval(
    api, governance_user, district
):
    _profiles("p1")
    token = api.token(make_vendor(governance_user))

    assert "userProfiles" not in api.get("/users/p1", token).json()["user"]
    response = api.get("/users/p1", token, fields="sourcedId,userProfiles")
    assert response.status_code == 400 and minor(response) == "invalid_selection_field"
    assert b"p1.acme" not in api.get("/users", token).content


def test_embedded_profiles_are_pseudonymised_like_the_profile_collection(
    api, governance_user, district
):
    _profiles("p1")
    vendor = make_vendor(governance_user, pseudonymised=True,
                         classes=(*ALL_ROSTER_CLASSES, "credential"))
    token = api.token(vendor)
    listed = {u["givenName"]: u for u in api.get("/users", token).json()["users"]}

    profile = listed["Givenp1"]["userProfiles"][0]
    assert profile["profileId"] != "prof-p1"
    assert profile["credentials"][0]["username"] != "p1.acme"
    assert b"p1.acme" not in api.get("/users", token).content


def test_preferred_names_use_the_binding_names(api, governance_user, district):
    world.user("p5", org="sch1", preferred_given_name="Sam", preferred_family_name="Lee")
    vendor = make_vendor(governance_user)
    user = api.get("/users/p5", api.token(vendor)).json()["user"]
    assert (user["preferredFirstName"], user["preferredLastName"]) == ("Sam", "Lee")
    assert "preferredGivenName" not in user


def test_references_dates_and_booleans(api, token):
    enrollment = api.get("/enrollments/enr-p1-cls1", token).json()["enrollment"]
    assert enrollment["user"]["type"] == "user" and enrollment["class"]["type"] == "class"
    assert enrollment["school"]["sourcedId"] == "sch1"
    klass = api.get("/classes/cls1", token).json()["class"]
    assert klass["terms"] == [{"href": f"http://127.0.0.1:8000{BASE}/terms/term-1",
                               "sourcedId": "term-1", "type": "academicSession"}]
    session = api.get("/academicSessions/term-1", token).json()["academicSession"]
    assert (session["startDate"], session["schoolYear"]) == ("2024-09-01", "2025")
    assert session["children"][0]["sourcedId"] == "gp-1"


def test_date_last_modified_is_utc_iso8601(api, governance_user, district):
    world.rows("orgs", {"sourced_id": "sch4", "name": "New", "type": "school",
                        "parent_sourced_id": "dist",
                        "date_last_modified": dt.datetime(2025, 3, 1, 12, 30, tzinfo=dt.UTC)})
    vendor = make_vendor(governance_user)
    org = api.get("/orgs/sch4", api.token(vendor)).json()["org"]
    assert org["dateLastModified"] == "2025-03-01T12:30:00.000Z"


# --- minimisation -------------------------------------------------------------------------------


def test_unapproved_fields_do_not_exist(api, governance_user, district):
    vendor = make_vendor(governance_user, classes=("identifier", "directory"))
    token = api.token(vendor)
    user = api.get("/users/p1", token).json()["user"]
    assert "email" not in user and "agents" not in user
    response = api.get("/users", token, fields="sourcedId,email")
    assert response.status_code == 400 and minor(response) == "invalid_selection_field"
    response = api.get("/users", token, filter="email~'pupils'")
    assert response.status_code == 400 and minor(response) == "invalid_filter_field"
    response = api.get("/users", token, sort="email")
    assert response.status_code == 400


def test_a_single_approved_field_exists_without_its_class(api, governance_user, district):
    vendor = make_vendor(governance_user, classes=("identifier", "directory"),
                         fields=("users.email",))
    assert api.get("/users/p1", api.token(vendor)).json()["user"]["email"] == "p1@pupils.example"


def test_fields_selects_exactly_the_named_fields(api, token):
    response = api.get("/users", token, fields=["sourcedId,givenName", "familyName"])
    assert response.status_code == 200
    assert set(response.json()["users"][0]) == {"sourcedId", "givenName", "familyName"}


def test_exclusions_withhold_the_person_everywhere(api, vendor, token, officer):
    exclusion_create(actor=officer, user_sourced_id="p1", scope=ExclusionScope.ALL_VENDORS,
                     reason_code=ExclusionReason.COURT_ORDER,
                     ends_at=timezone.now() + dt.timedelta(days=30))
    assert "p1" not in ids(api.get("/users", token), "users")
    assert "p1" not in ids(api.get("/classes/cls1/students", token), "users")
    assert api.get("/users/p1", token).status_code == 404
    assert api.get("/students/p1/classes", token).status_code == 404
    enrollments = ids(api.get("/enrollments", token), "enrollments")
    assert "enr-p1-cls1" not in enrollments
    guardian = api.get("/users/g1", token).json()["user"]
    assert [a["sourcedId"] for a in guardian["agents"]] == ["p2"]
    # the count follows at once, even though the roster version did not change
    assert api.get("/users", token)["X-Total-Count"] == "4"


def test_pseudonymised_integrations_see_stable_pseudonyms_everywhere(api, governance_user,
                                                                     district):
    vendor = make_vendor(governance_user, pseudonymised=True)
    token = api.token(vendor)
    users = api.get("/students", token).json()["users"]
    pseudonyms = [u["sourcedId"] for u in users]
    assert not {"p1", "p2", "p3"} & set(pseudonyms)
    assert all(len(p) == 32 for p in pseudonyms)
    body = api.get("/enrollments", token).content.decode()
    for real in ("p1", "p2", "p3", "t1"):
        assert f'"{real}"' not in body
        assert f"/{real}\"" not in body
    one = pseudonyms[0]
    assert api.get(f"/users/{one}", token).json()["user"]["sourcedId"] == one
    assert api.get(f"/students/{one}/classes", token).status_code == 200
    assert api.get("/users/p1", token).status_code == 404
    # stable: a second request gives the same pseudonyms
    assert [u["sourcedId"] for u in api.get("/students", token).json()["users"]] == pseudonyms


# --- scopes -------------------------------------------------------------------------------------


def test_core_scope_serves_collections_and_singles_but_not_nested(api, vendor):
    token = api.token(vendor, scope=CORE)
    assert api.get("/users", token).status_code == 200
    assert api.get("/users/p1", token).status_code == 200
    response = api.get("/classes/cls1/students", token)
    assert response.status_code == 403 and minor(response) == "forbidden"


def test_demographics_need_their_own_scope(api, governance_user, district):
    plain = make_vendor(governance_user, classes=("identifier", "directory", "demographic"))
    response = api.get("/demographics", api.token(plain))
    assert response.status_code == 403
    demo = make_vendor(governance_user, scopes=(CORE, DEMO),
                       classes=("identifier", "demographic"))
    token = api.token(demo, scope=DEMO)
    assert ids(api.get("/demographics", token), "demographics") == ["p1", "p2"]
    record = api.get("/demographics/p1", token).json()["demographics"]
    assert record["sex"] == "female" and record["birthDate"] == "2012-05-01"


# --- query parameters ---------------------------------------------------------------------------


def test_filter_and_or_never_widen_the_authorisation(api, token):
    assert ids(api.get("/users", token, filter="givenName='Givenp9' OR givenName='Givenp1'"),
               "users") == ["p1"]
    assert ids(api.get("/users", token, filter="sourcedId='p9' OR sourcedId!='p9'"),
               "users") == ["g1", "p1", "p2", "p3", "t1"]


def test_filter_operators(api, token):
    assert ids(api.get("/users", token, filter="familyName~'P1'"), "users") == ["p1"]
    assert ids(api.get("/users", token, filter="sourcedId>='p2' AND sourcedId<'t'"),
               "users") == ["p2", "p3"]
    assert ids(api.get("/users", token, filter="enabledUser='true' AND grades='07'"),
               "users") == ["p1"]
    assert ids(api.get("/enrollments", token, filter="role='teacher'"),
               "enrollments") == ["enr-t1-cls1"]
    assert ids(api.get("/classes", token, filter="school.sourcedId='sch2'"),
               "classes") == ["cls2"]
    assert ids(api.get("/orgs", token, filter="status='active' AND type!='district'"),
               "orgs") == ["sch1", "sch2"]
    assert ids(api.get("/orgs", token, filter="status='tobedeleted'"), "orgs") == []


def test_filter_on_date_last_modified(api, governance_user, district):
    world.rows("orgs", {"sourced_id": "sch5", "name": "Late", "type": "school",
                        "parent_sourced_id": "dist",
                        "date_last_modified": dt.datetime(2025, 6, 1, tzinfo=dt.UTC)})
    vendor = make_vendor(governance_user)
    token = api.token(vendor)
    assert ids(api.get("/orgs", token, filter="dateLastModified>'2025-01-01T00:00:00Z'"),
               "orgs") == ["sch5"]
    assert ids(api.get("/orgs", token, filter="dateLastModified>'2025-06-02'"), "orgs") == []


@pytest.mark.parametrize("hostile", [
    "givenName='x' OR 1=1", "givenName='x'; DROP TABLE roster_user; --",
    "sourcedId=''' OR ''1''=''1'", "givenName~'%'", "givenName~'_'",
    "givenName='\\' OR 1=1 --'", "roster_user.sourced_id='p9'", "U0.sourced_id='x'",
    "givenName=" + "'a'" * 50,
])
def test_hostile_filters_are_a_400_or_match_literally(api, token, hostile):
    response = api.get("/users", token, filter=hostile)
    assert response.status_code in (200, 400)
    if response.status_code == 200:
        assert response.json()["users"] == []
    else:
        assert minor(response) == "invalid_filter_field"


def test_sort_and_order_by_use_code_points_and_are_stable(api, governance_user, district):
    world.user("Z1", org="sch1", given_name="zed")
    world.user("a1", org="sch1", given_name="Zed")
    vendor = make_vendor(governance_user)
    token = api.token(vendor)
    assert ids(api.get("/students", token), "users") == ["Z1", "a1", "p1", "p2", "p3"]
    assert ids(api.get("/students", token, orderBy="desc"), "users") == [
        "p3", "p2", "p1", "a1", "Z1"]
    names = [u["givenName"] for u in api.get("/students", token, sort="givenName").json()["users"]]
    assert names == sorted(names)  # Python sorts by code point, like C collation
    assert names[:2] == ["Givenp1", "Givenp2"] and names[-1] == "zed"


def test_paging_headers(api, token):
    response = api.get("/users", token, limit=2, offset=2)
    assert ids(response, "users") == ["p2", "p3"]
    assert response["X-Total-Count"] == "5"
    links = response["Link"]
    for rel, offset in (("first", 0), ("prev", 0), ("next", 4), ("last", 4)):
        assert f'offset={offset}>; rel="{rel}"' in links
    assert ids(api.get("/users", token, limit=2, offset=4), "users") == ["t1"]
    assert ids(api.get("/users", token, limit=2, offset=10), "users") == []


def test_deep_pages_start_from_cached_anchors(api, governance_user, district, settings):
    from apps.oneroster_api import render

    render.ANCHOR_STEP, step = 2, render.ANCHOR_STEP
    try:
        world.rows("users", *[
            {"sourced_id": f"u{i:03d}", "enabled_user": True, "username": f"u{i}",
             "given_name": "G", "family_name": "F", "primary_org_sourced_id": "sch1"}
            for i in range(11)
        ])
        vendor = make_vendor(governance_user)
        token = api.token(vendor)
        everything = ids(api.get("/users", token, limit=100), "users")
        for offset in range(len(everything)):
            for desc in (False, True):
                order = list(reversed(everything)) if desc else everything
                got = ids(api.get("/users", token, limit=3, offset=offset,
                                  orderBy="desc" if desc else "asc"), "users")
                assert got == order[offset:offset + 3]
    finally:
        render.ANCHOR_STEP = step


def _many_users(count: int) -> None:
    world.rows("users", *[
        {"sourced_id": f"u{i:03d}", "enabled_user": True, "username": f"u{i}",
         "given_name": "G", "family_name": "F", "primary_org_sourced_id": "sch1"}
        for i in range(count)
    ])


@pytest.fixture
def runs_of_two(monkeypatch):  # type: ignore[no-untyped-def]
    """Runs (and anchors) of two records, so that a small list has many (a large
    district's are 250 long)."""
    from apps.oneroster_api import render

    monkeypatch.setattr(render, "ANCHOR_STEP", 2)


def _pseudonymised_token(api, governance_user, users: int) -> str:  # type: ignore[no-untyped-def]
    _many_users(users)
    return api.token(make_vendor(governance_user, pseudonymised=True))


def test_every_page_of_a_pseudonymised_list_is_its_slice_of_the_pseudonym_order(
    api, governance_user, district, runs_of_two
):
    # given a pseudonymised integration, with pages falling across several runs
    token = _pseudonymised_token(api, governance_user, 11)
    everything = ids(api.get("/users", token, limit=100), "users")
    assert everything == sorted(everything) and len(everything) == 16

    # then every page, both ways, is the slice of that order
    for offset in range(len(everything) + 1):
        for desc in (False, True):
            order = list(reversed(everything)) if desc else everything
            got = ids(api.get("/users", token, limit=3, offset=offset,
                              orderBy="desc" if desc else "asc"), "users")
            assert got == order[offset:offset + 3], (offset, desc)
    # and the list's runs are kept, the stored ids of each two records in pseudonym order
    runs = list(PageRun.objects.order_by("key", "number").values_list("sourced_ids", flat=True))
    assert runs and all(len(run) <= 2 for run in runs)


def test_a_page_of_a_pseudonymised_list_computes_only_its_runs_pseudonyms(
    api, governance_user, district, runs_of_two
):
    token = _pseudonymised_token(api, governance_user, 11)
    api.get("/users", token, limit=1)  # the list's total and runs

    with CaptureQueriesContext(connection) as queries:
        page = ids(api.get("/users", token, limit=2, offset=6), "users")

    # the page reads its run's stored ids (two people), not every person in the list
    assert len(page) == 2
    statement = next(q["sql"] for q in queries.captured_queries if "sha256" in q["sql"])
    assert "= ANY(" in statement


def test_a_pseudonymised_page_whose_runs_are_gone_is_still_right(
    api, governance_user, district, runs_of_two
):
    token = _pseudonymised_token(api, governance_user, 5)
    everything = ids(api.get("/users", token, limit=100), "users")
    PageRun.objects.all().delete()  # a crash empties the unlogged table, say

    assert ids(api.get("/users", token, limit=3, offset=4), "users") == everything[4:7]
    # the list's figures were dropped, so the next page computes its runs again
    assert ids(api.get("/users", token, limit=3, offset=7), "users") == everything[7:10]
    assert PageRun.objects.exists()


def test_runs_of_an_older_roster_version_are_purged_when_newer_ones_are_kept(
    api, governance_user, district
):
    from apps.roster.models import RosterVersion, Source

    token = api.token(make_vendor(governance_user, pseudonymised=True))
    source = Source.objects.create(name="version-bumper")
    RosterVersion.objects.create(number=1, source=source)
    api.get("/users", token)
    assert set(PageRun.objects.values_list("roster_version", flat=True)) == {1}

    RosterVersion.objects.create(number=2, source=source)  # an import lands
    api.get("/users", token)

    assert set(PageRun.objects.values_list("roster_version", flat=True)) == {2}


def test_a_plain_list_keeps_anchors_and_no_runs(api, token):
    api.get("/users", token, limit=2, offset=2)

    assert not PageRun.objects.exists()


def test_anchors_cached_under_another_step_are_never_read(monkeypatch):
    from apps.oneroster_api import render

    key = render.stats_key("release", 7, "users")
    monkeypatch.setattr(render, "ANCHOR_STEP", render.ANCHOR_STEP * 4)

    assert render.stats_key("release", 7, "users") != key


def test_a_page_costs_a_fixed_number_of_queries_and_no_count(api, token, settings):
    settings.CELERY_TASK_ALWAYS_EAGER = False  # with a worker, disclosures are folded in later
    api.get("/users", token)  # warm the count cache
    with CaptureQueriesContext(connection) as queries:
        response = api.get("/users", token, limit=2)
    assert response.status_code == 200
    assert not any("count(" in q["sql"].lower() for q in queries.captured_queries)
    assert len(queries.captured_queries) <= 15


# --- errors, records, limits ---------------------------------------------------------------------


def test_no_or_bad_token_is_401_unauthorisedrequest(api, vendor):
    for token in (None, "garbage"):
        response = api.get("/users", token)
        assert response.status_code == 401
        assert minor(response) == "unauthorisedrequest"
        assert response.json()["imsx_codeMajor"] == "failure"
        assert response.json()["imsx_severity"] == "error"


def test_unknown_endpoints_and_methods(api, token):
    response = api.get("/nothing", token)
    assert response.status_code == 404 and minor(response) == "unknownobject"
    response = api.http.post(BASE + "/users", HTTP_AUTHORIZATION=f"Bearer {token}")
    assert response.status_code == 405


def test_bad_paging_is_400_invaliddata(api, token):
    for params in ({"limit": "0"}, {"offset": "-3"}, {"orderBy": "sideways"}):
        response = api.get("/users", token, **params)
        assert response.status_code == 400 and minor(response) == "invaliddata"


def test_every_request_leaves_an_access_record_and_disclosures(api, vendor, token):
    api.get("/users", token)
    api.get("/users/nobody", token)
    api.get("/orgs", token)
    disclosures_flush()
    records = list(AccessRecord.objects.filter(endpoint__startswith=BASE)
                   .order_by("id").values_list("endpoint", "status_code", "records"))
    assert records == [(f"{BASE}/users", 200, 5), (f"{BASE}/users/{{sourcedId}}", 404, 0),
                       (f"{BASE}/orgs", 200, 3)]
    disclosed = set(Disclosure.objects.filter(integration_id=vendor.integration.pk)
                    .values_list("user_sourced_id", flat=True))
    assert disclosed == {"g1", "p1", "p2", "p3", "t1"}


def test_disclosures_record_school_ids_for_pseudonymised_integrations(api, governance_user,
                                                                      district):
    vendor = make_vendor(governance_user, pseudonymised=True)
    api.get("/students", api.token(vendor))
    disclosures_flush()
    assert set(Disclosure.objects.values_list("user_sourced_id", flat=True)) == {"p1", "p2", "p3"}


def test_rate_limit_answers_429_with_retry_after(api, vendor, token, redis_url):
    client = vendor.integration.oneroster_client
    client.rate_limit_per_minute = 3
    client.save(update_fields=["rate_limit_per_minute"])
    statuses = [api.get("/orgs", token).status_code for _ in range(5)]
    assert statuses[:3] == [200, 200, 200]
    response = api.get("/orgs", token)
    assert response.status_code == 429 and minor(response) == "server_busy"
    assert 1 <= int(response["Retry-After"]) <= 60


def test_the_default_rate_limit_is_generous(settings):
    from apps.oneroster_api.auth import DEFAULT_RATE_LIMIT

    assert DEFAULT_RATE_LIMIT >= 1200


def test_a_failure_inside_is_500_internal_server_error(api, token, monkeypatch):
    from apps.oneroster_api import render

    def broken(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise RuntimeError("boom")

    monkeypatch.setattr(render, "page_sql", broken)
    response = api.get("/users", token)
    assert response.status_code == 500 and minor(response) == "internal_server_error"


def test_the_openapi_document_and_the_connect_page(api):
    doc = api.http.get(f"{BASE}/openapi.json").json()
    assert doc["openapi"].startswith("3.")
    assert "/classes/{classSourcedId}/students" in doc["paths"]
    assert doc["components"]["securitySchemes"]["OAuth2CC"]["flows"]["clientCredentials"]
    page = api.http.get("/oneroster/connect")
    assert page.status_code == 200 and b"client_credentials" in page.content


def test_disclosures_wait_in_one_row_per_request_until_flushed(api, vendor, token, settings):
    settings.CELERY_TASK_ALWAYS_EAGER = False  # the production shape: a worker folds them in
    api.get("/users", token)
    api.get("/users", token, limit=2)
    assert PendingDisclosure.objects.count() == 2
    assert not Disclosure.objects.exists()
    assert disclosures_flush() == 2
    assert not PendingDisclosure.objects.exists()
    assert Disclosure.objects.count() == 5


def test_disclosures_are_recorded_at_once_when_celery_runs_eagerly(api, vendor, token, settings):
    settings.CELERY_TASK_ALWAYS_EAGER = True
    api.get("/users/p1", token)
    assert list(Disclosure.objects.values_list("user_sourced_id", flat=True)) == ["p1"]


def test_what_exclusions_withhold_is_counted_but_never_shown(api, vendor, token, officer):
    from apps.governance.models import ExclusionHit

    exclusion = exclusion_create(
        actor=officer, user_sourced_id="p1", scope=ExclusionScope.ALL_VENDORS,
        reason_code=ExclusionReason.COURT_ORDER, ends_at=timezone.now() + dt.timedelta(days=30),
    )
    # a listing withholds the pupil's user row: counted once for the day, however many pages
    listed = api.get("/users", token, limit=2)
    api.get("/users", token, limit=2, offset=2)
    hit = ExclusionHit.objects.get(exclusion=exclusion)
    # the pupil's own row and the guardian's link to them
    assert (hit.records, hit.releases) == (2, 1)

    # asking for the pupil by id is an attempt that touched them: counted each time, and the
    # answer is the one an unknown id gets
    probe = api.get("/users/p1", token)
    unknown = api.get("/users/nobody", token)
    assert probe.status_code == unknown.status_code == 404
    assert probe.json()["imsx_description"].replace("p1", "?") == \
        unknown.json()["imsx_description"].replace("nobody", "?")
    api.get("/students/p1/classes", token)
    hit.refresh_from_db()
    assert (hit.records, hit.releases) == (6, 3)
    assert "p1" not in listed.content.decode()


def test_a_large_org_scope_is_bound_as_one_parameter_not_one_per_org(api, vendor, token):
    """A district of hundreds of schools once cost tens of milliseconds a page in the driver
    quoting one placeholder per org, several times per statement."""
    for n in range(300):
        world.org(f"extra-{n}", "dist")
    api.get("/users", token, limit=1)  # page statistics for the new scope, cached

    bound: list[int] = []

    def count_parameters(execute, sql, params, many, context):  # type: ignore[no-untyped-def]
        bound.append(len(params or ()))
        return execute(sql, params, many, context)

    with connection.execute_wrapper(count_parameters):
        for path in ("/users", "/students", "/classes/cls1/students", "/schools",
                     "/enrollments", "/users/p1"):
            assert api.get(path, token).status_code == 200, path

    assert max(bound) < 60
