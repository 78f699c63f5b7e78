"""A member of governance staff opens the monitoring dashboard in a real browser, sees what
the hub did and what looks wrong, and acknowledges an alert in one click."""

from __future__ import annotations

import pytest
from django.utils import timezone

from apps.alerts.alerts import raise_alert
from apps.alerts.models import Alert, AlertState
from apps.audit.models import Channel
from apps.monitoring import services
from tests.accounts.factories import DEFAULT_PASSWORD
from tests.monitoring import history
from tests.vendors.factories import IntegrationFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_governance_acknowledges_an_alert_from_the_dashboard(
    browser, live_server, staff_user_factory, tmp_path
):
    # given a month of nightly pulls, two roster versions and an open alert
    staff_user_factory(username="amira.dpo", role="governance", first_name="Amira")
    integration = IntegrationFactory(name="Maths Quest roster (REST)")
    now = timezone.now()
    history.traffic(integration.pk, hours=history.daily_at(2, days=28, now=now),
                    channel=Channel.ONEROSTER_REST, endpoint="/users", requests=12, records=1200)
    services.access_activity_rollup_recent(days=30)
    history.people(1200, role="student", until=2)
    history.people(2400, role="student", since=2)
    history.version(1)
    history.version(2)
    services.roster_telemetry_catch_up()
    services.rules_evaluate(keys=["roster_count"])
    alert = Alert.objects.get(rule="monitoring.roster_count")
    other = raise_alert(rule="monitoring.access_volume", severity="warning",
                        subject="Maths Quest roster (REST) pulled 5x its usual volume",
                        details={"integration_id": integration.pk})

    # when: she signs in and opens the dashboard
    page = browser.new_context(viewport={"width": 1360, "height": 1000}).new_page()
    page.goto(f"{live_server.url}/admin/login/")
    page.fill("#id_username", "amira.dpo")
    page.fill("#id_password", DEFAULT_PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_url("**/admin/")
    page.goto(f"{live_server.url}/admin/monitoring/dashboard/")

    # then: activity is drawn inline, the roster jump is an open alert with its levers
    assert page.locator(f'tr[data-integration="{integration.pk}"] svg polyline').count() == 1
    assert page.locator('[data-testid="roster-chart"] svg').count() == 1
    assert page.locator(f'tr[data-alert="{alert.pk}"]').inner_text().count("2,400") >= 1
    assert page.locator(f'[data-testid="suspend-{other.pk}"]').is_visible()
    page.screenshot(path=str(tmp_path / "monitoring_dashboard.png"), full_page=True)
    assert (tmp_path / "monitoring_dashboard.png").stat().st_size > 10_000

    # when: she acknowledges the roster alert
    page.click(f'[data-testid="acknowledge-{alert.pk}"]')
    page.wait_for_url("**/admin/monitoring/dashboard/")

    # then: it is hers, the page says so, and its button is gone
    assert "acknowledged and assigned to you" in page.inner_text(".messagelist")
    assert page.locator(f'[data-testid="acknowledge-{alert.pk}"]').count() == 0
    alert.refresh_from_db()
    assert alert.state == AlertState.ACKNOWLEDGED
    assert alert.assignee.username == "amira.dpo"
    page.screenshot(path=str(tmp_path / "monitoring_dashboard_acknowledged.png"), full_page=True)


def test_the_dashboard_with_demo_data_in_a_real_browser(browser, live_server, tmp_path, settings):
    import json
    from io import StringIO

    from django.core.management import call_command

    settings.VAR_DIR = tmp_path
    out = StringIO()
    call_command("seed_demo", "--json", "--students", "60", stdout=out)
    staff = {p["username"]: p["password"] for p in json.loads(out.getvalue())["staff"]}

    page = browser.new_context(viewport={"width": 1360, "height": 1000}).new_page()
    page.goto(f"{live_server.url}/admin/login/")
    page.fill("#id_username", "amira.dpo")
    page.fill("#id_password", staff["amira.dpo"])
    page.click("input[type=submit]")
    page.wait_for_url("**/admin/")
    page.goto(f"{live_server.url}/admin/monitoring/dashboard/")

    assert page.locator("#activity svg polyline").count() >= 3
    assert "demo-client-guessing" in page.inner_text("#open-alerts")
    page.screenshot(path=str(tmp_path / "monitoring_dashboard_demo.png"), full_page=True)
    assert (tmp_path / "monitoring_dashboard_demo.png").stat().st_size > 10_000

    # and each integration has a page of its own with its charts and levers
    page.click("#activity a >> text=Numbersense roster (REST)")
    page.wait_for_url("**/admin/monitoring/dashboard/integrations/*/")
    assert page.locator('[data-testid="hours-chart"] svg rect').count() == 24
    assert page.locator('[data-testid="suspend-integration"]').is_visible()
    page.screenshot(path=str(tmp_path / "monitoring_integration_demo.png"), full_page=True)

