"""A small school, portal accounts linked to its pupils and teacher, and an LTI tool registered
and approved for it (pylti1p3 on the tool side)."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from django.contrib.auth import get_user_model

from apps.accounts.models import RosterLink
from apps.lti.models import ToolRegistration
from apps.lti.services import registration_create
from apps.vendors.models import Integration, IntegrationKind, IntegrationStatus
from tests.governance import release_world as world
from tests.lti.tool import LOGIN_URL, REDIRECT_URI, TARGET_LINK_URI, Browser, Tool, rsa_key_pair

PASSWORD = "correct horse battery staple"  # noqa: S105 (test accounts)


@pytest.fixture(autouse=True)
def _isolated(fresh_cache, fresh_master_key):  # type: ignore[no-untyped-def]
    """Every test here starts with an empty cache and its own master key."""


def portal_user(username: str, sourced_id: str):  # type: ignore[no-untyped-def]
    user = get_user_model().objects.create_user(username=username, password=PASSWORD)
    RosterLink.objects.create(user=user, roster_user_sourced_id=sourced_id)
    return user


@pytest.fixture
def school(db):  # type: ignore[no-untyped-def]
    """dist > sch1 (and sch9 in another district). Pupils p1, p2 and teacher t1 in cls1
    (Maths 7A); p1 also in cls2 (Science 7A); p9 in cls9 at sch9. Each has a portal account."""
    world.org("dist", type="district")
    world.org("sch1", "dist")
    world.org("other", type="district")
    world.org("sch9", "other")
    world.user("p1", org="sch1", primary_org="sch1", email="p1@pupils.example")
    world.user("p2", org="sch1", primary_org="sch1")
    world.user("t1", org="sch1", role="teacher", primary_org="sch1")
    world.user("p9", org="sch9", primary_org="sch9")
    world.rows("classes",
               {"sourced_id": "cls1", "title": "Maths 7A", "course_sourced_id": "course-1",
                "class_type": "scheduled", "school_sourced_id": "sch1", "class_code": "MA7A",
                "term_sourced_ids": ["term-1"]},
               {"sourced_id": "cls2", "title": "Science 7A", "course_sourced_id": "course-2",
                "class_type": "scheduled", "school_sourced_id": "sch1",
                "term_sourced_ids": ["term-1"]},
               {"sourced_id": "cls9", "title": "Art", "course_sourced_id": "course-9",
                "class_type": "scheduled", "school_sourced_id": "sch9",
                "term_sourced_ids": ["term-1"]})
    world.enrol("p1", "cls1", "sch1")
    world.enrol("p2", "cls1", "sch1")
    world.enrol("t1", "cls1", "sch1", role="teacher")
    world.enrol("p1", "cls2", "sch1")
    world.enrol("p9", "cls9", "sch9")
    return {
        "pupil": portal_user("pupil.one", "p1"),
        "pupil2": portal_user("pupil.two", "p2"),
        "teacher": portal_user("teacher.one", "t1"),
        "outsider": portal_user("pupil.nine", "p9"),
    }


@dataclass
class Registered:
    integration: Integration
    registration: ToolRegistration
    private_pem: str
    public_pem: str

    @property
    def client_id(self) -> str:
        return self.registration.client_id

    @property
    def deployment_id(self) -> str:
        return self.registration.deployments.get(org_sourced_id="").deployment_id


def register_tool(*, claims: tuple[str, ...] = (), services=("lti.launch", "lti.deep_linking"),  # type: ignore[no-untyped-def]
                  orgs=("dist",), approve: bool = True, name: str | None = None,
                  field_classes: tuple[str, ...] = (), scopes: tuple[str, ...] = (),
                  pseudonymised: bool = True) -> Registered:
    vendor = world.vendor()
    integration = Integration.objects.create(
        vendor=vendor, name=name or f"Tool of {vendor.name}", kind=IntegrationKind.LTI_TOOL,
        status=IntegrationStatus.ACTIVE, pseudonymised=pseudonymised,
    )
    private_pem, public_pem = rsa_key_pair()
    registration = registration_create(
        integration=integration, login_initiation_url=LOGIN_URL, redirect_uris=[REDIRECT_URI],
        target_link_uris=[TARGET_LINK_URI], public_key_pem=public_pem,
    )
    if approve:
        world.approve(integration, orgs=orgs, services=tuple(services), scopes=tuple(scopes),
                      field_classes=field_classes, claims=claims)
    return Registered(integration, registration, private_pem, public_pem)


@pytest.fixture
def tool_registration(school):  # type: ignore[no-untyped-def]
    return register_tool()


@pytest.fixture
def platform(live_server, settings):  # type: ignore[no-untyped-def]
    """The portal at its public URL (the issuer is the public URL)."""
    settings.INTERCHANGE_PUBLIC_URL = live_server.url
    return live_server.url


def tool_for(platform: str, registered: Registered, **kwargs) -> Tool:  # type: ignore[no-untyped-def]
    return Tool(issuer=platform, client_id=registered.client_id,
                deployment_ids=list(registered.registration.deployments.values_list(
                    "deployment_id", flat=True)),
                private_pem=registered.private_pem, public_pem=registered.public_pem, **kwargs)


def browser_for(platform: str, username: str) -> Browser:
    browser = Browser(platform)
    browser.login(username, PASSWORD)
    return browser
