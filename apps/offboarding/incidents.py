"""Incidents: a record per suspected breach or misdirected data, with the 72-hour clock.

Recording one starts the clock and alerts; the beat check warns as the deadline nears and
raises the alert to critical once it has passed, until the authority is recorded as told
(or the incident is closed as not notifiable). Every change is audited; incidents appear in
the vendor's control pack.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from apps.alerts.alerts import raise_alert
from apps.alerts.models import Severity
from apps.audit import audit
from apps.audit.models import FieldClass
from apps.offboarding.models import Incident, IncidentKind, IncidentStatus
from apps.vendors.models import Integration, Vendor

DEFAULT_NOTIFY_HOURS = 72
# The clock alert turns from "recorded" to "due soon" this many hours before the deadline.
WARN_HOURS_BEFORE = 24

ALERT_INCIDENT = "offboarding.incident_clock"

ERROR_TITLE_REQUIRED = "Say what happened."
ERROR_FUTURE_DISCOVERY = "The discovery time is in the future."
ERROR_UNKNOWN_CLASS = "Unknown class of data {name!r}."
ERROR_WRONG_VENDOR = "Integration {name} does not belong to vendor {vendor}."
ERROR_CLOSED = "This incident is closed."
ERROR_RESOLUTION_REQUIRED = "Say how the incident was resolved."


class IncidentError(ValueError):
    """An incident change that is not allowed; the message says why."""


def notify_hours() -> int:
    return int(getattr(settings, "INTERCHANGE_INCIDENT_NOTIFY_HOURS", DEFAULT_NOTIFY_HOURS))


def notify_deadline(incident: Incident) -> dt.datetime:
    return incident.discovered_at + dt.timedelta(hours=notify_hours())


def hours_left(incident: Incident, now: dt.datetime | None = None) -> float:
    """Hours until the notification deadline (negative once it has passed)."""
    return (notify_deadline(incident) - (now or timezone.now())).total_seconds() / 3600


def clock_running(incident: Incident) -> bool:
    return incident.status == IncidentStatus.OPEN and incident.authority_notified_at is None


def _alert(incident: Incident, *, now: dt.datetime) -> None:
    left = hours_left(incident, now)
    if left < 0:
        severity, state = Severity.CRITICAL, f"notification OVERDUE by {-left:.0f} h"
    elif left <= WARN_HOURS_BEFORE:
        severity, state = Severity.WARNING, f"notification due in {left:.0f} h"
    else:
        severity, state = Severity.WARNING, f"{notify_hours()}-hour clock running"
    raise_alert(
        rule=ALERT_INCIDENT, severity=severity,
        subject=f"{incident.vendor.name}: {incident.get_kind_display().lower()}; {state}",
        dedup_key=f"{ALERT_INCIDENT}:{incident.pk}",
        details={"incident_id": incident.pk, "vendor_id": incident.vendor_id,
                 "deadline": notify_deadline(incident).isoformat(),
                 "hours_left": round(left, 1)},
    )


@transaction.atomic
def incident_record(  # type: ignore[no-untyped-def]
    *, vendor: Vendor, actor, kind: str, title: str, discovered_at: dt.datetime,
    data_classes: list[str], description: str = "", integration: Integration | None = None,
    people_affected: int | None = None,
) -> Incident:
    """Record an incident and start its notification clock (alerted at once)."""
    title = (title or "").strip()
    if not title:
        raise IncidentError(ERROR_TITLE_REQUIRED)
    now = timezone.now()
    if discovered_at > now + dt.timedelta(minutes=5):
        raise IncidentError(ERROR_FUTURE_DISCOVERY)
    for name in data_classes:
        if name not in FieldClass.values:
            raise IncidentError(ERROR_UNKNOWN_CLASS.format(name=name))
    if integration is not None and integration.vendor_id != vendor.pk:
        raise IncidentError(ERROR_WRONG_VENDOR.format(name=integration.name, vendor=vendor))
    incident = Incident(
        vendor=vendor, integration=integration, kind=IncidentKind(kind), title=title,
        description=description, discovered_at=discovered_at, data_classes=list(data_classes),
        people_affected=people_affected, reported_by=actor,
    )
    if actor is not None:
        incident._history_user = actor  # type: ignore[attr-defined]
    incident.save()
    audit.record(actor=actor, action="offboarding.incident_recorded", target=incident,
                 details={"vendor": vendor.name, "vendor_id": vendor.pk, "kind": kind,
                          "discovered_at": discovered_at.isoformat(),
                          "data_classes": list(data_classes),
                          "deadline": notify_deadline(incident).isoformat()})
    _alert(incident, now=now)
    return incident


@transaction.atomic
def incident_notified(  # type: ignore[no-untyped-def]
    *, incident: Incident, actor, notified_at: dt.datetime, notified: str
) -> Incident:
    """Record that the authority (and whoever else) was told: the clock stops."""
    incident = Incident.objects.select_for_update().select_related("vendor").get(pk=incident.pk)
    if incident.status == IncidentStatus.CLOSED:
        raise IncidentError(ERROR_CLOSED)
    incident.authority_notified_at = notified_at
    incident.notified = (notified or "").strip()
    if actor is not None:
        incident._history_user = actor  # type: ignore[attr-defined]
    incident.save()
    late = notified_at > notify_deadline(incident)
    audit.record(actor=actor, action="offboarding.incident_notified", target=incident,
                 details={"vendor": incident.vendor.name, "notified_at": notified_at.isoformat(),
                          "within_deadline": not late, "notified": incident.notified})
    return incident


@transaction.atomic
def incident_close(*, incident: Incident, actor, resolution: str) -> Incident:  # type: ignore[no-untyped-def]
    resolution = (resolution or "").strip()
    if not resolution:
        raise IncidentError(ERROR_RESOLUTION_REQUIRED)
    incident = Incident.objects.select_for_update().select_related("vendor").get(pk=incident.pk)
    if incident.status == IncidentStatus.CLOSED:
        raise IncidentError(ERROR_CLOSED)
    incident.status = IncidentStatus.CLOSED
    incident.closed_at = timezone.now()
    incident.resolution = resolution
    if actor is not None:
        incident._history_user = actor  # type: ignore[attr-defined]
    incident.save()
    audit.record(actor=actor, action="offboarding.incident_closed", target=incident,
                 details={"vendor": incident.vendor.name, "resolution": resolution,
                          "authority_notified": incident.authority_notified_at is not None})
    return incident


def incidents_clock_check(*, now: dt.datetime | None = None) -> list[int]:
    """Beat: re-raise the clock alert of every incident whose clock still runs (a warning
    near the deadline, critical once past it). Returns the incident ids alerted."""
    now = now or timezone.now()
    running = Incident.objects.select_related("vendor").filter(
        status=IncidentStatus.OPEN, authority_notified_at__isnull=True,
        discovered_at__lte=now - dt.timedelta(hours=notify_hours() - WARN_HOURS_BEFORE),
    )
    alerted = []
    for incident in running:
        _alert(incident, now=now)
        alerted.append(incident.pk)
    return alerted


def incident_summary(incident: Incident, now: dt.datetime | None = None) -> dict[str, Any]:
    """What the control pack says about an incident: never who was affected."""
    return {
        "id": incident.pk, "kind": incident.kind, "title": incident.title,
        "integration": incident.integration.name if incident.integration else None,
        "discovered_at": incident.discovered_at, "recorded_at": incident.recorded_at,
        "data_classes": incident.data_classes, "people_affected": incident.people_affected,
        "notification_deadline": notify_deadline(incident),
        "authority_notified_at": incident.authority_notified_at,
        "notified_within_deadline": (
            incident.authority_notified_at <= notify_deadline(incident)
            if incident.authority_notified_at else None),
        "who_was_told": incident.notified, "status": incident.status,
        "closed_at": incident.closed_at, "resolution": incident.resolution,
    }
