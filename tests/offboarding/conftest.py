"""One vendor with three integrations (OneRoster REST with live credentials, OneRoster CSV,
an LTI tool), its contract, agreement and security review, over the LTI tests' small school
(portal accounts linked to pupils), so each channel can be driven from the outside."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import pytest
from django.utils import timezone

from apps.lti.models import ToolRegistration
from apps.lti.services import registration_create
from apps.oneroster_api.services import oauth_client_issue
from apps.vendors.models import Contract, Integration, IntegrationKind, Vendor
from tests.governance import release_world as world
from tests.lti.conftest import PASSWORD, school  # noqa: F401 (a fixture)
from tests.lti.tool import LOGIN_URL, REDIRECT_URI, TARGET_LINK_URI, ClientBrowser, rsa_key_pair
from tests.oneroster_api.conftest import CORE, FULL, Api
from tests.oneroster_api.conftest import Vendor as RestClient
from tests.vendors.factories import AgreementFactory, ContactFactory, SecurityReviewFactory


@pytest.fixture(autouse=True)
def _isolated(fresh_cache, fresh_master_key):  # type: ignore[no-untyped-def]
    """Every test here starts with an empty cache and its own master key."""


@pytest.fixture
def governance_user(staff_user_factory):  # type: ignore[no-untyped-def]
    return staff_user_factory(username="gov.dpo", role="governance")


@pytest.fixture
def auditor(staff_user_factory):  # type: ignore[no-untyped-def]
    return staff_user_factory(username="erin.auditor", role="auditor")


@dataclass
class VendorWorld:
    vendor: Vendor
    contract: Contract
    rest: Integration
    csv: Integration
    lti: Integration
    registration: ToolRegistration
    rest_client: RestClient
    tool_private_pem: str
    tool_public_pem: str


def build_vendor(governance_user, *, name: str = "Acme Learning") -> VendorWorld:  # type: ignore[no-untyped-def]
    vendor = world.vendor(name)
    today = timezone.localdate()
    contract = Contract.objects.create(vendor=vendor, reference=f"C-{vendor.pk}",
                                       starts_on=today - dt.timedelta(days=400),
                                       ends_on=today + dt.timedelta(days=300))
    AgreementFactory(vendor=vendor, contract=contract,
                     deletion_commitment="Deletes all school data within 14 days of the end.",
                     allowed_field_classes=["identifier", "directory", "contact"])
    SecurityReviewFactory(vendor=vendor, reviewer=governance_user)
    ContactFactory(vendor=vendor)
    rest = world.integration(vendor, kind=IntegrationKind.ONEROSTER_REST,
                             name=f"{name} REST")
    world.approve(rest, orgs=("dist",), scopes=(CORE, FULL),
                  field_classes=("identifier", "directory"))
    issued = oauth_client_issue(integration=rest, actor=governance_user)
    csv = world.integration(vendor, kind=IntegrationKind.ONEROSTER_CSV, name=f"{name} CSV")
    world.approve(csv, orgs=("dist",), services=("csv.delivery",), scopes=())
    lti = world.integration(vendor, kind=IntegrationKind.LTI_TOOL, name=f"{name} tool",
                            pseudonymised=True)
    private_pem, public_pem = rsa_key_pair()
    registration = registration_create(
        integration=lti, login_initiation_url=LOGIN_URL, redirect_uris=[REDIRECT_URI],
        target_link_uris=[TARGET_LINK_URI], public_key_pem=public_pem,
    )
    world.approve(lti, orgs=("dist",), services=("lti.launch", "lti.deep_linking"), scopes=(),
                  field_classes=())
    return VendorWorld(vendor, contract, rest, csv, lti, registration,
                       RestClient(rest, issued.client_id, issued.client_secret),
                       private_pem, public_pem)


@pytest.fixture
def acme(school, governance_user) -> VendorWorld:  # type: ignore[no-untyped-def]  # noqa: F811
    return build_vendor(governance_user)


@pytest.fixture
def api() -> Api:
    return Api()


@pytest.fixture
def pupil() -> ClientBrowser:
    return ClientBrowser("pupil.one", PASSWORD)
