"""Incidents: the 72-hour notification clock is shown and alerted, and incidents appear in the
vendor's control pack (counts and classes, never who)."""

from __future__ import annotations

import datetime as dt
import io
import json
import zipfile

import pytest
from django.test import Client
from django.utils import timezone

from apps.alerts.models import Alert, Severity
from apps.offboarding import incidents
from apps.offboarding.models import Incident, IncidentKind, IncidentStatus
from apps.offboarding.packs import control_pack_build

pytestmark = pytest.mark.django_db


def record(acme, user, *, hours_ago: float = 1):  # type: ignore[no-untyped-def]
    return incidents.incident_record(
        vendor=acme.vendor, actor=user, kind=IncidentKind.MISDIRECTED_DATA,
        title="Class list emailed to the wrong school", integration=acme.csv,
        discovered_at=timezone.now() - dt.timedelta(hours=hours_ago),
        data_classes=["identifier", "directory"], people_affected=28)


def test_recording_an_incident_starts_the_clock_and_alerts(acme, governance_user):
    incident = record(acme, governance_user)
    alert = Alert.objects.get(rule=incidents.ALERT_INCIDENT)
    assert "72-hour clock running" in alert.subject and acme.vendor.name in alert.subject
    assert incidents.notify_deadline(incident) == incident.discovered_at + dt.timedelta(hours=72)


def test_the_clock_warns_near_the_deadline_and_turns_critical_after_it(acme, governance_user):
    incident = record(acme, governance_user, hours_ago=1)
    assert incidents.incidents_clock_check() == []  # 71 h left: nothing new to say
    near = incident.discovered_at + dt.timedelta(hours=60)
    assert incidents.incidents_clock_check(now=near) == [incident.pk]
    alert = Alert.objects.get(rule=incidents.ALERT_INCIDENT)
    assert "notification due in 12 h" in alert.subject and alert.severity == Severity.WARNING
    late = incident.discovered_at + dt.timedelta(hours=75)
    incidents.incidents_clock_check(now=late)
    alert.refresh_from_db()
    assert "OVERDUE by 3 h" in alert.subject and alert.severity == Severity.CRITICAL


def test_telling_the_authority_stops_the_clock(acme, governance_user):
    incident = record(acme, governance_user, hours_ago=70)
    incidents.incident_notified(incident=incident, actor=governance_user,
                                notified_at=timezone.now(), notified="ICO online form; DPO")
    assert incidents.incidents_clock_check(
        now=incident.discovered_at + dt.timedelta(hours=100)) == []


def test_bad_input_is_refused_with_a_reason(acme, governance_user):
    with pytest.raises(incidents.IncidentError, match="Say what happened"):
        incidents.incident_record(vendor=acme.vendor, actor=governance_user, kind="other",
                                  title=" ", discovered_at=timezone.now(), data_classes=[])
    with pytest.raises(incidents.IncidentError, match="Unknown class of data 'shoe_size'"):
        incidents.incident_record(vendor=acme.vendor, actor=governance_user, kind="other",
                                  title="x", discovered_at=timezone.now(),
                                  data_classes=["shoe_size"])
    assert not Incident.objects.exists()


def test_incidents_appear_in_the_vendors_pack(acme, governance_user):
    incident = record(acme, governance_user, hours_ago=80)
    incidents.incident_notified(incident=incident, actor=governance_user,
                                notified_at=timezone.now(), notified="ICO")
    built = control_pack_build(vendor=acme.vendor, actor=governance_user)
    with zipfile.ZipFile(io.BytesIO(built.content)) as archive:
        listed = json.loads(archive.read("incidents.json"))
    assert [(i["title"], i["people_affected"], i["notified_within_deadline"])
            for i in listed] == [("Class list emailed to the wrong school", 28, False)]
    assert "incidents.json" in built.manifest["files"]


def test_governance_records_an_incident_in_the_admin_and_sees_the_clock(acme, governance_user,
                                                                        auditor):
    client = Client()
    client.force_login(governance_user)
    now = timezone.localtime()
    response = client.post("/admin/offboarding/incident/add/", {
        "vendor": acme.vendor.pk, "kind": IncidentKind.SUSPECTED_BREACH,
        "title": "Vendor reports credential stuffing", "description": "",
        "discovered_at_0": f"{now:%Y-%m-%d}", "discovered_at_1": f"{now:%H:%M:%S}",
        "data_classes": ["identifier"], "people_affected": "",
    })
    assert response.status_code == 302, response.content
    incident = Incident.objects.get()
    assert incident.reported_by == governance_user and incident.status == IncidentStatus.OPEN
    assert b"h left to notify" in client.get("/admin/offboarding/incident/").content
    # an auditor reads it and changes nothing
    reader = Client()
    reader.force_login(auditor)
    assert reader.get("/admin/offboarding/incident/").status_code == 200
    assert reader.post(f"/admin/offboarding/incident/{incident.pk}/change/",
                       {"resolution": "x", "close": "on"}).status_code == 403
