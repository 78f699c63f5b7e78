"""The dashboard in the admin: activity, alerts and their levers, roster telemetry; levers are
POST only, CSRF-protected, permission-checked and audited."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from django.test import Client
from django.utils import timezone

from apps.alerts.alerts import raise_alert
from apps.alerts.models import Alert, AlertState
from apps.audit.models import AuditEvent, Channel
from apps.monitoring import services
from apps.vendors.models import IntegrationStatus
from tests.monitoring import history
from tests.vendors.factories import IntegrationFactory

pytestmark = pytest.mark.django_db
DASHBOARD = "/admin/monitoring/dashboard/"


def _ack_url(alert) -> str:  # type: ignore[no-untyped-def]
    return f"{DASHBOARD}alerts/{alert.pk}/acknowledge/"


def _suspend_url(alert) -> str:  # type: ignore[no-untyped-def]
    return f"{DASHBOARD}alerts/{alert.pk}/suspend/"


@pytest.fixture
def integration():  # type: ignore[no-untyped-def]
    return IntegrationFactory(name="Maths Quest roster (REST)")


@pytest.fixture
def volume_alert(integration):  # type: ignore[no-untyped-def]
    return raise_alert(rule="monitoring.access_volume", severity="critical",
                       subject="Maths Quest roster (REST) pulled 5x its usual volume",
                       details={"integration_id": integration.pk, "records": 5000})


def test_the_dashboard_shows_activity_sparklines_alerts_and_roster_versions(
    client, staff_user_factory, integration, volume_alert, now
):
    history.traffic(integration.pk, hours=history.daily_at(2, days=10, now=now),
                    channel=Channel.ONEROSTER_REST, endpoint="/users", requests=10, records=900)
    services.access_activity_rollup(start=timezone.localdate() - dt.timedelta(days=12),
                                    end=timezone.localdate())
    history.people(120, role="student")
    history.people(8, role="teacher")
    history.version(1)
    services.roster_telemetry_catch_up()
    client.force_login(staff_user_factory(role="governance"))

    response = client.get(DASHBOARD)

    assert response.status_code == 200
    html = response.content.decode()
    assert volume_alert.subject in html
    assert f'data-testid="acknowledge-{volume_alert.pk}"' in html
    assert f'data-testid="suspend-{volume_alert.pk}"' in html
    row = re.search(rf'<tr data-integration="{integration.pk}">.*?</tr>', html, re.S).group(0)
    assert "<svg" in row and "<polyline" in row and "9,000" in row
    assert "student 120" in html and "teacher 8" in html
    # drawn on the server: no script, no CDN
    # (a CSRF token is random text, so look at what is loaded, not at every string)
    assert not re.search(r'<(script|link)[^>]+(src|href)="(https?:)?//', html)


def test_every_staff_role_opens_the_dashboard_but_only_some_see_the_levers(
    client, staff_user_factory, volume_alert
):
    client.force_login(staff_user_factory(role="auditor"))

    html = client.get(DASHBOARD).content.decode()

    assert volume_alert.subject in html
    assert "acknowledge-" not in html and "suspend-" not in html


def test_acknowledging_from_the_dashboard_assigns_and_audits(
    client, staff_user_factory, volume_alert, django_capture_on_commit_callbacks
):
    engineer = staff_user_factory(role="engineer")
    client.force_login(engineer)

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(_ack_url(volume_alert))

    assert response.status_code == 302 and response.url == DASHBOARD
    volume_alert.refresh_from_db()
    assert volume_alert.state == AlertState.ACKNOWLEDGED
    assert volume_alert.assignee == engineer
    assert AuditEvent.objects.filter(action="alerts.acknowledged",
                                     target_id=str(volume_alert.pk)).exists()


def test_levers_refuse_get_and_roles_without_the_permission(
    client, staff_user_factory, volume_alert, integration
):
    client.force_login(staff_user_factory(role="auditor"))
    assert client.get(_ack_url(volume_alert)).status_code == 405
    assert client.post(_ack_url(volume_alert)).status_code == 403
    client.force_login(staff_user_factory(role="engineer"))
    assert client.post(_suspend_url(volume_alert), {"reason": "x"}).status_code == 403

    volume_alert.refresh_from_db()
    integration.refresh_from_db()
    assert volume_alert.state == AlertState.OPEN
    assert integration.status == IntegrationStatus.ACTIVE


def test_a_lever_without_the_csrf_token_is_refused(staff_user_factory, volume_alert):
    client = Client(enforce_csrf_checks=True)
    client.force_login(staff_user_factory(role="governance"))

    response = client.post(_ack_url(volume_alert))

    assert response.status_code == 403
    volume_alert.refresh_from_db()
    assert volume_alert.state == AlertState.OPEN


def test_suspending_from_an_alert_stops_the_integration_and_records_why(
    client, staff_user_factory, volume_alert, integration, django_capture_on_commit_callbacks
):
    dpo = staff_user_factory(role="governance")
    client.force_login(dpo)

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(_suspend_url(volume_alert), {"reason": "Pulling far too much"})

    assert response.status_code == 302
    integration.refresh_from_db()
    volume_alert.refresh_from_db()
    assert integration.status == IntegrationStatus.SUSPENDED
    assert integration.status_reason == f"Pulling far too much (alert #{volume_alert.pk})"
    assert volume_alert.state == AlertState.ACKNOWLEDGED
    actions = set(AuditEvent.objects.values_list("action", flat=True))
    assert {"vendors.integration_suspended", "alerts.acknowledged",
            "monitoring.integration_suspended_from_alert"} <= actions


def test_suspending_needs_a_reason(client, staff_user_factory, volume_alert, integration):
    client.force_login(staff_user_factory(role="governance"))

    response = client.post(_suspend_url(volume_alert), {"reason": "  "}, follow=True)

    assert services.ERROR_REASON_REQUIRED in response.content.decode()
    integration.refresh_from_db()
    assert integration.status == IntegrationStatus.ACTIVE


def test_an_alert_that_names_no_integration_offers_no_suspend(client, staff_user_factory):
    alert = raise_alert(rule="monitoring.import_held", subject="Import #4 held for 30 hours")
    client.force_login(staff_user_factory(role="governance"))

    html = client.get(DASHBOARD).content.decode()
    refused = client.post(_suspend_url(alert), {"reason": "why not"}, follow=True)

    assert f"suspend-{alert.pk}" not in html
    assert services.ERROR_ALERT_HAS_NO_INTEGRATION in refused.content.decode()


def test_seed_demo_gives_the_dashboard_a_story_on_first_run(client, staff_user_factory, settings,
                                                            tmp_path):
    import json
    from io import StringIO

    from django.core.management import call_command

    settings.VAR_DIR = tmp_path
    out = StringIO()
    call_command("seed_demo", "--json", "--students", "60", stdout=out)
    summary = json.loads(out.getvalue())["monitoring"]

    assert summary["days_of_history"] == 28
    assert summary["alerts_raised"] >= 1
    rules = set(Alert.objects.values_list("rule", flat=True))
    assert "monitoring.token_failures" in rules
    client.force_login(staff_user_factory(role="governance"))
    html = client.get(DASHBOARD).content.decode()
    assert html.count("<polyline") >= 3  # several integrations with a month of activity
    assert "demo-client-guessing" in html


def _page(integration) -> str:  # type: ignore[no-untyped-def]
    return f"{DASHBOARD}integrations/{integration.pk}/"


def test_an_integration_page_shows_its_rhythm_daily_charts_alerts_and_last_requests(
    client, staff_user_factory, integration, volume_alert, now
):
    from apps.audit.services import access_record

    history.traffic(integration.pk, hours=history.daily_at(2, days=13, now=now),
                    channel=Channel.ONEROSTER_REST, endpoint="/users", requests=10, records=900)
    # an odd hour other than the one this test runs in (its own request below lands there)
    odd = 3 if timezone.localtime().hour != 3 else 4
    history.traffic(integration.pk, hours=[now.replace(hour=odd) - dt.timedelta(days=1)],
                    channel=Channel.ONEROSTER_REST, endpoint="/users", requests=1, records=10)
    access_record(integration_id=integration.pk, channel=Channel.ONEROSTER_REST,
                  endpoint="/users", status_code=403, records=0, duration_ms=4)
    services.access_activity_rollup(start=timezone.localdate() - dt.timedelta(days=14),
                                    end=timezone.localdate())
    client.force_login(staff_user_factory(role="auditor"))

    response = client.get(_page(integration))

    assert response.status_code == 200
    html = response.content.decode()
    assert volume_alert.subject in html
    assert "Records served" in html and "Requests" in html
    hours = re.search(r'data-testid="hours-chart">(.*?)</div>', html, re.S).group(1)
    assert hours.count("<rect") == 24
    assert f"{odd:02d}: 1</title>" in hours and 'fill="#b3261e"' in hours  # it stands out
    assert "<code>/users</code>" in html and "ix-badge-critical\">403" in html
    assert 'data-testid="suspend-integration"' not in html  # auditors look, never act


def test_suspending_from_the_integration_page_is_audited(
    client, staff_user_factory, integration, django_capture_on_commit_callbacks
):
    client.force_login(staff_user_factory(role="governance"))

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(f"{_page(integration)}suspend/", {"reason": "Unusual night pulls"})

    assert response.status_code == 302
    integration.refresh_from_db()
    assert integration.status == IntegrationStatus.SUSPENDED
    assert AuditEvent.objects.filter(action="vendors.integration_suspended",
                                     target_id=str(integration.pk)).exists()


def test_engineers_cannot_suspend_from_the_integration_page(client, staff_user_factory,
                                                            integration):
    client.force_login(staff_user_factory(role="engineer"))

    assert client.post(f"{_page(integration)}suspend/", {"reason": "x"}).status_code == 403
    integration.refresh_from_db()
    assert integration.status == IntegrationStatus.ACTIVE


def test_the_dashboard_shows_propagation_against_the_target(client, staff_user_factory):
    csv = IntegrationFactory(kind="oneroster_csv", name="Nightly SFTP")
    history.version(1)
    client.force_login(staff_user_factory(role="engineer"))

    html = client.get(DASHBOARD).content.decode()

    row = re.search(rf'<tr data-propagation="1-{csv.pk}">.*?</tr>', html, re.S).group(0)
    assert "Nightly SFTP" in row and "pending" in row
    assert "within 6 hours" in html


def test_the_dashboard_costs_the_same_queries_for_three_integrations_or_twelve(
    client, staff_user_factory, now
):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    client.force_login(staff_user_factory(role="governance"))

    def queries_with(integrations: int) -> int:
        for _ in range(integrations - IntegrationFactory._meta.model.objects.count()):
            integration = IntegrationFactory()
            raise_alert(rule="monitoring.access_volume", subject=f"{integration.name} pulled",
                        details={"integration_id": integration.pk})
            history.traffic(integration.pk, hours=history.daily_at(2, days=5, now=now),
                            channel=Channel.ONEROSTER_REST, endpoint="/users", requests=3)
        services.access_activity_rollup(start=timezone.localdate() - dt.timedelta(days=6),
                                        end=timezone.localdate())
        with CaptureQueriesContext(connection) as captured:
            assert client.get(DASHBOARD).status_code == 200
        return len(captured)

    # the session's expiry is pushed back at most once a minute: with database sessions
    # (no Redis) the first request saves it; that is not the dashboard's cost
    assert client.get(DASHBOARD).status_code == 200
    assert queries_with(3) == queries_with(12)


def test_the_disclosure_lookup_is_linked_for_those_who_may_use_it(client, staff_user_factory):
    client.force_login(staff_user_factory(role="governance"))
    governance = client.get(DASHBOARD).content.decode()
    client.force_login(staff_user_factory(role="engineer"))
    engineer = client.get(DASHBOARD).content.decode()

    assert 'href="/admin/offboarding/disclosurehistory/"' in governance
    assert "disclosure-lookup" not in engineer

