"""Pseudonyms: keyed HMAC per vendor, the same in SQL and Python, consistent across every
reference, stable across channels and master key rotations, and reversible only by the hub."""

from __future__ import annotations

import pytest
from django.db import connection
from django.db.models import TextField, Value

from apps.governance.models import PseudonymMap, VendorPseudonymKey
from apps.governance.pseudonyms import (
    PSEUDONYM_KEY_PURPOSE,
    hmac_reference,
    pseudonymiser_for_vendor,
)
from apps.governance.release import release_for
from apps.keys.keyring import data_key_binding, keyring
from apps.roster.models import Org
from tests.governance import release_world as world

pytestmark = pytest.mark.django_db

ALL = ("identifier", "directory", "contact", "demographic", "special_category", "assessment",
       "credential")


@pytest.fixture
def roster():  # type: ignore[no-untyped-def]
    world.org("sch1")
    world.user("p1", org="sch1", user_ids=["{MIS:1001}", "{IdP:p1@idp}"],
               user_master_identifier="UPN-1")
    world.user("p2", org="sch1")
    world.user("g1", org="sch1", role="guardian", agents=["p1", "p2"])
    world.klass("cls1", "sch1")
    world.enrol("p1", "cls1", "sch1")
    world.demographic("p1")
    world.line_item("li1", "cls1")
    world.result("res-p1", "li1", "p1", "cls1")
    world.rows("userProfiles", {"sourced_id": "prof-p1", "user_sourced_id": "p1",
                                "profile_type": "lms", "vendor_id": "v", "credential_type": "pw",
                                "username": "p1-lms"})


def _raw_key(vendor_id: int) -> bytes:
    key = VendorPseudonymKey.objects.select_related("data_key").get(vendor_id=vendor_id)
    return keyring().unwrap(
        bytes(key.data_key.wrapped_key), master_key_id=key.data_key.master_key_id,
        purpose=data_key_binding(PSEUDONYM_KEY_PURPOSE), object_id=str(key.data_key.pk),
    )


def test_sql_python_and_the_textbook_hmac_agree(master_key, roster):
    vendor = world.vendor()
    pseudo = pseudonymiser_for_vendor(vendor.pk)
    raw = _raw_key(vendor.pk)
    values = ["p1", "ünïcode-ßourced-id", "", "a" * 300]

    for value in values:
        in_sql = (
            Org.objects.annotate(p=pseudo.sql(Value(value, output_field=TextField())))
            .values_list("p", flat=True).first()
        )
        assert in_sql == pseudo.pseudonym(value) == hmac_reference(raw, value)


def test_the_key_is_stored_only_wrapped_as_a_data_key(master_key):
    vendor = world.vendor()
    pseudonymiser_for_vendor(vendor.pk)

    key = VendorPseudonymKey.objects.select_related("data_key").get(vendor=vendor)
    assert key.data_key.purpose == PSEUDONYM_KEY_PURPOSE
    assert len(bytes(key.data_key.wrapped_key)) > 32
    assert "_ipad" not in repr(pseudonymiser_for_vendor(vendor.pk))


def test_a_users_pseudonym_is_the_same_in_every_reference(master_key, roster):
    integration = world.integration(pseudonymised=True)
    world.approve(integration, orgs=["sch1"], field_classes=ALL)
    release = release_for(integration)
    p1 = release.pseudonymiser.pseudonym("p1")

    users = {row["sourced_id"]: row for row in release.users()}
    assert p1 in users and "p1" not in users
    assert users[p1]["username"] == release.pseudonymiser.pseudonym("user.p1")
    assert users[p1]["identifier"] == release.pseudonymiser.pseudonym("ID-p1")
    assert users[p1]["user_master_identifier"] == release.pseudonymiser.pseudonym("UPN-1")
    assert users[p1]["user_ids"] == [release.pseudonymiser.pseudonym("{MIS:1001}"),
                                     release.pseudonymiser.pseudonym("{IdP:p1@idp}")]
    guardian = users[release.pseudonymiser.pseudonym("g1")]
    assert set(guardian["agent_sourced_ids"]) == {p1, release.pseudonymiser.pseudonym("p2")}
    assert world.ids(release.enrollments(), "user_sourced_id") == {p1}
    assert world.ids(release.demographics()) == {p1}
    assert world.ids(release.results(), "student_sourced_id") == {p1}
    assert world.ids(release.roles(), "user_sourced_id") >= {p1}
    assert world.ids(release.user_profiles(), "user_sourced_id") == {p1}
    # classes and orgs are not about a person: their ids stay the school's
    assert world.ids(release.classes()) == {"cls1"}


def test_no_school_identifier_of_a_person_leaks_into_a_pseudonymised_release(master_key, roster):
    integration = world.integration(pseudonymised=True)
    world.approve(integration, orgs=["sch1"], field_classes=ALL)
    release = release_for(integration)

    dumped = str([list(getattr(release, m)()) for m in (
        "users", "roles", "user_profiles", "enrollments", "demographics", "results")])

    for school_id in ("'p1'", "'p2'", "'g1'", "user.p1", "ID-p1", "UPN-1", "MIS:1001",
                      "enr-p1", "res-p1", "role-p1", "prof-p1"):
        assert school_id not in dumped


def test_filters_on_a_pseudonymised_id_compare_pseudonyms_so_school_ids_cannot_be_probed(
    master_key, roster
):
    integration = world.integration(pseudonymised=True)
    world.approve(integration, orgs=["sch1"])
    release = release_for(integration)

    assert not release.users().filter(sourced_id="p1").exists()
    assert release.users().filter(sourced_id=release.pseudonymiser.pseudonym("p1")).exists()


def test_pseudonyms_are_stable_per_vendor_across_channels_and_differ_between_vendors(
    master_key, roster
):
    vendor = world.vendor()
    rest = world.integration(vendor, pseudonymised=True)
    lti = world.integration(vendor, kind="lti_tool", pseudonymised=True)
    other = world.integration(pseudonymised=True)
    for integration in (rest, lti, other):
        world.approve(integration, orgs=["sch1"])

    ids = {i.name: world.ids(release_for(i).users()) for i in (rest, lti, other)}

    assert ids[rest.name] == ids[lti.name]
    assert not ids[rest.name] & ids[other.name]
    assert release_for(lti).pseudonymiser.pseudonym("p1") in ids[rest.name]


def test_a_plain_integration_gets_the_schools_identifiers(master_key, roster):
    integration = world.integration(pseudonymised=False)
    world.approve(integration, orgs=["sch1"])

    release = release_for(integration)

    assert not release.pseudonymised
    assert world.ids(release.users()) == {"p1", "p2", "g1"}
    assert release.pseudonymiser.pseudonym("p1") == "p1"


def test_the_hub_maps_pseudonyms_back_in_bulk(master_key, roster):
    vendor = world.vendor()
    pseudo = pseudonymiser_for_vendor(vendor.pk)
    wanted = {pseudo.pseudonym(sid): sid for sid in ("p1", "g1")}

    assert pseudo.reverse([*wanted, "f" * 32]) == wanted
    assert PseudonymMap.objects.filter(vendor=vendor).count() == 3  # every current user
    pseudo.map_sourced_ids(["not-yet-imported"])
    assert pseudo.reverse([pseudo.pseudonym("not-yet-imported")]) == {
        pseudo.pseudonym("not-yet-imported"): "not-yet-imported"
    }


def test_unknown_pseudonyms_do_not_rescan_the_roster_until_it_changes(master_key, roster):
    from django.test.utils import CaptureQueriesContext

    vendor = world.vendor()
    pseudo = pseudonymiser_for_vendor(vendor.pk)
    pseudo.reverse(["0" * 32])  # the first miss fills the map

    with CaptureQueriesContext(connection) as queries:
        assert pseudo.reverse(["1" * 32]) == {}

    assert not any("INSERT" in q["sql"] for q in queries.captured_queries)


def test_pseudonyms_survive_a_master_key_rotation(master_key, roster, settings):
    from apps.keys.master import generate_key
    from apps.keys.services import master_key_rotate

    vendor = world.vendor()
    before = pseudonymiser_for_vendor(vendor.pk).pseudonym("p1")

    settings.INTERCHANGE_MASTER_KEY_PREVIOUS = settings.INTERCHANGE_MASTER_KEY
    settings.INTERCHANGE_MASTER_KEY = generate_key()
    master_key_rotate()
    settings.INTERCHANGE_MASTER_KEY_PREVIOUS = None

    assert pseudonymiser_for_vendor(vendor.pk).pseudonym("p1") == before
