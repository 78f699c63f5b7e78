"""Writes of the audit app besides the chain: access records and the disclosure ledger.

Both sit on every channel's hot path, so each call is a fixed number of set-based statements,
never a statement per pupil. (The audit chain's own writes live in apps/audit/audit.py.)
"""

from __future__ import annotations

import datetime as dt
import re
from collections import defaultdict
from collections.abc import Iterable, Sequence

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from apps.audit import sql
from apps.audit.models import Channel, field_classes_mask

ERROR_UNKNOWN_CHANNEL = "unknown channel {!r}; expected one of {}"
ERROR_NO_FIELD_CLASSES = "a disclosure names at least one field class"
ERROR_BAD_SOURCED_ID = "user sourcedIds must be non-empty strings"

PRUNE_BATCH_SIZE = 10_000
_ENDPOINT_MAX = 200
_CLIENT_ID_MAX = 100
# An endpoint is a route, not a URL with a query string: keep ids in the path aggregable by
# passing the route pattern (e.g. "/ims/oneroster/rostering/v1p2/users/{id}").
_QUERY = re.compile(r"\?.*$")


def _check_channel(channel: str) -> None:
    if channel not in Channel.values:
        raise ValueError(ERROR_UNKNOWN_CHANNEL.format(channel, ", ".join(Channel.values)))


# --- access records -----------------------------------------------------------------------------


def access_record(
    *,
    integration_id: int | None,
    channel: str,
    endpoint: str,
    status_code: int,
    records: int,
    duration_ms: int,
    client_id: str = "",
) -> None:
    """Record one request or run served: a recent-log row plus the hour's aggregate, one statement.

    Call it once per request or run, at its end. ``endpoint`` should be the route pattern, not
    the concrete URL, so the hourly aggregate stays small. Status 400 and above counts as an
    error.
    """
    _check_channel(channel)
    at = timezone.now()
    with connection.cursor() as cursor:
        cursor.execute(
            sql.ACCESS_RECORD_AND_AGGREGATE,
            {
                "at": at,
                "hour": at.replace(minute=0, second=0, microsecond=0),
                "integration_id": integration_id,
                "channel": channel,
                "endpoint": _QUERY.sub("", endpoint)[:_ENDPOINT_MAX],
                "status_code": status_code,
                "error": 1 if status_code >= 400 else 0,
                "records": max(records, 0),
                "duration_ms": max(duration_ms, 0),
                "client_id": client_id[:_CLIENT_ID_MAX],
            },
        )


def access_log_prune(*, now: dt.datetime | None = None, retention_days: int | None = None) -> int:
    """Delete recent-log rows older than the retention, in bounded batches; return how many.

    The hourly aggregates are kept: they hold no per-request detail.
    """
    days = (
        settings.INTERCHANGE_ACCESS_LOG_RETENTION_DAYS if retention_days is None else retention_days
    )
    cutoff = (now or timezone.now()) - dt.timedelta(days=days)
    deleted = 0
    while True:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(
                sql.ACCESS_LOG_PRUNE_BATCH, {"cutoff": cutoff, "batch": PRUNE_BATCH_SIZE}
            )
            batch = cursor.rowcount
        deleted += batch
        if batch < PRUNE_BATCH_SIZE:
            return deleted


# --- disclosure ledger --------------------------------------------------------------------------


def disclosures_record(
    *,
    vendor_id: int,
    integration_id: int,
    channel: str,
    field_classes: Iterable[str],
    user_sourced_ids: Sequence[str],
    day: dt.date | None = None,
) -> None:
    """Record that these pupils' data of these field classes went to an integration on a day.

    Two set-based statements whatever the number of pupils: runs that ended the day before are
    extended, pupils without a run covering the day start one. Idempotent (recording the same
    pupils twice in a day changes nothing) and safe under concurrent writers: at most one run
    per pupil and key covers a day.
    """
    _check_channel(channel)
    mask = field_classes_mask(field_classes)
    if not mask:
        raise ValueError(ERROR_NO_FIELD_CLASSES)
    if any(not isinstance(sid, str) or not sid for sid in user_sourced_ids):
        raise ValueError(ERROR_BAD_SOURCED_ID)
    ids = sorted(set(user_sourced_ids))  # one order for every writer: no deadlocks
    if not ids:
        return
    params = {
        "ids": ids,
        "vendor_id": vendor_id,
        "integration_id": integration_id,
        "channel": channel,
        "field_classes": mask,
        "day": day or timezone.localdate(),
    }
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(sql.DISCLOSURE_EXTEND, params)
        cursor.execute(sql.DISCLOSURE_START, params)


class DisclosureBuffer:
    """Collects the pupils one request or run discloses, then writes them in one go.

    A paged REST listing or a CSV bundle adds ids as it renders; ``flush()`` (or leaving the
    ``with`` block without an error) records each field-class set once::

        with DisclosureBuffer(vendor_id=v, integration_id=i, channel=Channel.ONEROSTER_REST) as b:
            b.add(field_classes=["identifier", "directory"], user_sourced_ids=page_ids)
    """

    def __init__(
        self, *, vendor_id: int, integration_id: int, channel: str, day: dt.date | None = None
    ) -> None:
        _check_channel(channel)
        self.vendor_id = vendor_id
        self.integration_id = integration_id
        self.channel = channel
        self.day = day
        self._pending: dict[frozenset[str], set[str]] = defaultdict(set)

    def add(self, *, field_classes: Iterable[str], user_sourced_ids: Iterable[str]) -> None:
        classes = frozenset(field_classes)
        field_classes_mask(classes)  # refuse unknown classes now, not at the end of the request
        self._pending[classes].update(user_sourced_ids)

    def __len__(self) -> int:
        return sum(len(ids) for ids in self._pending.values())

    def flush(self) -> None:
        pending, self._pending = self._pending, defaultdict(set)
        for classes, ids in pending.items():
            disclosures_record(
                vendor_id=self.vendor_id,
                integration_id=self.integration_id,
                channel=self.channel,
                field_classes=classes,
                user_sourced_ids=list(ids),
                day=self.day,
            )

    def __enter__(self) -> DisclosureBuffer:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:  # type: ignore[no-untyped-def]
        # Data that was not sent (the request failed) was not disclosed.
        if exc_type is None:
            self.flush()
