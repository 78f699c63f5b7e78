"""LTI Advantage services from the outside: a teacher launches a real, independent tool
(pylti1p3) against a live server, and the tool uses its own service connector to get a token
from /lti/token, read the class through Names and Roles (paging as pylti1p3 pages: it
lowercases the Link header), create a line item, post a score and read the results back.
"""

from __future__ import annotations

import datetime as dt

import pytest
from pylti1p3.grade import Grade
from pylti1p3.lineitem import LineItem

from apps.audit.models import Channel, Disclosure
from apps.lti.models import ServiceToken, TokenOutcome, TokenRequest
from apps.roster.gradebook import integration_source
from apps.roster.models import Result
from tests.lti.advantage import ADVANTAGE, ALL_SCOPES, INSTRUCTOR, LEARNER
from tests.lti.conftest import browser_for, register_tool, tool_for
from tests.lti.test_launch_with_pylti1p3 import full_launch

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def advantage_tool(school):  # type: ignore[no-untyped-def]
    return register_tool(services=ADVANTAGE, scopes=ALL_SCOPES, claims=("given_name",),
                         field_classes=("identifier", "directory", "assessment"))


def test_a_tool_reads_the_class_and_passes_a_grade_back(platform, advantage_tool):
    # given a teacher's launch of the tool from Maths 7A
    browser = browser_for(platform, "teacher.one")
    tool = tool_for(platform, advantage_tool)
    message, _, _ = full_launch(platform, browser, tool, advantage_tool)
    assert message.has_nrps() and message.has_ags()

    # when the tool reads the class one member per page, as pylti1p3 pages
    nrps = message.get_nrps()
    url = message.get_launch_data()[
        "https://purl.imsglobal.org/spec/lti-nrps/claim/namesroleservice"
    ]["context_memberships_url"] + "?limit=1"
    members, pages = [], 0
    while url:
        page, url = nrps.get_members_page(url)
        members.extend(page)
        pages += 1

    # then it sees the three members, with pseudonymous ids and approved names only
    assert pages == 3
    assert {m["given_name"] for m in members} == {"Givenp1", "Givenp2", "Givent1"}
    by_name = {m["given_name"]: m for m in members}
    assert by_name["Givenp1"]["roles"] == [LEARNER]
    assert by_name["Givent1"]["roles"] == [INSTRUCTOR]
    assert by_name["Givent1"]["user_id"] == message.get_launch_data()["sub"]
    assert nrps.get_context()["title"] == "Maths 7A"

    # when it creates a line item and posts a grade for a pupil
    ags = message.get_ags()
    item = ags.find_or_create_lineitem(
        LineItem().set_tag("quiz-1").set_label("Quiz 1").set_score_maximum(10)
        .set_resource_id("quiz-1"))
    assert item.get_id().startswith(platform + "/lti/contexts/")
    pupil = by_name["Givenp1"]["user_id"]
    grade = (Grade().set_score_given(7).set_score_maximum(10).set_user_id(pupil)
             .set_activity_progress("Completed").set_grading_progress("FullyGraded")
             .set_timestamp(dt.datetime.now(dt.UTC).isoformat()))
    ags.put_grade(grade, item)

    # then the same line item is found again, and the grade reads back as a result
    assert ags.find_or_create_lineitem(
        LineItem().set_tag("quiz-1").set_label("Quiz 1").set_score_maximum(10)
    ).get_id() == item.get_id()
    results = ags.get_grades(item)
    assert [(r["userId"], r["resultScore"], r["resultMaximum"]) for r in results] == [
        (pupil, 7, 10)]

    # and the grade sits in the canonical gradebook, owned by the tool's integration
    result = Result.objects.get(valid_to_version__isnull=True)
    assert result.student_sourced_id == "p1"
    assert result.source == integration_source(integration=advantage_tool.integration)

    # the tokens were granted, recorded, and the reads disclosed to the ledger
    assert TokenRequest.objects.filter(outcome=TokenOutcome.GRANTED).count() == 2
    assert ServiceToken.objects.count() == 2
    assert Disclosure.objects.filter(channel=Channel.LTI_NRPS).count() == 3
    assert Disclosure.objects.filter(channel=Channel.LTI_AGS).count() == 1


def test_racing_scores_keep_the_newest(platform, advantage_tool):
    """Eight scores for one pupil, posted at once in shuffled order: the newest wins."""
    import concurrent.futures
    import json
    import random

    import requests
    from django.test import Client

    from apps.lti.models import AgsScore
    from tests.lti.advantage import (
        AGS_CLAIM,
        LINEITEM,
        NRPS,
        NRPS_CLAIM,
        SCORE,
        launch_claims,
        token_for,
    )

    claims = launch_claims(advantage_tool)
    client = Client()
    token = token_for(client, advantage_tool, LINEITEM, SCORE)
    headers = {"Authorization": f"Bearer {token}"}
    item = requests.post(claims[AGS_CLAIM]["lineitems"], data=json.dumps(
        {"label": "Race", "scoreMaximum": 100}), timeout=30, headers={
        **headers, "Content-Type": "application/vnd.ims.lis.v2.lineitem+json"}).json()
    members = requests.get(claims[NRPS_CLAIM]["context_memberships_url"], timeout=30, headers={
        "Authorization": f"Bearer {token_for(client, advantage_tool, NRPS)}"}).json()["members"]
    pupil = next(m["user_id"] for m in members if m["given_name"] == "Givenp1")
    base = dt.datetime.now(dt.UTC)
    posts = [(base + dt.timedelta(seconds=n), n) for n in range(8)]
    random.shuffle(posts)

    def send(post):  # type: ignore[no-untyped-def]
        when, n = post
        return requests.post(item["id"] + "/scores", timeout=30, data=json.dumps({
            "userId": pupil, "scoreGiven": n, "scoreMaximum": 100, "timestamp": when.isoformat(),
            "activityProgress": "Completed", "gradingProgress": "FullyGraded"}), headers={
            **headers, "Content-Type": "application/vnd.ims.lis.v1.score+json"})

    with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
        responses = list(pool.map(send, posts))

    statuses = {r.status_code for r in responses}
    assert statuses <= {204, 409} and 204 in statuses, [
        r.text for r in responses if r.status_code not in (204, 409)]
    assert AgsScore.objects.get().score_given == 7
    assert Result.objects.get(valid_to_version__isnull=True).score == 7
