"""A small district, a OneRoster REST integration approved for it, its credentials, and an
HTTP client that speaks to the provider from the outside."""

from __future__ import annotations

import base64
from dataclasses import dataclass

import pytest
from django.test import Client

from apps.oneroster_api.services import oauth_client_issue
from tests.governance import release_world as world

OR = "https://purl.imsglobal.org/spec/or/v1p2/scope/"
CORE = OR + "roster-core.readonly"
FULL = OR + "roster.readonly"
DEMO = OR + "roster-demographics.readonly"
BASE = "/ims/oneroster/rostering/v1p2"
ALL_ROSTER_CLASSES = ("identifier", "directory", "contact")


@pytest.fixture(autouse=True)
def _isolated(fresh_cache, fresh_master_key):  # type: ignore[no-untyped-def]
    """Every test here starts with an empty cache and its own master key."""


@pytest.fixture
def governance_user(staff_user_factory):  # type: ignore[no-untyped-def]
    return staff_user_factory(username="gov.dpo", role="governance")


@pytest.fixture
def officer(staff_user_factory):  # type: ignore[no-untyped-def]
    return staff_user_factory(username="officer.dsl", role="safeguarding")


@pytest.fixture
def district():  # type: ignore[no-untyped-def]
    """dist > sch1, sch2 (sch3 belongs to another district). Pupils p1, p2 and teacher t1 at
    sch1; p3 at sch2; p9 at sch3; guardian g1 of p1 and p2. Classes cls1 (sch1), cls2 (sch2),
    cls9 (sch3); terms and a grading period; courses; enrollments; demographics."""
    world.org("dist", type="district")
    world.org("sch1", "dist")
    world.org("sch2", "dist")
    world.org("other", type="district")
    world.org("sch3", "other")
    world.rows("academicSessions",
               {"sourced_id": "year-2025", "title": "2025", "type": "schoolYear",
                "start_date": "2024-09-01", "end_date": "2025-07-31", "school_year": 2025},
               {"sourced_id": "term-1", "title": "Autumn", "type": "term",
                "start_date": "2024-09-01", "end_date": "2024-12-20", "school_year": 2025,
                "parent_sourced_id": "year-2025"},
               {"sourced_id": "gp-1", "title": "Autumn 1", "type": "gradingPeriod",
                "start_date": "2024-09-01", "end_date": "2024-10-20", "school_year": 2025,
                "parent_sourced_id": "term-1"})
    world.rows("courses",
               {"sourced_id": "course-1", "title": "Maths", "org_sourced_id": "sch1",
                "grades": ["07"], "school_year_sourced_id": "year-2025"},
               {"sourced_id": "course-9", "title": "Art", "org_sourced_id": "sch3"})
    world.user("p1", org="sch1", primary_org="sch1", grades=["07"])
    world.user("p2", org="sch1", primary_org="sch1", user_ids=["{MIS:1002}"])
    world.user("p3", org="sch2", primary_org="sch2")
    world.user("p9", org="sch3", primary_org="sch3")
    world.user("t1", org="sch1", role="teacher", primary_org="sch1")
    world.user("g1", org="sch1", role="guardian", agents=["p1", "p2"])
    world.rows("classes",
               {"sourced_id": "cls1", "title": "Maths 7A", "course_sourced_id": "course-1",
                "class_type": "scheduled", "school_sourced_id": "sch1",
                "term_sourced_ids": ["term-1"], "class_code": "MA7A"},
               {"sourced_id": "cls2", "title": "Maths 7B", "course_sourced_id": "course-1",
                "class_type": "scheduled", "school_sourced_id": "sch2",
                "term_sourced_ids": ["term-1"]},
               {"sourced_id": "cls9", "title": "Art", "course_sourced_id": "course-9",
                "class_type": "scheduled", "school_sourced_id": "sch3",
                "term_sourced_ids": ["term-1"]})
    for pupil in ("p1", "p2"):
        world.enrol(pupil, "cls1", "sch1")
        world.demographic(pupil)
    world.enrol("t1", "cls1", "sch1", role="teacher")
    world.enrol("p3", "cls2", "sch2")
    world.enrol("p9", "cls9", "sch3")
    world.demographic("p9")


@dataclass
class Vendor:
    integration: object
    client_id: str
    client_secret: str

    def basic(self, secret: str | None = None) -> str:
        raw = f"{self.client_id}:{secret or self.client_secret}".encode()
        return "Basic " + base64.b64encode(raw).decode()


def make_vendor(governance_user, *, pseudonymised: bool = False,  # type: ignore[no-untyped-def]
                scopes=(CORE, FULL), classes=ALL_ROSTER_CLASSES, fields=(),
                orgs=("dist",), name=None) -> Vendor:
    integration = world.integration(pseudonymised=pseudonymised, name=name)
    world.approve(integration, orgs=orgs, scopes=tuple(scopes), field_classes=classes,
                  fields=fields)
    issued = oauth_client_issue(integration=integration, actor=governance_user)
    return Vendor(integration, issued.client_id, issued.client_secret)


@pytest.fixture
def vendor(db, district, governance_user):  # type: ignore[no-untyped-def]
    return make_vendor(governance_user)


class Api:
    """The provider seen from the outside: get a token, call an endpoint."""

    def __init__(self) -> None:
        self.http = Client()

    def token_response(self, vendor: Vendor, scope: str | None = None, **extra):  # type: ignore[no-untyped-def]
        data = {"grant_type": "client_credentials"}
        if scope is not None:
            data["scope"] = scope
        return self.http.post("/oauth/token", data, HTTP_AUTHORIZATION=vendor.basic(), **extra)

    def token(self, vendor: Vendor, scope: str | None = None) -> str:
        response = self.token_response(vendor, scope)
        assert response.status_code == 200, response.content
        return response.json()["access_token"]

    def get(self, path: str, token: str | None, **params):  # type: ignore[no-untyped-def]
        headers = {"HTTP_AUTHORIZATION": f"Bearer {token}"} if token else {}
        return self.http.get(BASE + path, params, **headers)


@pytest.fixture
def api() -> Api:
    return Api()


@pytest.fixture
def token(api, vendor) -> str:  # type: ignore[no-untyped-def]
    return api.token(vendor)
