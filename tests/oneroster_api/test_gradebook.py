"""The OneRoster 1.2 gradebook service, from the outside: every endpoint, its scopes, its
errors, ownership of written rows, exclusions and pseudonyms."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from django.test import Client
from django.utils import timezone

from apps.audit.models import AccessRecord
from apps.governance.models import ExclusionReason, ExclusionScope
from apps.governance.services.exclusions import exclusion_create
from apps.oneroster_api.services import oauth_client_issue
from apps.roster.models import Result, RosterVersion, Source
from tests.governance import release_world as world
from tests.oneroster_api.conftest import OR, Vendor

pytestmark = pytest.mark.django_db

GB = "/ims/oneroster/gradebook/v1p2"
GB_CORE = OR + "gradebook-core.readonly"
GB_FULL = OR + "gradebook.readonly"
PUT = OR + "gradebook.createput"
POST = OR + "gradebook.createpost"
DELETE = OR + "gradebook.delete"
WRITER_SCOPES = (GB_CORE, GB_FULL, PUT, POST, DELETE)
CLASSES = ("identifier", "directory", "assessment")


def gradebook_vendor(governance_user, *, scopes=WRITER_SCOPES, pseudonymised=False,  # type: ignore[no-untyped-def]
                     classes=CLASSES, services=("oneroster.rostering", "oneroster.gradebook"),
                     orgs=("dist",)) -> Vendor:
    integration = world.integration(pseudonymised=pseudonymised)
    world.approve(integration, orgs=orgs, scopes=tuple(scopes), field_classes=classes,
                  services=services)
    issued = oauth_client_issue(integration=integration, actor=governance_user)
    return Vendor(integration, issued.client_id, issued.client_secret)


class Gradebook:
    """The gradebook service seen from the outside."""

    def __init__(self) -> None:
        self.http = Client()

    def token(self, vendor: Vendor, scope: str | None = None) -> str:
        data = {"grant_type": "client_credentials"}
        if scope is not None:
            data["scope"] = scope
        response = self.http.post("/oauth/token", data, HTTP_AUTHORIZATION=vendor.basic())
        assert response.status_code == 200, response.content
        return response.json()["access_token"]

    def _auth(self, token: str | None) -> dict:
        return {"HTTP_AUTHORIZATION": f"Bearer {token}"} if token else {}

    def get(self, path: str, token: str | None, **params):  # type: ignore[no-untyped-def]
        return self.http.get(GB + path, params, **self._auth(token))

    def put(self, path: str, token: str | None, body):  # type: ignore[no-untyped-def]
        data = body if isinstance(body, str | bytes) else json.dumps(body)
        return self.http.put(GB + path, data, content_type="application/json",
                             **self._auth(token))

    def post(self, path: str, token: str | None, body):  # type: ignore[no-untyped-def]
        data = body if isinstance(body, str | bytes) else json.dumps(body)
        return self.http.post(GB + path, data, content_type="application/json",
                              **self._auth(token))

    def delete(self, path: str, token: str | None):  # type: ignore[no-untyped-def]
        return self.http.delete(GB + path, **self._auth(token))


@pytest.fixture
def gb() -> Gradebook:
    return Gradebook()


@pytest.fixture
def sis_gradebook(district):  # type: ignore[no-untyped-def]
    """The SIS's own gradebook rows: a category, a line item in cls1 and one in cls9 (another
    district), results for p1, p2 and p9, a score scale per class."""
    world.rows("categories", {"sourced_id": "cat-1", "title": "Homework", "weight": 30})
    world.rows("lineItems",
               {"sourced_id": "li-sis", "title": "Term test", "assign_date": dt.date(2024, 10, 1),
                "due_date": dt.date(2024, 10, 8), "class_sourced_id": "cls1",
                "category_sourced_id": "cat-1", "academic_session_sourced_id": "term-1",
                "result_value_min": 0, "result_value_max": 100, "school_sourced_id": "sch1"},
               {"sourced_id": "li-far", "title": "Art test", "assign_date": dt.date(2024, 10, 1),
                "due_date": dt.date(2024, 10, 8), "class_sourced_id": "cls9",
                "category_sourced_id": "cat-1", "academic_session_sourced_id": "term-1",
                "school_sourced_id": "sch3"})
    world.result("res-p1", "li-sis", "p1", "cls1")
    world.result("res-p2", "li-sis", "p2", "cls1")
    world.result("res-p9", "li-far", "p9", "cls9")
    world.rows("scoreScales",
               {"sourced_id": "ss-1", "title": "A-C", "type": "letter", "org_sourced_id": "sch1",
                "course_sourced_id": "course-1", "class_sourced_id": "cls1",
                "score_scale_value": ["{A:90}", "{B:80}"]},
               {"sourced_id": "ss-9", "title": "A-C", "type": "letter", "org_sourced_id": "sch3",
                "course_sourced_id": "course-9", "class_sourced_id": "cls9",
                "score_scale_value": ["{A:90}"]})


@pytest.fixture
def writer(db, sis_gradebook, governance_user) -> Vendor:  # type: ignore[no-untyped-def]
    return gradebook_vendor(governance_user)


@pytest.fixture
def token(gb, writer) -> str:  # type: ignore[no-untyped-def]
    return gb.token(writer)


def ids(response, key: str) -> set[str]:  # type: ignore[no-untyped-def]
    assert response.status_code == 200, response.content
    return {item["sourcedId"] for item in response.json()[key]}


def code_minor(response) -> str:  # type: ignore[no-untyped-def]
    return response.json()["imsx_CodeMinor"]["imsx_codeMinorField"][0]["imsx_codeMinorFieldValue"]


def line_item(sid: str = "li-tool", klass: str = "cls1", **extra) -> dict:  # type: ignore[no-untyped-def]
    return {"lineItem": {
        "sourcedId": sid, "title": "Quiz 1", "assignDate": "2024-10-02",
        "dueDate": "2024-10-03T15:00:00Z", "class": {"sourcedId": klass},
        "category": {"sourcedId": "cat-1"}, "academicSession": {"sourcedId": "term-1"},
        "resultValueMin": 0, "resultValueMax": 10, **extra,
    }}


def result(sid: str, student: str, score=7, *, item: str = "li-tool",  # type: ignore[no-untyped-def]
           status: str = "fully graded", **extra) -> dict:
    return {"result": {
        "sourcedId": sid, "lineItem": {"sourcedId": item}, "student": {"sourcedId": student},
        "scoreStatus": status, "score": score, "scoreDate": "2024-10-03", **extra,
    }}


# --- reads -------------------------------------------------------------------------------------


def test_collections_and_singles_serve_what_the_release_allows(gb, token):
    assert ids(gb.get("/categories", token), "categories") == {"cat-1"}
    assert ids(gb.get("/lineItems", token), "lineItems") == {"li-sis"}
    assert ids(gb.get("/results", token), "results") == {"res-p1", "res-p2"}
    assert ids(gb.get("/scoreScales", token), "scoreScales") == {"ss-1"}

    item = gb.get("/lineItems/li-sis", token).json()["lineItem"]
    assert item["class"]["href"].endswith("/ims/oneroster/rostering/v1p2/classes/cls1")
    assert item["category"]["href"].endswith("/ims/oneroster/gradebook/v1p2/categories/cat-1")
    assert item["resultValueMax"] == 100 and item["assignDate"] == "2024-10-01"
    got = gb.get("/results/res-p1", token).json()["result"]
    assert got["score"] == 7 and got["scoreStatus"] == "fully graded"
    assert got["student"]["sourcedId"] == "p1" and got["lineItem"]["sourcedId"] == "li-sis"
    scale = gb.get("/scoreScales/ss-1", token).json()["scoreScale"]
    assert scale["scoreScaleValue"] == [{"itemValueLHS": "A", "itemValueRHS": "90"},
                                        {"itemValueLHS": "B", "itemValueRHS": "80"}]
    assert gb.get("/categories/cat-1", token).json()["category"]["weight"] == 30
    # another district's class, its line item and results do not exist for this client
    for path in ("/lineItems/li-far", "/results/res-p9", "/scoreScales/ss-9"):
        response = gb.get(path, token)
        assert response.status_code == 404 and code_minor(response) == "unknownobject"


def test_nested_endpoints_narrow_to_their_parent(gb, token):
    assert ids(gb.get("/classes/cls1/categories", token), "categories") == {"cat-1"}
    assert ids(gb.get("/classes/cls1/lineItems", token), "lineItems") == {"li-sis"}
    assert ids(gb.get("/schools/sch1/lineItems", token), "lineItems") == {"li-sis"}
    assert ids(gb.get("/classes/cls1/results", token), "results") == {"res-p1", "res-p2"}
    assert ids(gb.get("/classes/cls1/lineItems/li-sis/results", token),
               "results") == {"res-p1", "res-p2"}
    assert ids(gb.get("/classes/cls1/students/p2/results", token), "results") == {"res-p2"}
    assert ids(gb.get("/classes/cls1/scoreScales", token), "scoreScales") == {"ss-1"}
    assert ids(gb.get("/schools/sch1/scoreScales", token), "scoreScales") == {"ss-1"}
    assert ids(gb.get("/classes/cls2/lineItems", token), "lineItems") == set()
    for path in ("/classes/cls9/results", "/schools/sch3/scoreScales",
                 "/classes/cls1/lineItems/li-far/results", "/classes/cls1/students/p3/results"):
        assert gb.get(path, token).status_code == 404, path


def test_the_query_grammar_applies_to_gradebook_collections(gb, token):
    response = gb.get("/results", token, filter="score>'6.5' AND scoreStatus='fully graded'",
                      sort="sourcedId", orderBy="desc", limit="1", fields="sourcedId,score")
    assert response.json() == {"results": [{"sourcedId": "res-p2", "score": 7}]}
    assert response["X-Total-Count"] == "2"
    assert 'rel="next"' in response["Link"] and GB + "/results?" in response["Link"]
    assert ids(gb.get("/results", token, filter="score>'7'"), "results") == set()
    bad = gb.get("/results", token, filter="score>'lots'")
    assert bad.status_code == 400 and code_minor(bad) == "invalid_filter_field"


def test_reads_need_a_gradebook_scope_and_nested_reads_the_full_one(gb, writer, governance_user):
    core = gb.token(writer, GB_CORE)
    assert gb.get("/results", core).status_code == 200
    nested = gb.get("/classes/cls1/results", core)
    assert nested.status_code == 403 and code_minor(nested) == "forbidden"
    roster_only = gradebook_vendor(governance_user, scopes=(OR + "roster-core.readonly",))
    assert gb.get("/results", gb.token(roster_only)).status_code == 403
    no_service = gradebook_vendor(governance_user, services=("oneroster.rostering",))
    response = gb.get("/results", gb.token(no_service))
    assert response.status_code == 403 and "gradebook" in response.json()["imsx_description"]
    assert gb.get("/results", None).status_code == 401


def test_an_excluded_pupil_has_no_results_and_can_receive_none(gb, writer, token, officer):
    exclusion_create(actor=officer, user_sourced_id="p1", scope=ExclusionScope.ALL_VENDORS,
                     reason_code=ExclusionReason.COURT_ORDER,
                     ends_at=timezone.now() + dt.timedelta(days=30))

    assert ids(gb.get("/results", token), "results") == {"res-p2"}
    assert gb.get("/results/res-p1", token).status_code == 404
    assert gb.get("/classes/cls1/students/p1/results", token).status_code == 404
    written = gb.put("/results/r-p1", token, result("r-p1", "p1", item="li-sis"))
    assert written.status_code == 422
    assert "result.student.sourcedId: there is no student p1" in written.json()["imsx_description"]
    assert not Result.objects.filter(sourced_id="r-p1").exists()


def test_a_pseudonymised_integration_reads_and_writes_with_pseudonyms(gb, sis_gradebook,
                                                                      governance_user):
    vendor = gradebook_vendor(governance_user, pseudonymised=True)
    token = gb.token(vendor)
    results = gb.get("/results", token).json()["results"]
    students = {r["student"]["sourcedId"] for r in results}
    assert len(students) == 2 and not students & {"p1", "p2"}
    assert not {r["sourcedId"] for r in results} & {"res-p1", "res-p2"}
    assert "p1" not in gb.get("/results", token).content.decode()
    pupil = next(iter(students))

    assert gb.put("/lineItems/li-ps", token, line_item("li-ps")).status_code == 201
    written = gb.put("/results/r-ps", token, result("r-ps", pupil, item="li-ps"))
    assert written.status_code == 201, written.content
    assert written.json()["result"]["student"]["sourcedId"] == pupil
    stored = Result.objects.get(sourced_id="r-ps", valid_to_version__isnull=True)
    assert stored.student_sourced_id in ("p1", "p2")
    assert gb.get(f"/classes/cls1/students/{pupil}/results", token).status_code == 200
    # its own result keeps the id it chose; the school's results keep their pseudonyms
    own = gb.get("/results/r-ps", token)
    assert own.status_code == 200 and own.json()["result"]["sourcedId"] == "r-ps"
    assert own.json()["result"]["student"]["sourcedId"] == pupil
    listed = ids(gb.get("/results", token), "results")
    assert "r-ps" in listed and not listed & {"res-p1", "res-p2"}
    assert gb.delete("/results/r-ps", token).status_code == 204
    # a school id is not a pseudonym this client knows
    assert gb.put("/results/r-x", token, result("r-x", "p1", item="li-ps")).status_code == 422


# --- writes ------------------------------------------------------------------------------------


def test_put_creates_then_replaces_a_line_item_as_a_version_owned_by_the_integration(gb, writer,
                                                                                  token):
    created = gb.put("/lineItems/li-tool", token, line_item())
    assert created.status_code == 201, created.content
    body = created.json()["lineItem"]
    assert body["sourcedId"] == "li-tool" and body["school"]["sourcedId"] == "sch1"
    assert body["dueDate"] == "2024-10-03"
    version = RosterVersion.objects.order_by("-number").first()
    source = Source.objects.get(name=f"integration-{writer.integration.pk}")
    assert version.source == source and version.kind == "gradebook" and version.added == 1

    replaced = gb.put("/lineItems/li-tool", token, line_item(title="Quiz one"))
    assert replaced.status_code == 200 and replaced.json()["lineItem"]["title"] == "Quiz one"
    same = gb.put("/lineItems/li-tool", token, line_item(title="Quiz one"))
    assert same.status_code == 200
    assert RosterVersion.objects.filter(source=source).count() == 2  # nothing changed: no version


def test_results_accept_a_score_above_the_maximum_and_an_exempt_status(gb, token):
    gb.put("/lineItems/li-tool", token, line_item())

    above = gb.put("/results/r1", token, result("r1", "p1", 12.5, comment="Extra credit"))
    exempt = gb.put("/results/r2", token, result("r2", "p2", None, status="exempt",
                                                 late=True, missing="false"))

    assert above.status_code == 201 and above.json()["result"]["score"] == 12.5
    assert above.json()["result"]["class"]["sourcedId"] == "cls1"  # from the line item
    got = exempt.json()["result"]
    assert exempt.status_code == 201 and got["scoreStatus"] == "exempt" and "score" not in got
    assert got["late"] == "true" and got["missing"] == "false"
    assert ids(gb.get("/classes/cls1/lineItems/li-tool/results", token), "results") == {"r1", "r2"}


def test_the_reply_to_a_put_is_what_a_get_then_returns(gb, token):
    writes = [
        ("/categories/cat-tool", {"category": {"title": "Quizzes", "weight": 12.5}}),
        ("/lineItems/li-tool", line_item(description="Chapter 3")),
        ("/results/r1", result("r1", "p1", 8.25, comment="Neat", late=True, inProgress="false",
                               textScore="B+")),
        ("/scoreScales/ss-tool", {"scoreScale": {
            "title": "Stars", "type": "stars", "school": {"sourcedId": "sch1"},
            "course": {"sourcedId": "course-1"}, "class": {"sourcedId": "cls1"},
            "scoreScaleValue": [{"itemValueLHS": "***", "itemValueRHS": "Great: really"}]}}),
    ]
    for path, body in writes:
        reply = gb.put(path, token, body)
        assert reply.status_code == 201, reply.content
        assert reply.json() == gb.get(path, token).json(), path
    # sent again unchanged (a tool re-syncing): no new version, the stored row as it was
    versions = RosterVersion.objects.count()
    for path, body in writes:
        again = gb.put(path, token, body)
        assert again.status_code == 200, again.content
        assert again.json() == gb.get(path, token).json(), path
    assert RosterVersion.objects.count() == versions


def test_a_result_put_costs_a_fixed_number_of_queries(gb, token, django_assert_num_queries,
                                                      django_capture_on_commit_callbacks):
    """One score per request is what tools send, so each statement counts: the token with
    the release's generations, every reference in one statement, the version lock and the
    probe in one round trip, one statement writing row, version and outbox, and the access
    record (plus the test transaction's savepoint and its release; outside a transaction,
    as in production, BEGIN and COMMIT travel with the lock and the write instead)."""
    gb.put("/lineItems/li-tool", token, line_item())
    with django_capture_on_commit_callbacks(execute=True):  # as after a real commit
        gb.put("/results/r0", token, result("r0", "p2"))
    with django_assert_num_queries(7):
        assert gb.put("/results/r1", token, result("r1", "p1")).status_code == 201
    with django_assert_num_queries(7):  # a replacement closes the old row in the same statement
        assert gb.put("/results/r1", token, result("r1", "p1", 8)).status_code == 200
    assert [r.score for r in Result.objects.filter(sourced_id="r1").order_by("id")] == [7, 8]


def test_an_exclusion_refuses_the_next_write_for_that_pupil_only(gb, token, officer):
    assert gb.put("/lineItems/li-tool", token, line_item()).status_code == 201
    assert gb.put("/results/r1", token, result("r1", "p1")).status_code == 201

    exclusion_create(actor=officer, user_sourced_id="p1", scope=ExclusionScope.ALL_VENDORS,
                     reason_code=ExclusionReason.COURT_ORDER,
                     ends_at=timezone.now() + dt.timedelta(days=30))

    refused = gb.put("/results/r1", token, result("r1", "p1", 9))
    assert refused.status_code == 422
    assert "result.student.sourcedId: there is no student p1" in refused.json()["imsx_description"]
    assert gb.put("/results/r2", token, result("r2", "p2", 9)).status_code == 201
    assert Result.objects.get(sourced_id="r1", valid_to_version__isnull=True).score == 7


def test_a_suspension_refuses_the_next_write(gb, writer, token, governance_user):
    from apps.vendors.services import integration_suspend

    assert gb.put("/lineItems/li-tool", token, line_item()).status_code == 201

    integration_suspend(integration=writer.integration, actor=governance_user, reason="audit")

    assert gb.put("/results/r1", token, result("r1", "p1")).status_code == 401
    assert not Result.objects.filter(sourced_id="r1").exists()


@pytest.mark.parametrize(
    ("path", "body", "where"),
    [
        ("/lineItems/li-x", line_item("li-x", klass="cls9"),
         "lineItem.class.sourcedId: there is no class cls9"),
        ("/lineItems/li-x", line_item("li-x", category={"sourcedId": "nope"}),
         "lineItem.category.sourcedId: there is no category nope"),
        ("/lineItems/li-x", line_item("li-x", assignDate="2024-13-45"),
         "lineItem.assignDate: must be a date"),
        ("/lineItems/li-x", line_item("li-x", dueDate="2024-09-01"),
         "lineItem.dueDate: is before assignDate"),
        ("/lineItems/li-x", line_item("li-x", title=None), "lineItem.title: is required"),
        ("/lineItems/li-x", line_item("li-other"), "lineItem.sourcedId: does not match"),
        ("/lineItems/li-x", {"lineItems": {}}, "body: The body must be a JSON object"),
        ("/lineItems/li-x", "{not json", "body: The body must be a JSON object"),
        ("/results/r-x", result("r-x", "p1", item="li-nope"),
         "result.lineItem.sourcedId: there is no lineItem li-nope"),
        ("/results/r-x", result("r-x", "p1", item="li-far"),
         "result.lineItem.sourcedId: there is no lineItem li-far"),
        ("/results/r-x", result("r-x", "p1", item="li-sis", status="done"),
         "result.scoreStatus: must be one of"),
        ("/results/r-x", result("r-x", "p1", "ten", item="li-sis"),
         "result.score: must be a number"),
        ("/results/r-x", result("r-x", "p1", item="li-sis", scoreDate="yesterday"),
         "result.scoreDate: must be a date"),
        ("/results/r-x", result("r-x", "p3", item="li-sis"),
         "result.student.sourcedId: student p3 is not enrolled in class cls1"),
        ("/results/r-x", result("r-x", "p1", item="li-sis", late="maybe"),
         "result.late: must be true or false"),
        ("/scoreScales/ss-x", {"scoreScale": {"title": "x", "type": "letter",
                                              "school": {"sourcedId": "sch1"},
                                              "course": {"sourcedId": "course-1"},
                                              "class": {"sourcedId": "cls1"},
                                              "scoreScaleValue": "A"}},
         "scoreScale.scoreScaleValue: must be a list"),
    ],
)
def test_bad_bodies_are_refused_with_422_naming_the_field(gb, token, path, body, where):
    before = RosterVersion.objects.count()
    response = gb.put(path, token, body)
    assert response.status_code == 422, response.content
    assert code_minor(response) == "invaliddata"
    assert where in response.json()["imsx_description"]
    assert response.json()["imsx_details"]
    assert RosterVersion.objects.count() == before


def test_a_write_touching_another_owners_row_is_refused_with_403(gb, sis_gradebook, writer,
                                                                 token, governance_user):
    sis_row = gb.put("/results/res-p1", token, result("res-p1", "p1", 0, item="li-sis"))
    assert sis_row.status_code == 403 and code_minor(sis_row) == "forbidden"
    assert "belongs to another source" in sis_row.json()["imsx_description"]
    assert gb.delete("/lineItems/li-sis", token).status_code == 403
    # another tool's result is just as safe
    other = gradebook_vendor(governance_user)
    other_token = gb.token(other)
    gb.put("/lineItems/li-tool", token, line_item())
    gb.put("/results/r1", token, result("r1", "p1", 9))
    assert gb.put("/results/r1", other_token, result("r1", "p1", 0)).status_code == 403
    assert gb.delete("/results/r1", other_token).status_code == 403
    assert gb.get("/results/r1", other_token).json()["result"]["score"] == 9
    assert gb.get("/results/res-p1", token).json()["result"]["score"] == 7


def test_delete_removes_an_own_object_and_404s_an_unknown_one(gb, token):
    gb.put("/categories/cat-tool", token, {"category": {"title": "Quizzes", "weight": 12.5}})
    assert gb.get("/categories/cat-tool", token).json()["category"]["weight"] == 12.5

    assert gb.delete("/categories/cat-tool", token).status_code == 204
    assert gb.get("/categories/cat-tool", token).status_code == 404
    missing = gb.delete("/categories/cat-tool", token)
    assert missing.status_code == 404 and code_minor(missing) == "unknownobject"


def test_deleting_a_line_item_takes_its_own_results_and_spares_others(gb, token, writer,
                                                                      governance_user):
    gb.put("/lineItems/li-tool", token, line_item())
    gb.put("/results/r1", token, result("r1", "p1"))
    gb.put("/results/r2", token, result("r2", "p2"))

    assert gb.delete("/lineItems/li-tool", token).status_code == 204

    assert gb.get("/results/r1", token).status_code == 404
    assert not Result.objects.filter(sourced_id__in=["r1", "r2"],
                                     valid_to_version__isnull=True).exists()
    version = RosterVersion.objects.order_by("-number").first()
    assert version.deleted == 3  # the line item and its two results, in one version
    # a line item another tool has scored cannot be deleted from under its results
    gb.put("/lineItems/li-tool", token, line_item())
    other_token = gb.token(gradebook_vendor(governance_user))
    assert gb.put("/results/o1", other_token, result("o1", "p1")).status_code == 201
    refused = gb.delete("/lineItems/li-tool", token)
    assert refused.status_code == 403 and "orphan" in refused.json()["imsx_description"]
    assert gb.get("/lineItems/li-tool", token).status_code == 200


def test_writes_need_their_own_scope(gb, writer, governance_user):
    read_only = gb.token(writer, f"{GB_CORE} {GB_FULL}")
    for response in (gb.put("/lineItems/li-tool", read_only, line_item()),
                     gb.delete("/lineItems/li-sis", read_only),
                     gb.post("/classes/cls1/lineItems", read_only,
                             {"lineItems": [line_item()["lineItem"]]})):
        assert response.status_code == 403 and code_minor(response) == "forbidden"
    put_only = gb.token(writer, PUT)
    assert gb.put("/lineItems/li-tool", put_only, line_item()).status_code == 201
    assert gb.delete("/lineItems/li-tool", put_only).status_code == 403
    # a client whose release does not project results (no assessment class) writes none
    no_grades = gradebook_vendor(governance_user, classes=("identifier", "directory"))
    assert gb.put("/lineItems/li-y", gb.token(no_grades), line_item("li-y")).status_code == 403


def test_post_endpoints_create_many_and_answer_sourced_id_pairs(gb, token):
    items = gb.post("/classes/cls1/lineItems", token, {"lineItems": [
        {k: v for k, v in line_item("li-a")["lineItem"].items() if k != "class"},
        {k: v for k, v in line_item()["lineItem"].items() if k != "sourcedId"},
    ]})
    assert items.status_code == 201, items.content
    pairs = items.json()["sourcedIdPairs"]
    assert pairs[0] == {"suppliedSourcedId": "li-a", "allocatedSourcedId": "li-a"}
    allocated = pairs[1]["allocatedSourcedId"]
    assert pairs[1]["suppliedSourcedId"] == "" and allocated
    assert ids(gb.get("/classes/cls1/lineItems", token), "lineItems") == {
        "li-sis", "li-a", allocated}

    school = gb.post("/schools/sch1/lineItems", token,
                     {"lineItems": [line_item("li-b")["lineItem"]]})
    assert school.status_code == 201
    assert gb.post("/schools/sch2/lineItems", token,
                   {"lineItems": [line_item("li-c")["lineItem"]]}).status_code == 422

    results = gb.post("/lineItems/li-a/results", token, {"results": [
        {k: v for k, v in result("ra-1", "p1")["result"].items() if k != "lineItem"},
        result("ra-2", "p2", 3)["result"] | {"lineItem": {"sourcedId": "li-a"}},
    ]})
    assert results.status_code == 201, results.content
    assert [p["allocatedSourcedId"] for p in results.json()["sourcedIdPairs"]] == ["ra-1", "ra-2"]
    mismatch = gb.post("/lineItems/li-a/results", token,
                       {"results": [result("ra-3", "p1", item="li-b")["result"]]})
    assert mismatch.status_code == 422

    by_session = gb.post("/classes/cls1/academicSessions/term-1/results", token,
                         {"results": [result("rs-1", "p1", item="li-b")["result"]]})
    assert by_session.status_code == 201, by_session.content
    wrong_session = gb.post("/classes/cls1/academicSessions/gp-1/results", token,
                            {"results": [result("rs-2", "p1", item="li-b")["result"]]})
    assert wrong_session.status_code == 422
    assert gb.post("/lineItems/li-far/results", token,
                   {"results": [result("rx", "p9", item="li-far")["result"]]}).status_code == 404
    assert gb.post("/lineItems/li-a/results", token, {"results": []}).status_code == 422


def test_an_oversized_body_is_refused_with_413(gb, token, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    response = gb.post("/classes/cls1/lineItems", token,
                       {"lineItems": [line_item(f"li-{n}")["lineItem"] for n in range(20)]})
    assert response.status_code == 413 and code_minor(response) == "invaliddata"


def test_methods_outside_the_binding_are_refused(gb, token):
    assert gb.post("/lineItems/li-sis", token, {}).status_code == 405
    assert gb.put("/lineItems", token, {}).status_code == 405
    response = gb.http.patch(GB + "/results/res-p1", "{}", content_type="application/json",
                             HTTP_AUTHORIZATION=f"Bearer {token}")
    assert response.status_code == 405 and "PUT" in response["Allow"]
    assert gb.get("/nothing/here", token).status_code == 404


def test_writes_leave_access_records_not_audit_events(gb, writer, token):
    from apps.audit.models import AuditEvent, PendingAuditEvent

    audit_before = AuditEvent.objects.count() + PendingAuditEvent.objects.count()
    gb.put("/lineItems/li-tool", token, line_item())
    gb.put("/results/r1", token, result("r1", "p1"))
    gb.put("/results/r1", token, result("r1", "p1", status="bogus"))

    records = AccessRecord.objects.filter(integration_id=writer.integration.pk)
    endpoints = list(records.order_by("id").values_list("endpoint", "status_code"))
    assert endpoints[-3:] == [
        (f"PUT {GB}/lineItems/{{sourcedId}}", 201),
        (f"PUT {GB}/results/{{sourcedId}}", 201),
        (f"PUT {GB}/results/{{sourcedId}}", 422),
    ]
    assert AuditEvent.objects.count() + PendingAuditEvent.objects.count() == audit_before


def test_the_openapi_document_lists_every_gradebook_operation(gb):
    document = gb.http.get(GB + "/openapi.json").json()
    paths = document["paths"]
    assert set(paths["/results/{sourcedId}"]) == {"get", "put", "delete"}
    assert set(paths["/classes/{classSourcedId}/lineItems"]) == {"get", "post"}
    assert "post" in paths["/lineItems/{lineItemSourcedId}/results"]
    assert document["components"]["schemas"]["Result"]["properties"]["score"] == {
        "type": "number"}
    # 16 reads, a PUT and a DELETE per type, 4 POSTs
    assert sum(len(ops) for ops in paths.values()) == 16 + 8 + 4
