"""A OneRoster gradebook round trip over real HTTP: an assessment tool creates a line item
and writes results (one above the maximum, one exempt); the SIS side, a second integration
approved only for ``gradebook.readonly``, reads them back by following the hrefs; the tool
deletes them again."""

from __future__ import annotations

import pytest
import requests

from tests.oneroster_api.test_gradebook import (
    GB,
    GB_FULL,
    WRITER_SCOPES,
    gradebook_vendor,
    sis_gradebook,  # noqa: F401 - the fixture
)

pytestmark = pytest.mark.django_db(transaction=True)


class OneRosterClient:
    """What a vendor's OneRoster client does: client credentials, then bearer calls."""

    def __init__(self, base: str, client_id: str, client_secret: str, scope: str) -> None:
        self.base = base
        self.session = requests.Session()
        token = self.session.post(f"{base}/oauth/token", data={
            "grant_type": "client_credentials", "scope": scope,
        }, auth=(client_id, client_secret), timeout=10)
        assert token.status_code == 200, token.text
        self.session.headers["Authorization"] = f"Bearer {token.json()['access_token']}"

    def get(self, url: str) -> requests.Response:
        return self.session.get(url if url.startswith("http") else self.base + GB + url,
                                timeout=10)

    def put(self, path: str, body: dict) -> requests.Response:
        return self.session.put(self.base + GB + path, json=body, timeout=10)

    def delete(self, path: str) -> requests.Response:
        return self.session.delete(self.base + GB + path, timeout=10)


def test_a_tool_writes_grades_the_sis_reads_them_back_and_the_tool_deletes_them(
    live_server, settings, sis_gradebook, governance_user  # noqa: F811
):
    settings.INTERCHANGE_PUBLIC_URL = live_server.url
    tool = gradebook_vendor(governance_user)
    # the SIS side is approved for the gradebook only (no rostering at all)
    sis = gradebook_vendor(governance_user, scopes=(GB_FULL,), services=("oneroster.gradebook",))
    writer = OneRosterClient(live_server.url, tool.client_id, tool.client_secret,
                             " ".join(WRITER_SCOPES))
    reader = OneRosterClient(live_server.url, sis.client_id, sis.client_secret, GB_FULL)

    # the tool creates a line item out of 10 and scores two pupils
    item = writer.put("/lineItems/quiz-7", {"lineItem": {
        "sourcedId": "quiz-7", "title": "Fractions quiz", "assignDate": "2024-11-01",
        "dueDate": "2024-11-08", "class": {"sourcedId": "cls1"},
        "category": {"sourcedId": "cat-1"}, "academicSession": {"sourcedId": "term-1"},
        "resultValueMin": 0, "resultValueMax": 10,
    }})
    assert item.status_code == 201, item.text
    above = writer.put("/results/quiz-7-p1", {"result": {
        "lineItem": {"sourcedId": "quiz-7"}, "student": {"sourcedId": "p1"},
        "scoreStatus": "fully graded", "score": 11, "scoreDate": "2024-11-09",
        "comment": "Bonus question too",
    }})
    exempt = writer.put("/results/quiz-7-p2", {"result": {
        "lineItem": {"sourcedId": "quiz-7"}, "student": {"sourcedId": "p2"},
        "scoreStatus": "exempt", "scoreDate": "2024-11-09",
    }})
    assert (above.status_code, exempt.status_code) == (201, 201)

    # the SIS reads them back, following the hrefs the service gives
    results = reader.get("/classes/cls1/lineItems/quiz-7/results")
    assert results.status_code == 200, results.text
    by_id = {r["sourcedId"]: r for r in results.json()["results"]}
    assert by_id["quiz-7-p1"]["score"] == 11
    assert by_id["quiz-7-p2"]["scoreStatus"] == "exempt" and "score" not in by_id["quiz-7-p2"]
    line_item = reader.get(by_id["quiz-7-p1"]["lineItem"]["href"])
    assert line_item.status_code == 200
    assert line_item.json()["lineItem"]["resultValueMax"] == 10
    # the reader may read but not write
    refused = reader.put("/results/quiz-7-p1", {"result": by_id["quiz-7-p1"]})
    assert refused.status_code == 403

    # the tool deletes its grades; the SIS sees them gone, its own rows untouched
    for path in ("/results/quiz-7-p1", "/results/quiz-7-p2", "/lineItems/quiz-7"):
        assert writer.delete(path).status_code == 204
    assert reader.get("/results/quiz-7-p1").status_code == 404
    remaining = reader.get("/results").json()["results"]
    assert {r["sourcedId"] for r in remaining} == {"res-p1", "res-p2"}
