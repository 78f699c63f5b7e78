"""Tuning rules and channels in the admin: audited, and the webhook secret is write-only."""

from __future__ import annotations

import pytest

from apps.audit.models import AuditEvent
from apps.monitoring import services
from apps.monitoring.models import AlertChannel, MonitoringRule, RuleKey

pytestmark = pytest.mark.django_db
SECRET = "a-long-shared-secret-for-the-receiver"


def _rule_form(rule: MonitoringRule, **changes: object) -> dict:
    data = {"enabled": "on" if rule.enabled else "", "severity": rule.severity,
            "threshold": rule.threshold, "window_hours": rule.window_hours,
            "min_volume": rule.min_volume}
    data.update(changes)
    return data


def test_an_engineer_tunes_a_threshold_and_the_change_is_audited(
    client, staff_user_factory, django_capture_on_commit_callbacks
):
    services.rules_ensure_defaults()
    rule = MonitoringRule.objects.get(key=RuleKey.TOKEN_FAILURES)
    engineer = staff_user_factory(role="engineer")
    client.force_login(engineer)

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(f"/admin/monitoring/monitoringrule/{rule.pk}/change/",
                               _rule_form(rule, threshold=25))

    assert response.status_code == 302
    rule.refresh_from_db()
    assert rule.threshold == 25
    event = AuditEvent.objects.get(action="monitoring.rule_changed")
    assert event.details == {"rule": "token_failures", "threshold": 25.0}
    assert event.actor_username == engineer.username


def test_auditors_read_rules_but_cannot_change_them(client, staff_user_factory):
    services.rules_ensure_defaults()
    rule = MonitoringRule.objects.get(key=RuleKey.TOKEN_FAILURES)
    client.force_login(staff_user_factory(role="auditor"))

    response = client.post(f"/admin/monitoring/monitoringrule/{rule.pk}/change/",
                           _rule_form(rule, threshold=1000))

    assert response.status_code == 403
    rule.refresh_from_db()
    assert rule.threshold == 10


FORM = {"name": "ops", "kind": "webhook", "target": "https://hooks.example/interchange",
        "min_severity": "warning", "max_per_run": 20, "enabled": "on"}


def test_creating_a_webhook_is_audited_without_its_secret(
    client, staff_user_factory, django_capture_on_commit_callbacks
):
    client.force_login(staff_user_factory(role="governance"))

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post("/admin/monitoring/alertchannel/add/", {**FORM, "secret": SECRET})

    assert response.status_code == 302
    assert AlertChannel.objects.get(name="ops").secret == SECRET
    # stored wrapped by the master key: the row holds no copy of it in clear
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT * FROM monitoring_alertchannel WHERE name = 'ops'")
        stored = repr(cursor.fetchone())
    assert SECRET not in stored and SECRET.encode().hex() not in stored
    event = AuditEvent.objects.get(action="monitoring.channel_saved")
    assert event.details["created"] is True and event.details["secret"] == "changed"
    assert SECRET not in str(event.details)


def test_a_webhook_secret_is_never_shown_again_and_kept_when_left_blank(
    client, staff_user_factory, django_capture_on_commit_callbacks
):
    channel = AlertChannel.objects.create(name="ops", kind="webhook", secret=SECRET,
                                          target="https://hooks.example/interchange")
    client.force_login(staff_user_factory(role="governance"))

    page = client.get(f"/admin/monitoring/alertchannel/{channel.pk}/change/").content.decode()
    with django_capture_on_commit_callbacks(execute=True):
        client.post(f"/admin/monitoring/alertchannel/{channel.pk}/change/",
                    {**FORM, "secret": "", "min_severity": "critical"})

    assert SECRET not in page
    channel.refresh_from_db()
    assert channel.secret == SECRET and channel.min_severity == "critical"
    event = AuditEvent.objects.get(action="monitoring.channel_saved")
    assert event.details == {"created": False, "min_severity": "critical"}


def test_a_webhook_without_a_secret_is_refused(client, staff_user_factory):
    client.force_login(staff_user_factory(role="governance"))

    response = client.post("/admin/monitoring/alertchannel/add/", {
        "name": "ops", "kind": "webhook", "target": "https://hooks.example/x", "secret": "",
        "min_severity": "warning", "max_per_run": 20, "enabled": "on"})

    assert response.status_code == 200
    assert "needs a secret" in response.content.decode()
    assert not AlertChannel.objects.exists()
