"""Generated history for the monitoring tests: roster versions with their rows, and access
aggregates as the spokes leave them in the base layer.

Roster rows are inserted in bulk straight into the canonical tables with their validity
range (the import pipeline has its own tests); access history goes into ``AccessHourly``
exactly as ``access_record`` aggregates it, so a rule sees weeks of traffic in one insert.
"""

from __future__ import annotations

import datetime as dt
import itertools

from django.utils import timezone

from apps.audit.models import AccessHourly
from apps.roster.models import Enrollment, Role, RosterVersion, Source, User

_ids = itertools.count(1)


def source() -> Source:
    return Source.objects.get_or_create(name="sis-monitoring")[0]


def version(number: int, *, added: int = 0, updated: int = 0, deleted: int = 0,
            by_entity: dict | None = None) -> RosterVersion:
    return RosterVersion.objects.create(
        number=number, source=source(), added=added, updated=updated, deleted=deleted,
        by_entity=by_entity or {},
    )


def people(count: int, *, role: str = "student", org: str = "school-a", since: int = 1,
           until: int | None = None, enrol_in: str | None = None) -> list[str]:
    """``count`` users with a primary role at ``org``, part of versions since..until-1."""
    src = source()
    ids = [f"{role}-{next(_ids)}" for _ in range(count)]
    common = dict(source=src, content_hash=b"t", valid_from_version=since, valid_to_version=until)
    User.objects.bulk_create([
        User(sourced_id=sid, enabled_user=True, username=sid, given_name="G", family_name="F",
             **common) for sid in ids
    ])
    Role.objects.bulk_create([
        Role(sourced_id=f"role-{sid}", user_sourced_id=sid, role_type="primary", role=role,
             org_sourced_id=org, **common) for sid in ids
    ])
    if enrol_in:
        Enrollment.objects.bulk_create([
            Enrollment(sourced_id=f"enr-{sid}", class_sourced_id=enrol_in, school_sourced_id=org,
                       user_sourced_id=sid, role=role, **common) for sid in ids
        ])
    return ids


def hour(at: dt.datetime) -> dt.datetime:
    return at.replace(minute=0, second=0, microsecond=0)


def traffic(integration_id: int | None, *, hours: list[dt.datetime], channel: str,
            endpoint: str, requests: int, records: int = 0, errors: int = 0) -> None:
    """The same hourly aggregate for each hour given (one row per hour)."""
    AccessHourly.objects.bulk_create([
        AccessHourly(integration_id=integration_id, channel=channel, endpoint=endpoint,
                     hour=hour(h), requests=requests, errors=errors, records=records)
        for h in hours
    ])


def daily_at(hour_of_day: int, *, days: int, now: dt.datetime | None = None,
             skip_today: bool = True) -> list[dt.datetime]:
    """The given hour of each of the last ``days`` days (before today by default)."""
    now = now or timezone.now()
    first = 1 if skip_today else 0
    return [
        (now - dt.timedelta(days=d)).replace(hour=hour_of_day, minute=0, second=0, microsecond=0)
        for d in range(first, days + first)
    ]
