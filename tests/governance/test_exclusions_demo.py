"""The sandbox's demo exclusions: one pupil from the plain REST integration, one from all."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from apps.governance.demo import demo_exclusions_seed
from apps.governance.models import Exclusion
from apps.governance.release import release_for
from tests.governance import release_world as world

pytestmark = pytest.mark.django_db


@pytest.fixture
def integrations(master_key):  # type: ignore[no-untyped-def]
    world.org("sch1")
    for sid in ("s1", "s2", "s3"):
        world.user(sid, org="sch1")
    world.user("t1", org="sch1", role="teacher")
    vendor = world.vendor()
    plain = world.integration(vendor, name="Plain REST", pseudonymised=False)
    pseudo = world.integration(vendor, name="Pseudo REST", pseudonymised=True)
    for integration in (plain, pseudo):
        world.approve(integration, orgs=["sch1"])
    return {plain.name: plain, pseudo.name: pseudo}


def test_demo_excludes_one_pupil_from_the_plain_integration_and_one_from_all(
    integrations, officer
):
    result = demo_exclusions_seed(integrations=integrations, officer=officer)

    ends = (timezone.localdate() + dt.timedelta(days=90)).isoformat()
    assert result == [
        {"user_sourced_id": "s1", "integration": "Plain REST", "ends": ends},
        {"user_sourced_id": "s2", "integration": None, "ends": ends},
    ]
    plain = world.ids(release_for(integrations["Plain REST"]).users())
    assert "s1" not in plain and "s2" not in plain and "s3" in plain
    pseudo = release_for(integrations["Pseudo REST"])
    assert pseudo.pseudonymiser.pseudonym("s1") in world.ids(pseudo.users())
    assert pseudo.pseudonymiser.pseudonym("s2") not in world.ids(pseudo.users())


def test_seeding_twice_reuses_the_exclusions_in_force(integrations, officer):
    first = demo_exclusions_seed(integrations=integrations, officer=officer)
    second = demo_exclusions_seed(integrations=integrations, officer=officer)

    assert first == second and Exclusion.objects.count() == 2
