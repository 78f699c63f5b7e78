"""The alert call every app uses, and the people who act on alerts."""

from __future__ import annotations

import json
from io import StringIO

import pytest
from django.core.management import call_command

from apps.alerts import alerts
from apps.alerts.models import Alert, AlertState
from apps.audit.models import AuditEvent

pytestmark = pytest.mark.django_db


def test_raising_the_same_condition_twice_makes_one_alert_with_a_count():
    first = alerts.raise_alert(rule="import.held", subject="Import 7 held", dedup_key="import:7")
    again = alerts.raise_alert(rule="import.held", subject="Import 7 held", dedup_key="import:7")

    assert again.pk == first.pk
    assert again.occurrences == 2
    assert Alert.objects.count() == 1


def test_a_worse_repeat_raises_the_severity_and_a_milder_one_never_lowers_it():
    alerts.raise_alert(rule="r", subject="s", severity="warning", dedup_key="k")
    worse = alerts.raise_alert(rule="r", subject="s", severity="critical", dedup_key="k")
    milder = alerts.raise_alert(rule="r", subject="s", severity="info", dedup_key="k")

    assert worse.severity == "critical"
    assert milder.severity == "critical"


def test_a_condition_that_returns_after_resolution_opens_a_new_alert(staff_user_factory):
    officer = staff_user_factory(role="governance")
    first = alerts.raise_alert(rule="r", subject="s", dedup_key="k")
    alerts.alert_resolve(alert=first, actor=officer, resolution="Vendor fixed their client")

    second = alerts.raise_alert(rule="r", subject="s", dedup_key="k")

    assert second.pk != first.pk
    assert second.state == AlertState.OPEN


def test_acknowledge_and_resolve_are_audited(
    staff_user_factory, django_capture_on_commit_callbacks
):
    officer = staff_user_factory(username="dpo", role="governance")
    alert = alerts.raise_alert(rule="token.failures", subject="Repeated token failures")

    with django_capture_on_commit_callbacks(execute=True):
        alerts.alert_acknowledge(alert=alert, actor=officer)
        alerts.alert_resolve(alert=alert, actor=officer, resolution="Client secret rotated")

    actions = list(AuditEvent.objects.order_by("id").values_list("action", "actor_username"))
    assert actions == [("alerts.acknowledged", "dpo"), ("alerts.resolved", "dpo")]
    alert.refresh_from_db()
    assert alert.state == AlertState.RESOLVED and alert.assignee == officer


def test_resolving_needs_a_note(staff_user_factory):
    alert = alerts.raise_alert(rule="r", subject="s")
    with pytest.raises(ValueError, match=alerts.ERROR_RESOLUTION_REQUIRED):
        alerts.alert_resolve(alert=alert, actor=staff_user_factory(), resolution="  ")


def test_unknown_severity_is_refused():
    with pytest.raises(ValueError, match="severity"):
        alerts.raise_alert(rule="r", subject="s", severity="apocalyptic")


def test_the_alerts_command_lists_live_alerts_worst_first(staff_user_factory):
    alerts.raise_alert(rule="a", subject="mild", severity="info")
    alerts.raise_alert(rule="b", subject="bad", severity="critical")
    done = alerts.raise_alert(rule="c", subject="done")
    alerts.alert_resolve(alert=done, actor=staff_user_factory(), resolution="ok")

    out = StringIO()
    call_command("alerts", "--json", stdout=out)
    rows = json.loads(out.getvalue())

    assert [row["subject"] for row in rows] == ["bad", "mild"]
    assert set(rows[0]) >= {"id", "severity", "rule", "subject", "state", "occurrences"}


def test_resolving_from_the_admin_asks_for_a_note_then_resolves(client, staff_user_factory):
    officer = staff_user_factory(role="governance")
    client.force_login(officer)
    alert = alerts.raise_alert(rule="r", subject="Destination failing")
    url = "/admin/alerts/alert/"
    selection = {"action": "resolve_selected", "_selected_action": [alert.pk]}

    asked = client.post(url, selection)
    assert asked.status_code == 200 and b"Resolve 1 alert" in asked.content

    client.post(url, {**selection, "resolution": "SFTP host key re-pinned"})
    alert.refresh_from_db()
    assert alert.state == AlertState.RESOLVED
    assert alert.resolution == "SFTP host key re-pinned"


def test_auditors_can_read_alerts_but_not_act_on_them(client, staff_user_factory):
    client.force_login(staff_user_factory(role="auditor"))
    alert = alerts.raise_alert(rule="r", subject="s")

    assert client.get("/admin/alerts/alert/").status_code == 200
    client.post("/admin/alerts/alert/", {"action": "acknowledge_selected",
                                         "_selected_action": [alert.pk]})
    alert.refresh_from_db()
    assert alert.state == AlertState.OPEN
