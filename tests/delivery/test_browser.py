"""The engineer's journey in a real browser: a failed delivery is red on the destinations
page, and one action on the run delivers it again."""

from __future__ import annotations

import pytest

from apps.delivery import services
from apps.delivery.models import DeliveryRun, RunState
from tests.accounts.factories import DEFAULT_PASSWORD

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_an_engineer_sees_a_failed_destination_and_replays_it(
    browser, live_server, staff_user_factory, sftp_destination, running_sshd, settings
):
    # given: the SFTP server was down for the last delivery, which failed
    settings.INTERCHANGE_DELIVERY_MAX_ATTEMPTS = 1
    running_sshd.stop()
    run, _ = services.delivery_run_enqueue(destination=sftp_destination)
    assert services.delivery_run_execute(run=run).run.state == RunState.FAILED
    running_sshd.start()
    staff_user_factory(username="dev.engineer", role="engineer")

    page = browser.new_context().new_page()
    page.goto(f"{live_server.url}/admin/login/")
    page.fill("#id_username", "dev.engineer")
    page.fill("#id_password", DEFAULT_PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_url("**/admin/")

    # when: the engineer opens the destinations, then replays the failed run
    page.goto(f"{live_server.url}/admin/delivery/destination/")
    row = page.locator("#result_list tbody tr", has_text="csv-vendor")
    assert "failed" in row.inner_text() and "never delivered" in row.inner_text()
    page.goto(f"{live_server.url}/admin/delivery/deliveryrun/")
    page.check(f"input[name=_selected_action][value='{run.pk}']")
    page.select_option("select[name=action]", "replay")
    page.click("button[name=index]")
    page.wait_for_selector("text=Replay queued")

    # then: delivered once, and the destinations page says so
    run.refresh_from_db()
    assert run.state == RunState.DELIVERED
    assert DeliveryRun.objects.filter(destination=sftp_destination).count() == 1
    page.goto(f"{live_server.url}/admin/delivery/destination/")
    row = page.locator("#result_list tbody tr", has_text="csv-vendor")
    assert "delivered" in row.inner_text()
