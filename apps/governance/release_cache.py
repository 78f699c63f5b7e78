"""A process-local cache of releases that can never serve a stale one.

Building a release costs a handful of queries and ~10 ms of ORM work, and every REST page,
launch, NRPS page and grade write needs one. Yet rule 3 says a governance lever acts on the
very next request. Both hold because a cached release is used only while:

* the release generations (``ReleaseGeneration``, stamped by database triggers on every
  write to a table the release reads, in the writer's transaction) are exactly those it was
  built under: read with ONE indexed query on every call; and
* the instant asked about lies in the window in which no time-bound lever of the
  integration changes state: the last approval, expiry, withdrawal, exclusion start, end
  or lift, or override start or end at or before the build, up to the next one after it.

Anything else rebuilds. Generation values come from a sequence and never repeat, so a
release built inside a transaction that is later rolled back is never matched again.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from django.db import connection

# Enough for every integration of a large hub; least recently used is dropped first.
MAX_ENTRIES = 512

GENERATIONS_SQL = (
    "SELECT value FROM governance_releasegeneration "
    "WHERE name IN ('governance', 'orgs') ORDER BY name"
)

# The same values as one array column, for a statement a request runs anyway (its token
# lookup) to carry, saving the request a round trip: ``generations_of`` reads it.
GENERATIONS_COLUMN_SQL = (
    "(SELECT array_agg(value ORDER BY name) FROM governance_releasegeneration "
    "WHERE name IN ('governance', 'orgs'))"
)

# The instants at which one integration's release can change without any write.
BOUNDARIES_SQL = """
SELECT max(t) FILTER (WHERE t <= %(at)s), min(t) FILTER (WHERE t > %(at)s)
FROM (
    SELECT unnest(ARRAY[approved_at, expires_at, withdrawn_at]) AS t
    FROM governance_scoperequest WHERE integration_id = %(integration)s
  UNION ALL
    SELECT unnest(ARRAY[starts_at, ends_at, lifted_at])
    FROM governance_exclusion
    WHERE scope = 'all' OR (scope = 'vendor' AND vendor_id = %(vendor)s)
       OR (scope = 'integration' AND integration_id = %(integration)s)
  UNION ALL
    SELECT unnest(ARRAY[starts_at, ends_at, ended_at]) FROM governance_override
) instants
WHERE t IS NOT NULL
"""

Generations = tuple[int, ...]


@dataclass(frozen=True)
class Window:
    """The instants ``[starts, ends)`` over which a release cannot change by time alone."""

    starts: dt.datetime | None
    ends: dt.datetime | None

    def holds(self, at: dt.datetime) -> bool:
        return (self.starts is None or self.starts <= at) and (self.ends is None or at < self.ends)


@dataclass(frozen=True)
class _Entry:
    generations: Generations
    window: Window
    release: Any


_entries: OrderedDict[int, _Entry] = OrderedDict()
_lock = threading.Lock()


def generations() -> Generations | None:
    """The current generations, or None when they are missing (a flushed database): then
    nothing is cached."""
    with connection.cursor() as cursor:
        cursor.execute(GENERATIONS_SQL)
        values = tuple(row[0] for row in cursor.fetchall())
    return values if len(values) == 2 else None


def generations_of(column: list[int] | None) -> Generations | None:
    """The generations read as ``GENERATIONS_COLUMN_SQL``, as ``generations()`` gives them."""
    values = tuple(column or ())
    return values if len(values) == 2 else None


def window_for(*, integration_id: int, vendor_id: int, at: dt.datetime) -> Window:
    with connection.cursor() as cursor:
        cursor.execute(
            BOUNDARIES_SQL, {"at": at, "integration": integration_id, "vendor": vendor_id}
        )
        starts, ends = cursor.fetchone()
    return Window(starts=starts, ends=ends)


def cached(integration_id: int, current: Generations, at: dt.datetime) -> Any | None:
    """The release cached for ``integration_id`` if it is still exactly right at ``at``."""
    with _lock:
        entry = _entries.get(integration_id)
        if entry is None or entry.generations != current or not entry.window.holds(at):
            return None
        _entries.move_to_end(integration_id)
        return entry.release


def store(integration_id: int, current: Generations, window: Window, release: Any) -> None:
    with _lock:
        _entries[integration_id] = _Entry(generations=current, window=window, release=release)
        _entries.move_to_end(integration_id)
        while len(_entries) > MAX_ENTRIES:
            _entries.popitem(last=False)


def clear() -> None:
    """Forget every cached release (tests that swap databases; never needed for freshness)."""
    with _lock:
        _entries.clear()
