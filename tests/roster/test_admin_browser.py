"""The roster admin in a real browser: an engineer uploads a feed and sees it applied; a
feed that doubles the learners is held, and governance staff reject it with a reason."""

from __future__ import annotations

from pathlib import Path

import pytest

from apps.roster.models import ImportRun, ImportState, RosterVersion
from tests.conftest import sign_in
from tests.roster.builders import small_district, write_feed

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-results" / "screenshots"


def upload(page, live_server, path: Path) -> int:  # type: ignore[no-untyped-def]
    page.goto(f"{live_server.url}/admin/roster/importrun/upload/")
    page.set_input_files("input[name=file]", str(path))
    page.click("input[type=submit]")
    page.wait_for_url("**/admin/roster/importrun/*/change/")
    return int(page.url.rstrip("/").split("/")[-2])


def test_an_upload_is_applied_and_a_doubling_is_held_until_governance_decides(
    browser, live_server, staff_user_factory, fresh_master_key, tmp_path
):
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    staff_user_factory(username="dev.engineer", role="engineer")
    staff_user_factory(username="amira.dpo", role="governance")
    engineer = sign_in(browser, live_server, "dev.engineer")

    # an engineer uploads the first feed: the worker path applies it and the run says so
    first = upload(engineer, live_server, write_feed(tmp_path / "first.zip",
                                                     small_district(students=30)))
    engineer.reload()
    assert ImportRun.objects.get(pk=first).state == ImportState.APPLIED
    assert "Applied" in engineer.inner_text("#content")
    # the staged (encrypted) file is never offered: neither its path nor a link to it
    staged = ImportRun.objects.get(pk=first).staged_path
    assert staged and staged not in engineer.content()
    engineer.screenshot(path=str(SCREENSHOTS / "roster_import_applied.png"), full_page=True)

    # a feed with twice the learners trips the gate and is held, with nothing applied
    second = upload(engineer, live_server, write_feed(tmp_path / "second.zip",
                                                      small_district(students=60)))
    run = ImportRun.objects.get(pk=second)
    assert run.state == ImportState.HELD and RosterVersion.objects.count() == 1
    engineer.reload()
    assert "Held" in engineer.inner_text("#content")
    assert engineer.locator("a", has_text="Reject").count() == 0  # not the engineer's call

    # governance staff open the held run and reject it with a reason
    dpo = sign_in(browser, live_server, "amira.dpo")
    dpo.goto(f"{live_server.url}/admin/roster/importrun/{second}/change/")
    dpo.screenshot(path=str(SCREENSHOTS / "roster_import_held.png"), full_page=True)
    dpo.click("a:has-text('Reject')")
    dpo.fill("textarea[name=reason]", "Intake doubled overnight: SIS export misconfigured")
    dpo.click("input[type=submit]")
    dpo.wait_for_url(f"**/admin/roster/importrun/{second}/change/")
    run.refresh_from_db()
    assert run.state == ImportState.REJECTED
    assert run.decision_reason == "Intake doubled overnight: SIS export misconfigured"
    assert RosterVersion.objects.count() == 1
