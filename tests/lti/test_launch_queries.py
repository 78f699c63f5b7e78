"""Query budgets of a launch's two platform requests (issue 7 measured 37 queries per launch,
then 38 with the disclosure ledger; the launch benchmark's throughput follows them)."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from apps.keys.models import SigningKey
from apps.keys.services import signing_key_active
from tests.lti.advantage import ADVANTAGE, ALL_SCOPES
from tests.lti.conftest import PASSWORD, register_tool
from tests.lti.tool import ClientBrowser, Tool

pytestmark = pytest.mark.django_db


def launch_queries(registered) -> tuple[list[str], list[str]]:  # type: ignore[no-untyped-def]
    from django.conf import settings

    signing_key_active(purpose=SigningKey.Purpose.LTI)
    browser = ClientBrowser("pupil.one", PASSWORD)
    tool = Tool(issuer=settings.INTERCHANGE_PUBLIC_URL, client_id=registered.client_id,
                deployment_ids=[registered.deployment_id], private_pem=registered.private_pem,
                public_pem=registered.public_pem, key_set={"keys": []})
    browser.start(registered.client_id, "cls1")  # first launch: creates the default link
    with CaptureQueriesContext(connection) as start:
        initiation = browser.start(registered.client_id, "cls1")
    auth_url = tool.oidc_login(initiation)
    with CaptureQueriesContext(connection) as auth:
        answer = browser.follow(auth_url)
    assert "id_token" in answer.fields, answer.text
    return [q["sql"] for q in start.captured_queries], [q["sql"] for q in auth.captured_queries]


# Of these, Django's session and user reads and the session save (at most once a minute:
# the idle timeout's refresh, portal.browser_middleware; a savepoint here) take 5; the registration
# with its integration and vendor 1; the release 1 (its generations, while cached); the
# person, class and roles as released with the deployment 1 (``release_launch``); the
# resource link and the hint 1.
START_BUDGET = 9
# /lti/auth: the registration 1, the session and user 2, the release 1; the hint spent with
# its link, the launch as released and the signing key 1; the disclosure 4 (two statements
# in a savepoint), the access record 1, the session save 3. With Advantage services
# approved, the context upsert (with the link's line item) adds one.
AUTH_BUDGET = 13
AUTH_WITH_SERVICES_BUDGET = 14


def test_a_launch_stays_within_its_query_budget(school):
    start, auth = launch_queries(register_tool(claims=("given_name",)))
    assert len(start) <= START_BUDGET, "\n".join(start)
    assert len(auth) <= AUTH_BUDGET, "\n".join(auth)


def test_a_launch_with_service_claims_adds_one_statement(school):
    registered = register_tool(services=ADVANTAGE, scopes=ALL_SCOPES,
                               field_classes=("identifier", "directory"))
    start, auth = launch_queries(registered)
    assert len(start) <= START_BUDGET, "\n".join(start)
    assert len(auth) <= AUTH_WITH_SERVICES_BUDGET, "\n".join(auth)
