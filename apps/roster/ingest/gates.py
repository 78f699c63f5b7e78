"""Quality gates: hold an import whose changes are out of proportion to the baseline.

The baseline is the source's current state (its last applied version), counted per
org, entity and kind (type or role); the import's effect on each count comes from
the change tables of ``apply.diff_compute``. Each entity is also counted across
the whole source (org ``*``), so a mass addition through brand-new orgs trips too.

The baseline comes from ``GateBaseline`` when it was stored at the source's latest version
(each gated import stores the counts it leaves); otherwise it is counted afresh.

A count trips when it changes by more than ``max_change_percent`` of the baseline or
would lose more than ``max_delete_percent`` of it, and the change is also at least
``min_records`` (so ordinary changes at a small school pass). Learners (role
``student``) doubling always trips. A key with no baseline (a new org) has nothing
to compare with; the first import of a source sets the baseline and is not gated.
"""

# SQL here is composed from identifiers of the schema registry (never from input);
# values are bound parameters or int() casts.
# ruff: noqa: S608

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from decimal import Decimal

from django.db import connection

from apps.roster.ingest.apply import GATE_KEYS, ChangeSet, change_table
from apps.roster.ingest.relay import view_definition
from apps.roster.ingest.staging import TABLES

RULE_CHANGE = "change"
RULE_DELETE = "delete"
RULE_LEARNERS_DOUBLE = "learners_double"
ALL_ORGS = "*"
LEARNER = "student"

LEARNER_ENTITIES = frozenset({"roles", "enrollments"})


@dataclass(frozen=True)
class Thresholds:
    max_change_percent: Decimal = Decimal(10)
    max_delete_percent: Decimal = Decimal(5)
    min_records: int = 25
    hold_when_learners_double: bool = True


@dataclass(frozen=True)
class Trip:
    rule: str
    entity: str
    org: str
    kind: str
    baseline: int
    proposed: int
    deleted: int

    def as_dict(self) -> dict:
        return asdict(self)

    def describe(self) -> str:
        where = "all orgs" if self.org == ALL_ORGS else f"org {self.org or '-'}"
        what = f"{self.entity}{'/' + self.kind if self.kind else ''} at {where}"
        if self.rule == RULE_LEARNERS_DOUBLE:
            return f"learners double: {what} {self.baseline} -> {self.proposed}"
        if self.rule == RULE_DELETE:
            return f"{self.deleted} of {self.baseline} {what} would be deleted"
        return f"{what} changes {self.baseline} -> {self.proposed}"


Counts = dict[tuple[str, str], int]


@dataclass(frozen=True)
class GateCheck:
    trips: list[Trip]
    # every entity's counts once the change set is applied (to store as the next
    # baseline); None when it loads a kind of file the source never had (counted afresh)
    counts_after: dict[str, Counts] | None


def _counts(sql: str) -> dict[tuple[str, str], int]:
    with connection.cursor() as cursor:
        cursor.execute(sql)
        return {(org or "", kind or ""): n for org, kind, n in cursor.fetchall()}


def source_counts(source_id: int, entities: Iterable[str] = tuple(GATE_KEYS)) -> dict[str, Counts]:
    """The source's exact current counts per (org, kind) of ``entities`` (every one by
    default): what a baseline stored for the first time holds."""
    return _grouped_counts({
        entity: (f"{TABLES[entity].table} r WHERE r.source_id = {int(source_id)} "
                 f"AND r.valid_to_version IS NULL")
        for entity in entities
    })


class FirstImportCounts:
    """``source_counts`` after a source's first import, counted while it is written.

    A first load writes every staged row but those marked ``tobedeleted``, as the staging
    view types and maps it, so its staged file gives the same counts. Files staged where
    another connection can read them (the large ones, ``views``) are counted there
    (``staged``, see ``first_import.py``); ``complete`` counts the rest here.
    """

    def __init__(self, views: dict[str, str], here: list[str]) -> None:
        self.views, self.here = views, here

    @classmethod
    def of(cls, changes: ChangeSet) -> FirstImportCounts | None:
        """None unless ``changes`` is all first loads."""
        views, here = {}, []
        for entity, change in changes.by_entity.items():
            if not change.first_load:
                return None
            if not change.added:
                continue
            view = view_definition(entity)
            if view is None:
                here.append(entity)
            else:
                views[entity] = view
        return cls(views, here)

    def staged(self) -> dict[str, Counts]:
        """The counts of the files in ``views``, on a connection that has their views."""
        return _grouped_counts({
            entity: f"{TABLES[entity].staging} r WHERE r.status IS DISTINCT FROM 'tobedeleted'"
            for entity in self.views
        })

    def complete(self, source_id: int, counted: dict[str, Counts] | None) -> dict[str, Counts]:
        """The whole baseline, given what ``staged`` returned (None: it did not run)."""
        if counted is None:
            return source_counts(source_id)
        return {**counted, **source_counts(source_id, entities=self.here)}


def _grouped_counts(rows_of: dict[str, str]) -> dict[str, Counts]:
    """Per entity, the counts by its gate keys of the rows ``FROM`` its ``rows_of``
    clause (table, alias ``r`` and condition); entities with no rows left out."""
    counts: dict[str, Counts] = {}
    for entity, rows in rows_of.items():
        org, kind = GATE_KEYS[entity]
        found = _counts(f"SELECT {org}, {kind}, count(*) FROM {rows} GROUP BY 1, 2")
        if found:
            counts[entity] = found
    return counts


STORED_BASELINE_SQL = """
SELECT b.counts FROM roster_gatebaseline b
WHERE b.source_id = %(source)s AND b.version = (
    SELECT max(v.number) FROM roster_rosterversion v WHERE v.source_id = %(source)s)
"""


def stored_baseline(source_id: int) -> dict[str, Counts] | None:
    """The source's stored baseline if it was stored at its latest version, else None."""
    with connection.cursor() as cursor:
        cursor.execute(STORED_BASELINE_SQL, {"source": int(source_id)})
        row = cursor.fetchone()
    if row is None:
        return None
    return {entity: {(org, kind): n for org, kind, n in keyed}
            for entity, keyed in json.loads(row[0]).items()}


def baseline_store(source_id: int, *, version: int, counts: dict[str, Counts]) -> None:
    """Keep ``counts`` as the source's baseline at ``version`` (in the caller's
    transaction: the version and its baseline commit together)."""
    from apps.roster.models import GateBaseline

    GateBaseline.objects.update_or_create(
        source_id=source_id,
        defaults={"version": version, "counts": {
            entity: sorted([org, kind, n] for (org, kind), n in keyed.items())
            for entity, keyed in counts.items() if keyed
        }},
    )


def gates_evaluate(
    *, source_id: int, changes: ChangeSet, thresholds: Thresholds
) -> list[Trip]:
    """The trips this change set would cause against the source's baseline."""
    return gates_check(source_id=source_id, changes=changes, thresholds=thresholds).trips


def gates_check(*, source_id: int, changes: ChangeSet, thresholds: Thresholds) -> GateCheck:
    """The trips this change set would cause against the source's baseline, and the
    counts it would leave (exact when the baseline was stored)."""
    # the stored baseline, or (after a rollback or an approval) the source counted afresh
    baselines = stored_baseline(source_id)
    if baselines is None:
        baselines = source_counts(source_id)
    after: dict[str, Counts] | None = dict(baselines)
    trips: list[Trip] = []
    minimum = thresholds.min_records
    for entity, change in changes.by_entity.items():
        if change.first_load:
            after = None  # a new kind of file: counted afresh once applied
        if not change.total or change.first_load:
            continue
        t = TABLES[entity]
        org, kind = GATE_KEYS[entity]
        chg = change_table(entity)
        # the rows leaving (updated or deleted) and those deleted, in one pass
        removed: dict[tuple[str, str], int] = {}
        deleted: dict[tuple[str, str], int] = {}
        with connection.cursor() as cursor:
            # the leaving rows' keys came with the diff (apply.GATE_KEYS)
            cursor.execute(
                f"SELECT d.gate_org, d.gate_kind, count(*), count(*) FILTER (WHERE d.op = 'd') "
                f"FROM {chg} d WHERE d.op IN ('u', 'd') GROUP BY 1, 2"
            )
            for org_value, kind_value, leaving, gone in cursor.fetchall():
                key = (org_value or "", kind_value or "")
                removed[key] = leaving
                if gone:
                    deleted[key] = gone
        added = _counts(
            f"SELECT {org}, {kind}, count(*) FROM {t.staging} r JOIN {chg} d ON d.n = r.n "
            f"WHERE d.op IN ('a', 'u') GROUP BY 1, 2"
        )
        baseline = dict(baselines.get(entity, {}))
        keys = set(baseline) | set(added) | set(removed)
        if after is not None:
            after[entity] = {
                key: n for key in keys
                if (n := baseline.get(key, 0) - removed.get(key, 0) + added.get(key, 0)) > 0
            }
        # the whole source, per kind
        for mapping in (baseline, removed, deleted, added):
            rollup: dict[tuple[str, str], int] = {}
            for (_, k), n in mapping.items():
                rollup[(ALL_ORGS, k)] = rollup.get((ALL_ORGS, k), 0) + n
            mapping.update(rollup)
        keys |= {(ALL_ORGS, k) for _, k in keys}
        for key in sorted(keys):
            base = baseline.get(key, 0)
            if base == 0:
                continue  # a new org or kind sets its own baseline
            proposed = base - removed.get(key, 0) + added.get(key, 0)
            gone = deleted.get(key, 0)
            delta = abs(proposed - base)
            trip = None
            if (
                thresholds.hold_when_learners_double
                and entity in LEARNER_ENTITIES
                and key[1] == LEARNER
                and proposed >= 2 * base
            ):
                trip = RULE_LEARNERS_DOUBLE
            elif delta >= minimum and delta * 100 > base * thresholds.max_change_percent:
                trip = RULE_CHANGE
            elif gone >= minimum and gone * 100 > base * thresholds.max_delete_percent:
                trip = RULE_DELETE
            if trip:
                trips.append(Trip(trip, entity, key[0], key[1], base, proposed, gone))
    return GateCheck(trips=trips, counts_after=after)
