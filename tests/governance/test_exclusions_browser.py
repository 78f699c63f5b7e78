"""A safeguarding officer sets an exclusion in a real browser, and the integration's
effective-access page (seen by governance staff) counts the pupil as withheld, unnamed."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from django.utils import timezone

from apps.governance.models import Exclusion
from apps.governance.release import release_for
from tests.conftest import sign_in
from tests.governance import release_world as world

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-results" / "screenshots"


def test_an_officer_excludes_a_pupil_and_governance_sees_only_the_count(
    browser, live_server, staff_user_factory, master_key
):
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    staff_user_factory(username="chloe.dsl", role="safeguarding", first_name="Chloe")
    staff_user_factory(username="amira.dpo", role="governance", first_name="Amira")
    world.org("trust", type="district")
    world.org("oakfield", "trust")
    for n in range(1, 6):
        world.user(f"stu-oak-{n}", org="oakfield")
    integration = world.integration(world.vendor("Reading Rocket Ltd"),
                                    name="Reading Rocket roster (REST)")
    world.approve(integration, orgs=["trust"], field_classes=["directory"])
    ends = timezone.localtime(timezone.now() + dt.timedelta(days=60))

    # when: the officer sets an exclusion from this one integration
    officer = sign_in(browser, live_server, "chloe.dsl")
    officer.goto(f"{live_server.url}/admin/governance/exclusion/add/")
    officer.fill("#id_user_sourced_id", "stu-oak-3")
    officer.check("input[name=scope][value=integration]")
    officer.select_option("#id_integration", label="Reading Rocket roster (REST)")
    officer.select_option("#id_reason_code", value="child_protection")
    officer.fill("#id_note", "Strategy meeting 4 March; review at next core group.")
    officer.fill("#id_ends_at_0", ends.strftime("%Y-%m-%d"))
    officer.fill("#id_ends_at_1", ends.strftime("%H:%M:%S"))
    officer.screenshot(path=str(SCREENSHOTS / "exclusion_add.png"), full_page=True)
    officer.click("input[name=_save]")
    officer.wait_for_url("**/admin/governance/exclusion/")
    officer.screenshot(path=str(SCREENSHOTS / "exclusion_list.png"), full_page=True)

    # then: it is in force, the pupil is withheld, and the list shows who (to the officer)
    exclusion = Exclusion.objects.get()
    assert exclusion.is_active() and exclusion.integration_id == integration.pk
    assert "stu-oak-3" in officer.content()
    assert "stu-oak-3" not in world.ids(release_for(integration).users())

    # and: governance staff see a count on the effective-access page, never the name
    dpo = sign_in(browser, live_server, "amira.dpo")
    dpo.goto(f"{live_server.url}/admin/governance/integrationaccess/{integration.pk}/access/")
    assert dpo.inner_text("[data-testid=users-visible]") == "4"
    assert dpo.inner_text("[data-testid=users-withheld]") == "1"
    assert "stu-oak-3" not in dpo.content()
    dpo.screenshot(path=str(SCREENSHOTS / "effective_access.png"), full_page=True)
    dpo.goto(f"{live_server.url}/admin/governance/exclusion/")
    assert "403" in dpo.title() or "Forbidden" in dpo.content()
