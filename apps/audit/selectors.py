"""Reads of the audit app that carry rules: disclosure history and exact distinct counts."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from django.db import connection

from apps.audit import sql
from apps.audit.models import Disclosure, field_classes_from_mask, field_classes_mask

ERROR_BAD_PERIOD = "period must be one of day, week, month; got {!r}"
_PERIOD_STEP = {"day": "1 day", "week": "1 week", "month": "1 month"}


@dataclass(frozen=True)
class DisclosureRun:
    vendor_id: int
    integration_id: int
    channel: str
    field_classes: list[str]
    first_day: dt.date
    last_day: dt.date


def disclosure_history_for_user(sourced_id: str) -> list[DisclosureRun]:
    """Everything disclosed about one pupil, oldest first, adjacent runs of a key merged."""
    rows = (
        Disclosure.objects.filter(user_sourced_id=sourced_id)
        .order_by("integration_id", "channel", "field_classes", "first_day")
        .values_list(
            "vendor_id", "integration_id", "channel", "field_classes", "first_day", "last_day"
        )
    )
    runs: list[list] = []
    for vendor_id, integration_id, channel, mask, first_day, last_day in rows:
        last = runs[-1] if runs else None
        if (
            last is not None
            and last[:4] == [vendor_id, integration_id, channel, mask]
            and first_day <= last[5] + dt.timedelta(days=1)
        ):
            last[5] = max(last[5], last_day)
        else:
            runs.append([vendor_id, integration_id, channel, mask, first_day, last_day])
    history = [
        DisclosureRun(v, i, c, field_classes_from_mask(m), first, last)
        for v, i, c, m, first, last in runs
    ]
    return sorted(history, key=lambda run: (run.first_day, run.integration_id, run.channel))


def _filters(
    *,
    vendor_id: int | None,
    integration_id: int | None,
    channel: str | None,
    field_class: str | None,
) -> tuple[str, dict]:
    clauses, params = [], {}
    if vendor_id is not None:
        clauses.append("AND d.vendor_id = %(vendor_id)s")
        params["vendor_id"] = vendor_id
    if integration_id is not None:
        clauses.append("AND d.integration_id = %(integration_id)s")
        params["integration_id"] = integration_id
    if channel is not None:
        clauses.append("AND d.channel = %(channel)s")
        params["channel"] = channel
    if field_class is not None:
        clauses.append("AND d.field_classes & %(field_bit)s <> 0")
        params["field_bit"] = field_classes_mask([field_class])
    return " ".join(clauses), params


def disclosure_distinct_users(
    *,
    start: dt.date,
    end: dt.date,
    vendor_id: int | None = None,
    integration_id: int | None = None,
    channel: str | None = None,
    field_class: str | None = None,
) -> int:
    """How many distinct pupils were disclosed on any day in [start, end], exactly."""
    filters, params = _filters(
        vendor_id=vendor_id, integration_id=integration_id, channel=channel, field_class=field_class
    )
    with connection.cursor() as cursor:
        cursor.execute(
            sql.DISCLOSURE_DISTINCT.format(filters=filters),
            {"start": start, "end": end, **params},
        )
        return cursor.fetchone()[0]


def disclosure_distinct_users_per_period(
    *,
    start: dt.date,
    end: dt.date,
    period: str = "day",
    vendor_id: int | None = None,
    integration_id: int | None = None,
    channel: str | None = None,
    field_class: str | None = None,
) -> list[tuple[dt.date, int]]:
    """Exact distinct pupils per day, week (from Monday) or month, clipped to [start, end].

    Each period is counted on its own, so a pupil disclosed in two periods counts in both.
    """
    if period not in _PERIOD_STEP:
        raise ValueError(ERROR_BAD_PERIOD.format(period))
    filters, params = _filters(
        vendor_id=vendor_id, integration_id=integration_id, channel=channel, field_class=field_class
    )
    with connection.cursor() as cursor:
        cursor.execute(
            sql.DISCLOSURE_DISTINCT_PER_PERIOD.format(filters=filters),
            {"start": start, "end": end, "unit": period, "step": _PERIOD_STEP[period], **params},
        )
        return [(max(row[0], start), row[1]) for row in cursor.fetchall()]
