"""Query budgets of a launch's two platform requests (issue 7 measured ~40 queries per launch;
the launch benchmark's throughput follows them)."""

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


# Of these, Django's session and user reads and the per-request session save
# (SESSION_SAVE_EVERY_REQUEST: the idle timeout) take 5, and release_for 7 (status, grant,
# classification, exclusions, overrides, pseudonym key, org scope), read afresh each step.
START_BUDGET = 16
# /lti/auth adds the signing key, the disclosure (2 statements in a savepoint), the access
# record, and with Advantage services approved the context upsert (with the link's line item).
AUTH_BUDGET = 21
AUTH_WITH_SERVICES_BUDGET = 22


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
