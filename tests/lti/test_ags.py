"""Assignment and Grade Services from the outside: line items, scores and results over HTTP,
landing in the canonical gradebook as rows owned by the tool's integration."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from decimal import Decimal

import pytest
from django.utils import timezone

from apps.audit.models import AccessRecord, Channel, Disclosure
from apps.governance.models import ExclusionReason, ExclusionScope
from apps.governance.services.exclusions import exclusion_create
from apps.lti import ags, apis
from apps.lti.models import AgsLineItem, AgsScore, ResourceLink
from apps.roster.gradebook import integration_source
from apps.roster.models import LineItem, Result
from tests.lti.advantage import (
    ADVANTAGE,
    AGS_CLAIM,
    ALL_SCOPES,
    LINEITEM,
    LINEITEM_READONLY,
    NRPS,
    NRPS_CLAIM,
    RESULTS,
    SCORE,
    bearer,
    launch_claims,
    path_of,
    token_for,
)
from tests.lti.conftest import register_tool

pytestmark = pytest.mark.django_db

AGS_SCOPES = [LINEITEM, LINEITEM_READONLY, RESULTS, SCORE]


@pytest.fixture
def tool(school):  # type: ignore[no-untyped-def]
    return register_tool(services=ADVANTAGE, scopes=ALL_SCOPES,
                         field_classes=("identifier", "directory", "assessment"))


@pytest.fixture
def claims(tool):  # type: ignore[no-untyped-def]
    return launch_claims(tool)


@pytest.fixture
def token(client, tool):  # type: ignore[no-untyped-def]
    return token_for(client, tool, *AGS_SCOPES)


def post(client, url, token, body, media=ags.LINEITEM_MEDIA):  # type: ignore[no-untyped-def]
    return client.post(path_of(url), json.dumps(body), content_type=media, **bearer(token))


def put(client, url, token, body):  # type: ignore[no-untyped-def]
    return client.put(path_of(url), json.dumps(body), content_type=ags.LINEITEM_MEDIA,
                      **bearer(token))


def get(client, url, token, **params):  # type: ignore[no-untyped-def]
    return client.get(path_of(url), params, **bearer(token))


def create_item(client, claims, token, **fields):  # type: ignore[no-untyped-def]
    body = {"label": "Quiz 1", "scoreMaximum": 20, **fields}
    response = post(client, claims[AGS_CLAIM]["lineitems"], token, body)
    assert response.status_code == 201, response.content
    return response.json()


def score(user_id: str, given=None, maximum=None, when=None, **extra):  # type: ignore[no-untyped-def]
    body = {"userId": user_id, "activityProgress": "Completed", "gradingProgress": "FullyGraded",
            "timestamp": (when or timezone.now()).isoformat(), **extra}
    if given is not None:
        body.update(scoreGiven=given, scoreMaximum=maximum)
    return body


def member_id(client, claims, tool, name: str) -> str:  # type: ignore[no-untyped-def]
    nrps_token = token_for(client, tool, NRPS)
    members = get(client, claims[NRPS_CLAIM]["context_memberships_url"], nrps_token).json()
    return next(m["user_id"] for m in members["members"] if m["lis_person_sourcedid"] and
                m.get("roles") and name in _names(tool, m))


def _names(tool, member) -> str:  # type: ignore[no-untyped-def]
    from apps.governance.pseudonyms import pseudonymiser_for_vendor

    pseudo = pseudonymiser_for_vendor(tool.integration.vendor_id)
    return " ".join(sid for sid in ("p1", "p2", "t1") if pseudo.pseudonym(sid) == member["user_id"])


def scores_url(item: dict) -> str:
    return item["id"] + "/scores"


# --- the launch ---------------------------------------------------------------------------------


def test_the_launch_carries_the_approved_ags_scopes_and_urls(claims):
    endpoint = claims[AGS_CLAIM]
    assert sorted(endpoint["scope"]) == sorted(AGS_SCOPES)
    assert endpoint["lineitems"].endswith("/lineitems")
    assert endpoint["lineitems"] == endpoint["lineitems"].lower()
    assert "lineitem" not in endpoint


def test_only_approved_ags_scopes_are_offered(school):
    tool = register_tool(services=("lti.launch", "lti.ags"), scopes=(SCORE,),
                         field_classes=("identifier", "directory"))
    endpoint = launch_claims(tool)[AGS_CLAIM]
    assert endpoint["scope"] == [SCORE]
    assert NRPS_CLAIM not in launch_claims(tool)


def test_a_line_item_bound_to_the_launched_link_is_in_the_claim(client, tool, claims, token):
    link = ResourceLink.objects.get(registration=tool.registration, class_sourced_id="cls1")
    item = create_item(client, claims, token, resourceLinkId=str(link.pk))
    assert launch_claims(tool)[AGS_CLAIM]["lineitem"] == item["id"]


# --- line items ---------------------------------------------------------------------------------


def test_a_line_item_becomes_a_gradebook_column_owned_by_the_tool(client, tool, claims, token):
    item = create_item(client, claims, token, tag="quiz", resourceId="q-1",
                       startDateTime="2026-11-01T09:00:00+00:00",
                       endDateTime="2026-11-08T09:00:00+00:00")

    assert item["label"] == "Quiz 1" and item["scoreMaximum"] == 20
    assert item["tag"] == "quiz" and item["resourceId"] == "q-1"
    assert item["id"].startswith(claims[AGS_CLAIM]["lineitems"] + "/")
    stored = AgsLineItem.objects.get()
    column = LineItem.objects.get(sourced_id=stored.line_item_sourced_id,
                                  valid_to_version__isnull=True)
    assert column.source == integration_source(integration=tool.integration)
    assert column.class_sourced_id == "cls1" and column.school_sourced_id == "sch1"
    assert column.result_value_max == Decimal(20) and column.title == "Quiz 1"
    assert column.academic_session_sourced_id == "term-1"
    assert column.due_date == dt.date(2026, 11, 8)


def test_line_items_are_listed_with_filters_and_pages(client, tool, claims, token):
    link = ResourceLink.objects.get(registration=tool.registration, class_sourced_id="cls1")
    first = create_item(client, claims, token, tag="a", resourceId="r1",
                        resourceLinkId=str(link.pk))
    create_item(client, claims, token, label="Quiz 2", tag="b", resourceId="r2")
    create_item(client, claims, token, label="Quiz 3", tag="b", resourceId="r3")
    url = claims[AGS_CLAIM]["lineitems"]

    everything = get(client, url, token)
    assert everything["Content-Type"] == ags.CONTAINER_MEDIA
    assert [i["label"] for i in everything.json()] == ["Quiz 1", "Quiz 2", "Quiz 3"]
    assert [i["label"] for i in get(client, url, token, tag="b").json()] == ["Quiz 2", "Quiz 3"]
    assert [i["id"] for i in get(client, url, token, resource_id="r1").json()] == [first["id"]]
    assert [i["id"] for i in get(client, url, token,
                                 resource_link_id=str(link.pk)).json()] == [first["id"]]
    page = get(client, url, token, limit=2)
    assert len(page.json()) == 2
    next_url = page["Link"].lower().split("<", 1)[1].split(">", 1)[0]
    assert [i["label"] for i in get(client, next_url, token).json()] == ["Quiz 3"]


def test_a_line_item_is_read_updated_and_deleted(client, tool, claims, token):
    item = create_item(client, claims, token)
    assert get(client, item["id"], token).json() == item

    updated = put(client, item["id"], token, {**item, "label": "Quiz one", "scoreMaximum": 25})
    assert updated.status_code == 200, updated.content
    assert updated.json()["label"] == "Quiz one"
    column = LineItem.objects.get(sourced_id=AgsLineItem.objects.get().line_item_sourced_id,
                                  valid_to_version__isnull=True)
    assert column.title == "Quiz one" and column.result_value_max == Decimal(25)

    assert client.delete(path_of(item["id"]), **bearer(token)).status_code == 204
    assert get(client, item["id"], token).status_code == 404
    assert not LineItem.objects.filter(title="Quiz one", valid_to_version__isnull=True).exists()


def test_a_put_naming_another_id_is_refused(client, claims, token):
    item = create_item(client, claims, token)
    response = put(client, item["id"], token, {**item, "id": item["id"][:-4] + "beef"})
    assert response.status_code == 400
    assert response.json()["error_description"] == ags.ERROR_ID_MISMATCH


@pytest.mark.parametrize("body, message", [
    ({"scoreMaximum": 10}, ags.ERROR_LABEL),
    ({"label": "x"}, ags.ERROR_SCORE_MAXIMUM),
    ({"label": "x", "scoreMaximum": 0}, ags.ERROR_SCORE_MAXIMUM),
    ({"label": "x", "scoreMaximum": "ten"}, ags.ERROR_SCORE_MAXIMUM),
    ({"label": "x", "scoreMaximum": 10, "tag": 5}, ags.ERROR_TEXT.format(field="tag")),
    ({"label": "x", "scoreMaximum": 10, "endDateTime": "tomorrow"},
     ags.ERROR_DATE.format(field="endDateTime")),
    ([], ags.ERROR_BODY),
])
def test_a_bad_line_item_is_refused_with_what_is_wrong(client, claims, token, body, message):
    response = post(client, claims[AGS_CLAIM]["lineitems"], token, body)
    assert response.status_code == 400
    assert response.json()["error_description"] == message
    assert not AgsLineItem.objects.exists()


def test_a_resource_link_of_another_class_cannot_be_named(client, tool, claims, token):
    launch_claims(tool, username="pupil.one", class_id="cls2")
    other = ResourceLink.objects.get(registration=tool.registration, class_sourced_id="cls2")
    for link_id in (str(other.pk), str(uuid.uuid4()), "nonsense"):
        response = post(client, claims[AGS_CLAIM]["lineitems"], token,
                        {"label": "x", "scoreMaximum": 1, "resourceLinkId": link_id})
        assert response.status_code == 400, link_id
        assert response.json()["error_description"] == ags.ERROR_RESOURCE_LINK
    assert not AgsLineItem.objects.exists()


def test_a_line_item_of_another_context_is_not_found_through_this_one(client, tool, claims,
                                                                        token):
    other_claims = launch_claims(tool, username="pupil.one", class_id="cls2")
    theirs = create_item(client, other_claims, token, label="Science quiz")
    # the other context's item id, addressed through this context's URL
    item_id = theirs["id"].rsplit("/", 1)[1]
    forged = claims[AGS_CLAIM]["lineitems"] + "/" + item_id
    assert get(client, forged, token).status_code == 404
    assert put(client, forged, token, {"label": "x", "scoreMaximum": 1}).status_code == 404
    assert client.delete(path_of(forged), **bearer(token)).status_code == 404
    pupil = member_id(client, claims, tool, "p1")
    response = post(client, forged + "/scores", token, score(pupil, 5, 10), ags.SCORE_MEDIA)
    assert response.status_code == 404
    assert response.json()["error_description"] == apis.DESCRIPTION_LINE_ITEM
    assert not Result.objects.exists()


def test_another_tools_token_cannot_reach_this_context(client, school, claims, token):
    other = register_tool(services=ADVANTAGE, scopes=ALL_SCOPES,
                          field_classes=("identifier", "directory", "assessment"))
    response = get(client, claims[AGS_CLAIM]["lineitems"], token_for(client, other, LINEITEM))
    assert response.status_code == 404


def test_a_read_only_token_cannot_create(client, tool, claims):
    readonly = token_for(client, tool, LINEITEM_READONLY)
    assert get(client, claims[AGS_CLAIM]["lineitems"], readonly).status_code == 200
    response = post(client, claims[AGS_CLAIM]["lineitems"], readonly,
                    {"label": "x", "scoreMaximum": 1})
    assert response.status_code == 403


def test_another_media_type_is_refused(client, claims, token):
    response = post(client, claims[AGS_CLAIM]["lineitems"], token,
                    {"label": "x", "scoreMaximum": 1}, media="text/plain")
    assert response.status_code == 415


# --- scores and results -------------------------------------------------------------------------


def test_a_score_lands_in_the_gradebook_and_reads_back_as_a_result(client, tool, claims, token):
    item = create_item(client, claims, token)
    pupil = member_id(client, claims, tool, "p1")

    response = post(client, scores_url(item), token, score(pupil, 8, 10, comment="Well done"),
                    ags.SCORE_MEDIA)

    assert response.status_code == 204, response.content
    result = Result.objects.get(valid_to_version__isnull=True)
    assert result.student_sourced_id == "p1" and result.class_sourced_id == "cls1"
    assert result.score == Decimal(16)  # 8/10 of a 20-point item
    assert result.score_status == "fully graded" and result.comment == "Well done"
    assert result.source == integration_source(integration=tool.integration)
    results = get(client, item["id"] + "/results", token)
    assert results["Content-Type"] == ags.RESULTS_MEDIA
    assert results.json() == [{"id": f"{item['id']}/results/{pupil}", "scoreOf": item["id"],
                               "userId": pupil, "resultScore": 16, "resultMaximum": 20,
                               "comment": "Well done"}]
    assert Disclosure.objects.filter(channel=Channel.LTI_AGS).count() == 1
    assert AccessRecord.objects.filter(channel=Channel.LTI_AGS, status_code=204).exists()


def test_an_older_score_never_overwrites_a_newer_one(client, tool, claims, token):
    item = create_item(client, claims, token)
    pupil = member_id(client, claims, tool, "p1")
    now = timezone.now()
    assert post(client, scores_url(item), token, score(pupil, 9, 10, when=now),
                ags.SCORE_MEDIA).status_code == 204

    for when in (now - dt.timedelta(minutes=5), now):
        stale = post(client, scores_url(item), token, score(pupil, 1, 10, when=when),
                     ags.SCORE_MEDIA)
        assert stale.status_code == 409
        assert stale.json()["error_description"] == ags.ERROR_STALE
    assert Result.objects.get(valid_to_version__isnull=True).score == Decimal(18)
    assert AgsScore.objects.get().score_given == Decimal(9)


def test_a_score_above_the_maximum_is_kept_and_a_missing_score_clears(client, tool, claims,
                                                                      token):
    item = create_item(client, claims, token)
    pupil = member_id(client, claims, tool, "p1")
    now = timezone.now()
    post(client, scores_url(item), token, score(pupil, 12, 10, when=now), ags.SCORE_MEDIA)
    assert Result.objects.get(valid_to_version__isnull=True).score == Decimal(24)

    cleared = score(pupil, when=now + dt.timedelta(seconds=1), gradingProgress="Pending",
                    activityProgress="Submitted")
    assert post(client, scores_url(item), token, cleared, ags.SCORE_MEDIA).status_code == 204
    current = Result.objects.get(valid_to_version__isnull=True)
    assert current.score is None and current.score_status == "submitted"
    assert get(client, item["id"] + "/results", token).json()[0].get("resultScore") is None


def test_a_score_accepts_application_json_too(client, tool, claims, token):
    item = create_item(client, claims, token)
    pupil = member_id(client, claims, tool, "p1")
    response = post(client, scores_url(item), token, score(pupil, 1, 2), "application/json")
    assert response.status_code == 204


@pytest.mark.parametrize("change, message", [
    ({"userId": ""}, ags.ERROR_USER_ID),
    ({"timestamp": "yesterday"}, ags.ERROR_TIMESTAMP),
    ({"timestamp": "2026-11-28T10:00:00"}, ags.ERROR_TIMESTAMP),
    ({"activityProgress": "Done"}, ags.ERROR_PROGRESS.format(
        field="activityProgress", values=", ".join(ags.ACTIVITY_PROGRESS))),
    ({"scoreGiven": -1, "scoreMaximum": 10}, ags.ERROR_SCORE_GIVEN),
    ({"scoreGiven": 1}, ags.ERROR_SCORE_PAIR),
    ({"userId": "not-a-member"}, ags.ERROR_NOT_MEMBER),
])
def test_a_bad_score_is_refused_with_what_is_wrong(client, tool, claims, token, change, message):
    item = create_item(client, claims, token)
    body = {**score(member_id(client, claims, tool, "p1"), 1, 2), **change}
    if "scoreMaximum" not in change and change.get("scoreGiven") == 1:
        body.pop("scoreMaximum")
    response = post(client, scores_url(item), token, body, ags.SCORE_MEDIA)
    assert response.status_code == 400, response.content
    assert response.json()["error_description"] == message
    assert not Result.objects.exists()


def test_an_excluded_pupil_gets_no_score_and_no_result(client, tool, claims, token,
                                                       staff_user_factory):
    item = create_item(client, claims, token)
    p1, p2 = member_id(client, claims, tool, "p1"), member_id(client, claims, tool, "p2")
    for pupil in (p1, p2):
        assert post(client, scores_url(item), token, score(pupil, 5, 10),
                    ags.SCORE_MEDIA).status_code == 204
    officer = staff_user_factory(username="officer.dsl", role="safeguarding")
    exclusion_create(actor=officer, user_sourced_id="p2", scope=ExclusionScope.ALL_VENDORS,
                     reason_code=ExclusionReason.CHILD_PROTECTION,
                     ends_at=timezone.now() + dt.timedelta(days=30))

    # no result read back
    assert [r["userId"] for r in get(client, item["id"] + "/results", token).json()] == [p1]
    assert get(client, item["id"] + "/results", token, user_id=p2).json() == []
    # and no new score accepted
    later = score(p2, 9, 10, when=timezone.now() + dt.timedelta(seconds=5))
    response = post(client, scores_url(item), token, later, ags.SCORE_MEDIA)
    assert response.status_code == 400
    assert response.json()["error_description"] == ags.ERROR_NOT_MEMBER


def test_results_page_and_filter_by_user(client, tool, claims, token):
    item = create_item(client, claims, token)
    ids = [member_id(client, claims, tool, name) for name in ("p1", "p2", "t1")]
    for user_id in ids:
        post(client, scores_url(item), token, score(user_id, 1, 2), ags.SCORE_MEDIA)
    url = item["id"] + "/results"
    first = get(client, url, token, limit=2)
    assert len(first.json()) == 2
    rest = get(client, first["Link"].lower().split("<", 1)[1].split(">", 1)[0], token)
    assert len(rest.json()) == 1
    assert {r["userId"] for r in first.json() + rest.json()} == set(ids)
    assert [r["userId"] for r in get(client, url, token, user_id=ids[1]).json()] == [ids[1]]


def test_a_token_without_the_score_scope_cannot_post_scores(client, tool, claims, token):
    item = create_item(client, claims, token)
    readonly = token_for(client, tool, RESULTS)
    pupil = member_id(client, claims, tool, "p1")
    response = post(client, scores_url(item), readonly, score(pupil, 1, 2), ags.SCORE_MEDIA)
    assert response.status_code == 403


# --- line items from Deep Linking ---------------------------------------------------------------


def deep_link_with_line_item(registered, line_item):  # type: ignore[no-untyped-def]
    from tests.lti.test_negative import (
        auth_request,
        browser,
        kid_of,
        post_response,
        response_claims,
        tool_for,
    )

    teacher = browser("teacher.one")
    tool = tool_for(registered)
    message = tool.launch(teacher.auth(auth_request(teacher, tool, registered,
                                                    deep_linking="1")))
    dl = "https://purl.imsglobal.org/spec/lti-dl/claim/"
    claims = response_claims(registered, message, **{dl + "content_items": [
        {"type": "ltiResourceLink", "title": "Quiz", "lineItem": line_item}]})
    response = post_response(teacher, tool.sign(claims, kid=kid_of(registered)))
    assert response.status_code == 200, response.content
    return ResourceLink.objects.get(registration=registered.registration, origin="deep_link")


def test_a_deep_linked_item_with_a_line_item_creates_it_where_approved(tool):
    link = deep_link_with_line_item(tool, {"label": "Chapter quiz", "scoreMaximum": 15,
                                           "tag": "ch1"})
    item = AgsLineItem.objects.get()
    assert item.resource_link == link and item.label == "Chapter quiz" and item.tag == "ch1"
    assert item.context.class_sourced_id == "cls1"
    assert LineItem.objects.filter(sourced_id=item.line_item_sourced_id,
                                   valid_to_version__isnull=True).exists()
    # and a launch of that link names it
    claims = launch_claims(tool, link=str(link.pk))
    assert claims[AGS_CLAIM]["lineitem"].endswith(f"/lineitems/{item.pk}")


def test_a_deep_linked_line_item_needs_the_lineitem_scope(school):
    tool = register_tool(services=ADVANTAGE, scopes=(SCORE,),
                         field_classes=("identifier", "directory"))
    deep_link_with_line_item(tool, {"label": "Chapter quiz", "scoreMaximum": 15})
    assert not AgsLineItem.objects.exists()


def test_a_malformed_deep_linked_line_item_is_skipped_and_the_link_kept(tool):
    deep_link_with_line_item(tool, {"label": "", "scoreMaximum": -1})
    assert not AgsLineItem.objects.exists()


# --- read back by the SIS -----------------------------------------------------------------------


def test_the_sis_reads_a_tools_score_back_through_oneroster(client, tool, claims, token,
                                                           staff_user_factory):
    import base64

    from apps.oneroster_api.services import oauth_client_issue
    from tests.governance import release_world as world

    # given the tool posted a score
    item = create_item(client, claims, token)
    pupil = member_id(client, claims, tool, "p1")
    post(client, scores_url(item), token, score(pupil, 8, 10), ags.SCORE_MEDIA)

    # and the SIS has a OneRoster client approved to read the gradebook
    sis = world.integration(name="SIS read-back")
    world.approve(sis, orgs=["dist"], services=("oneroster.gradebook",),
                  scopes=("https://purl.imsglobal.org/spec/or/v1p2/scope/gradebook.readonly",),
                  field_classes=("identifier", "assessment"))
    issued = oauth_client_issue(integration=sis,
                                actor=staff_user_factory(username="gov.dpo", role="governance"))
    basic = base64.b64encode(f"{issued.client_id}:{issued.client_secret}".encode()).decode()
    granted = client.post("/oauth/token", {"grant_type": "client_credentials"},
                          HTTP_AUTHORIZATION=f"Basic {basic}")
    assert granted.status_code == 200, granted.content

    # when it reads the results
    response = client.get("/ims/oneroster/gradebook/v1p2/results",
                          HTTP_AUTHORIZATION=f"Bearer {granted.json()['access_token']}")

    # then the tool's score is there, on the tool's line item, for the pupil
    assert response.status_code == 200, response.content
    [result] = response.json()["results"]
    assert result["student"]["sourcedId"] == "p1"
    assert result["lineItem"]["sourcedId"] == AgsLineItem.objects.get().line_item_sourced_id
    assert float(result["score"]) == 16


def test_scores_go_to_exactly_the_class_members_nrps_lists(client, tool, claims, token):
    from apps.governance.pseudonyms import pseudonymiser_for_vendor

    item = create_item(client, claims, token)
    nrps_token = token_for(client, tool, NRPS)
    members = get(client, claims[NRPS_CLAIM]["context_memberships_url"], nrps_token).json()
    listed = {m["user_id"] for m in members["members"]}
    pseudonym = pseudonymiser_for_vendor(tool.integration.vendor_id).pseudonym
    assert listed == {pseudonym(sid) for sid in ("p1", "p2", "t1")}

    for user_id in sorted(listed):
        assert post(client, scores_url(item), token, score(user_id, 5, 10),
                    ags.SCORE_MEDIA).status_code == 204
    # a pupil of another district's class, and a school id instead of the pseudonym
    for outsider in (pseudonym("p9"), "p1"):
        refused = post(client, scores_url(item), token, score(outsider, 5, 10), ags.SCORE_MEDIA)
        assert refused.status_code == 400
        assert refused.json()["error_description"] == ags.ERROR_NOT_MEMBER
    assert set(Result.objects.filter(valid_to_version__isnull=True)
               .values_list("student_sourced_id", flat=True)) == {"p1", "p2", "t1"}


def test_a_score_post_costs_a_bounded_number_of_queries(client, tool, claims, token,
                                                        django_assert_max_num_queries):
    item = create_item(client, claims, token)
    pupil = member_id(client, claims, tool, "p1")
    assert post(client, scores_url(item), token, score(pupil, 5, 10),
                ags.SCORE_MEDIA).status_code == 204

    # token, generations, item, members, the score upsert, the source, the version lock,
    # the probe, one write of row, version and outbox, the access record, and savepoints
    later = score(pupil, 6, 10, when=timezone.now() + dt.timedelta(seconds=1))
    with django_assert_max_num_queries(15):
        assert post(client, scores_url(item), token, later, ags.SCORE_MEDIA).status_code == 204


def test_a_new_score_maximum_rescales_the_recorded_results_except_an_excluded_pupils(
    client, tool, claims, token, staff_user_factory
):
    item = create_item(client, claims, token)  # out of 20
    p1, p2 = member_id(client, claims, tool, "p1"), member_id(client, claims, tool, "p2")
    for pupil, given in ((p1, 7), (p2, 3)):
        assert post(client, scores_url(item), token, score(pupil, given, 10),
                    ags.SCORE_MEDIA).status_code == 204
    officer = staff_user_factory(username="officer.dsl", role="safeguarding")
    exclusion_create(actor=officer, user_sourced_id="p2", scope=ExclusionScope.ALL_VENDORS,
                     reason_code=ExclusionReason.CHILD_PROTECTION,
                     ends_at=timezone.now() + dt.timedelta(days=30))

    updated = put(client, item["id"], token, {**item, "scoreMaximum": 40})

    assert updated.status_code == 200, updated.content
    current = dict(Result.objects.filter(valid_to_version__isnull=True)
                   .values_list("student_sourced_id", "score"))
    assert current == {"p1": Decimal(28), "p2": Decimal(6)}  # 7/10 of 40; p2 left alone
    (read,) = get(client, item["id"] + "/results", token).json()
    assert (read["userId"], read["resultScore"], read["resultMaximum"]) == (p1, 28, 40)
    # the column and its results moved together, in one version
    column = LineItem.objects.get(valid_to_version__isnull=True,
                                  sourced_id=AgsLineItem.objects.get().line_item_sourced_id)
    assert column.result_value_max == Decimal(40)
    assert Result.objects.get(valid_to_version__isnull=True,
                              student_sourced_id="p1").valid_from_version == \
        column.valid_from_version
