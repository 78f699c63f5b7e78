"""Diff staged rows against the source's current rows, and apply the difference.

All set-based, all inside the caller's transaction:

1. ``diff_compute`` writes, per entity, the temporary table ``chg_<entity>`` holding
   only what changes: ``op`` 'a' (added), 'u' (updated: content hash differs) or 'd'
   (deleted), with the staged ordinal ``n`` and the current row ``old_id``.
   Bulk: a full outer join of staged and current rows by sourcedId (rows of the
   file missing from it are deleted). Delta: active rows upsert, ``tobedeleted``
   rows delete, and a row whose dateLastModified is older than the stored one is
   skipped (counted as ``stale``).
2. ``diff_apply`` closes the 'u' and 'd' rows (``valid_to_version = V``) and inserts
   the 'a' and 'u' rows (``valid_from_version = V``).

Only the importing source's rows are ever read as "current" or closed. A first load
of an entity (the source has no current rows) skips the diff and inserts straight
from staging: into an empty table with its indexes built afterwards (those PostgreSQL
builds on one process last of all, with other work beside them: first_import.py), and for
a large file computed on a second connection and written by COPY (relay.py).
"""

# SQL here is composed from identifiers of the schema registry (never from input);
# values are bound parameters or int() casts.
# ruff: noqa: S608

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TypeVar

from django.db import DatabaseError, connection

from apps.roster.ingest.relay import (
    SecondConnectionUnavailable,
    beside,
    relay_rows,
    view_definition,
)
from apps.roster.ingest.staging import TABLES, session_key

logger = logging.getLogger(__name__)

T = TypeVar("T")

SERIALISE_CLASS = 0x524F5354  # "ROST": advisory lock namespace for roster imports
HUB_VERSION_LOCK = 0  # second key: version allocation, hub-wide


@dataclass
class EntityChange:
    added: int = 0
    updated: int = 0
    deleted: int = 0
    stale: int = 0
    first_load: bool = False
    # the source's current rows of the entity before the import (for a delta, 0 or 1:
    # none or some), and the rows staged for it: with the counts above they show a
    # repeated sourcedId in a bulk file without a pass of its own
    current: int = 0
    staged: int = 0

    @property
    def total(self) -> int:
        return self.added + self.updated + self.deleted

    def as_dict(self) -> dict:
        return {"added": self.added, "updated": self.updated, "deleted": self.deleted,
                "stale": self.stale}


@dataclass
class ChangeSet:
    by_entity: dict[str, EntityChange] = field(default_factory=dict)

    @property
    def added(self) -> int:
        return sum(c.added for c in self.by_entity.values())

    @property
    def updated(self) -> int:
        return sum(c.updated for c in self.by_entity.values())

    @property
    def deleted(self) -> int:
        return sum(c.deleted for c in self.by_entity.values())

    @property
    def is_empty(self) -> bool:
        return self.added + self.updated + self.deleted == 0

    def as_dict(self) -> dict:
        return {
            "added": self.added,
            "updated": self.updated,
            "deleted": self.deleted,
            "by_entity": {e: c.as_dict() for e, c in self.by_entity.items() if c.total or c.stale},
        }


def lock_source(source_id: int) -> None:
    """Serialise imports and rollbacks of one source (released at commit or rollback)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)", [SERIALISE_CLASS, source_id])


def next_version_number() -> int:
    """Allocate the next hub-wide version number, holding the allocation lock to commit,
    so versions become visible in number order and "as of N" never changes later."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)", [SERIALISE_CLASS, HUB_VERSION_LOCK])
        cursor.execute("SELECT coalesce(max(number), 0) + 1 FROM roster_rosterversion")
        return cursor.fetchone()[0]


def _scalar(cursor, sql: str, params=None) -> int:  # type: ignore[no-untyped-def]
    cursor.execute(sql, params or [])
    return cursor.fetchone()[0]


# entity -> (org expression, kind expression) over a row alias "r": what the quality gates
# count by (gates.py). The diff carries the keys of the rows an import closes into its
# change table, so the gates never read those rows again.
GATE_KEYS: dict[str, tuple[str, str]] = {
    "orgs": ("r.parent_sourced_id", "r.type"),
    "academicSessions": ("''", "r.type"),
    "courses": ("r.org_sourced_id", "''"),
    "classes": ("r.school_sourced_id", "r.class_type"),
    "users": ("''", "''"),
    "userProfiles": ("''", "''"),
    "roles": ("r.org_sourced_id", "r.role"),
    "enrollments": ("r.school_sourced_id", "r.role"),
    "demographics": ("''", "''"),
    "categories": ("''", "''"),
    "lineItems": ("r.school_sourced_id", "''"),
    "results": ("''", "r.score_status"),
    "scoreScales": ("r.org_sourced_id", "''"),
}


def change_table(entity: str) -> str:
    """The change table of ``entity`` in this import (named after the importing session,
    also when another connection writes it for the import; see ``diff_compute``)."""
    return f"ingest_chg_{session_key()}_{TABLES[entity].model._meta.model_name}"


# A bulk file this large (rows) is diffed on a second connection while this one diffs the
# others: the diff of a large district's re-sync is two thirds one hash join per big file,
# and the machine has a second core to run it on.
CONCURRENT_DIFF_ROWS = 100_000


def diff_compute(
    *, source_id: int, modes: dict[str, str], staged: dict[str, int] | None = None,
    concurrent: bool = False,
) -> ChangeSet:
    """Compute what each supplied entity changes for this source (see module doc).

    ``staged``: rows staged per entity, when the caller knows them (else counted).
    ``concurrent``: the staged rows are committed (the import stages outside any
    transaction), so the largest file may be diffed on a second connection. It reads the
    same committed canonical rows (the source's lock, held here, keeps other imports of
    the source out) and leaves its change table, an unlogged table, committed for this
    transaction to read (the others are temporary tables of this session).
    """
    entities = [e for e, m in modes.items() if m in ("bulk", "delta")]
    staged = staged or {}
    key = session_key()
    side = _side_entity(entities, staged) if concurrent else None
    view = view_definition(side) if side else None
    results: dict[str, EntityChange] = {}

    def here(entity: str) -> EntityChange:
        with connection.cursor() as cursor:
            return _entity_diff(cursor, entity, modes[entity], source_id, staged.get(entity))

    with ThreadPoolExecutor(max_workers=1) as pool:
        future = pool.submit(_side_diff, side, modes[side], source_id, staged.get(side), key,
                             view) if side and view else None
        for entity in entities:
            if future is None or entity != side:
                results[entity] = here(entity)
        if future is not None:
            try:
                results[side] = future.result()  # type: ignore[index]
            except DatabaseError as exc:
                # no second connection (or it broke): the diff is redone here, replacing
                # whatever change table it left
                logger.warning("%s: diffed on one connection (%s)", side, exc)
                results[side] = here(side)  # type: ignore[arg-type,index]
    return ChangeSet(by_entity={e: results[e] for e in entities})


def _side_entity(entities: list[str], staged: dict[str, int]) -> str | None:
    sizes = sorted((staged.get(e, 0), e) for e in entities)
    if len(sizes) < 2 or sizes[-1][0] < CONCURRENT_DIFF_ROWS:
        return None
    return sizes[-1][1]


def _side_diff(entity: str, mode: str, source_id: int, staged: int | None, key: int,
               view: str) -> EntityChange:
    """``_entity_diff`` on this thread's own connection (closed when done)."""
    with beside(key=key, views={entity: view}), connection.cursor() as cursor:
        return _entity_diff(cursor, entity, mode, source_id, staged, "UNLOGGED")


def _entity_diff(cursor, entity: str, mode: str, source_id: int,  # type: ignore[no-untyped-def]
                 staged: int | None, persistence: str = "TEMPORARY") -> EntityChange:
    """One entity's change table (``persistence``: UNLOGGED when written for another
    connection to read, else TEMPORARY) and counts."""
    t = TABLES[entity]
    chg = change_table(entity)
    cursor.execute(f"DROP TABLE IF EXISTS {chg}")
    # A bulk file's repeats are found from the counts (validate_sql); a delta only
    # needs to know whether there is anything to diff against.
    what = "count(*)" if mode == "bulk" else "count(*) FROM (SELECT 1"
    tail = "" if mode == "bulk" else " LIMIT 1) one"
    change = EntityChange(current=_scalar(
        cursor,
        f"SELECT {what} FROM {t.table} WHERE source_id = %s "
        f"AND valid_to_version IS NULL{tail}",
        [source_id],
    ))
    change.staged = staged if staged is not None else _scalar(
        cursor, f"SELECT count(*) FROM {t.staging}")
    if not change.current:
        # First load of this entity for this source: everything active is new (in a bulk
        # file, every staged row).
        change.first_load = True
        change.added = change.staged if mode == "bulk" else _scalar(
            cursor,
            f"SELECT count(*) FROM {t.staging} WHERE status IS DISTINCT FROM 'tobedeleted'",
        )
        cursor.execute(f"CREATE {persistence} TABLE {chg} (op char(1), n integer, old_id bigint, "
                       f"gate_org text, gate_kind text)")
        return change
    org, kind = GATE_KEYS[entity]
    current = (
        f"SELECT id, sourced_id, content_hash, date_last_modified, {org}::text AS gate_org, "
        f"{kind}::text AS gate_kind FROM {t.table} r "
        f"WHERE source_id = {int(source_id)} AND valid_to_version IS NULL"
    )
    if mode == "bulk":
        cursor.execute(
            f"""
            CREATE {persistence} TABLE {chg} AS
            SELECT CASE WHEN c.id IS NULL THEN 'a' WHEN s.n IS NULL THEN 'd'
                        ELSE 'u' END::char(1) AS op,
                   s.n, c.id AS old_id, c.gate_org, c.gate_kind
            FROM (SELECT n, sourced_id, {t.hash_sql('x')} AS h FROM {t.staging} x) s
            FULL JOIN ({current}) c ON c.sourced_id = s.sourced_id
            WHERE c.id IS NULL OR s.n IS NULL OR c.content_hash <> s.h
            """
        )
    else:
        cursor.execute(
            f"""
            CREATE {persistence} TABLE {chg} AS
            SELECT CASE
                     WHEN c.date_last_modified IS NOT NULL
                          AND s.date_last_modified < c.date_last_modified THEN 's'
                     WHEN s.status = 'tobedeleted' THEN 'd'
                     WHEN c.id IS NULL THEN 'a'
                     ELSE 'u' END::char(1) AS op,
                   s.n, c.id AS old_id, c.gate_org, c.gate_kind
            FROM (SELECT n, sourced_id, status, date_last_modified,
                         {t.hash_sql('x')} AS h FROM {t.staging} x) s
            LEFT JOIN ({current}) c ON c.sourced_id = s.sourced_id
            WHERE (s.status = 'tobedeleted' AND c.id IS NOT NULL)
               OR (s.status IS DISTINCT FROM 'tobedeleted'
                   AND (c.id IS NULL OR c.content_hash <> s.h))
            """
        )
    cursor.execute(f"SELECT op, count(*) FROM {chg} GROUP BY op")
    counts = dict(cursor.fetchall())
    change.added = counts.get("a", 0)
    change.updated = counts.get("u", 0)
    change.deleted = counts.get("d", 0)
    change.stale = counts.get("s", 0)
    return change


def diff_apply(*, source_id: int, version: int, changes: ChangeSet,
               concurrent: bool = False, meanwhile: Callable[[], T] | None = None) -> T | None:
    """Close changed and removed rows, insert new ones, all stamped with ``version``.

    ``concurrent``: the staged rows are committed (see ``diff_compute``), so a large
    file's first load may be computed on a second connection (relay.py).

    ``meanwhile``: work for a second connection, run while this one builds the first
    loads' indexes that PostgreSQL builds on one process (GIN, before version 18), which
    are then left to the end: the one stretch of a first import with a core to spare.
    Returns its result; None when there was no such stretch or the work failed (the
    caller then does it itself).
    """
    single_process: list[str] = []
    with connection.cursor() as cursor:
        for entity, change in changes.by_entity.items():
            if not change.total:
                continue
            t = TABLES[entity]
            chg = change_table(entity)
            insert_cols = (
                f"source_id, sourced_id, date_last_modified, content_hash, "
                f"valid_from_version, {t.content_list()}"
            )
            select_cols = (
                f"{int(source_id)}, s.sourced_id, s.date_last_modified, {t.hash_sql('s')}, "
                f"{int(version)}, {t.content_list('s')}"
            )
            if change.first_load:
                rebuild = _rebuilt_indexes(cursor, t.table)
                for drop, _ in rebuild:
                    cursor.execute(drop)
                _first_load_write(
                    cursor, entity, columns=insert_cols, concurrent=concurrent,
                    staged=change.staged,
                    rows=_typed_once(f"SELECT s.* FROM {t.staging} s "
                                     f"WHERE s.status IS DISTINCT FROM 'tobedeleted'",
                                     select_cols),
                )
                for _, create in rebuild:
                    if meanwhile is not None and _built_on_one_process(create):
                        single_process.append(create)
                    else:
                        cursor.execute(create)
                continue
            # in id order, so the rows closed are visited in the order they lie on disk
            cursor.execute(
                f"UPDATE {t.table} SET valid_to_version = %s WHERE id = ANY(ARRAY("
                f"SELECT old_id FROM {chg} WHERE op IN ('u', 'd') ORDER BY old_id))",
                [version],
            )
            cursor.execute(
                f"INSERT INTO {t.table} ({insert_cols}) " + _typed_once(
                    f"SELECT s.* FROM {t.staging} s JOIN {chg} d ON d.n = s.n "
                    f"WHERE d.op IN ('a', 'u')", select_cols)
            )
        return _alongside(cursor, single_process, meanwhile)


def _typed_once(staged: str, select: str) -> str:
    """``select`` (over ``s``) from the ``staged`` rows, each staged value computed once.

    The staging view types the raw text (casts, lists split into arrays), and a written
    row uses each value twice: in its content hash and as itself. PostgreSQL computes an
    expression as often as it appears once the view is flattened into the query, so the
    rows are kept a subquery of their own (``OFFSET 0``): the users' relay query 13% and
    the classes' 20% cheaper.
    """
    return f"SELECT {select} FROM ({staged} OFFSET 0) s"


def one_process_build_ahead(changes: ChangeSet) -> bool:
    """Whether ``diff_apply`` will build an index on one process (and so can run work
    beside it): a first load into an empty table with a GIN index, before PostgreSQL 18."""
    if connection.pg_version >= 180000:
        return False
    with connection.cursor() as cursor:
        return any(
            _built_on_one_process(create)
            for entity, change in changes.by_entity.items() if change.first_load and change.total
            for _, create in _rebuilt_indexes(cursor, TABLES[entity].table)
        )


def _rebuilt_indexes(cursor, table: str) -> list[tuple[str, str]]:  # type: ignore[no-untyped-def]
    """A first load's index rebuilds (``_indexes``): into an empty table, the indexes are
    built after the rows (a sort per index instead of a b-tree insert per row and index,
    and COPY's batched writes); none into a table other sources' rows are in."""
    empty = not _scalar(cursor, f"SELECT EXISTS (SELECT 1 FROM {table})")
    return _indexes(cursor, table) if empty else []


def _built_on_one_process(create: str) -> bool:
    """Whether PostgreSQL builds this index (a ``pg_get_indexdef``) without parallel
    workers: a GIN index before version 18."""
    return connection.pg_version < 180000 and " USING gin " in create


def _alongside(cursor, statements: list[str],  # type: ignore[no-untyped-def]
               meanwhile: Callable[[], T] | None) -> T | None:
    """Run ``statements`` here and ``meanwhile`` on a worker thread (its own connection)
    at the same time; ``meanwhile``'s result, or None when it failed."""
    if not statements or meanwhile is None:
        for statement in statements:
            cursor.execute(statement)
        return None
    with ThreadPoolExecutor(max_workers=1) as pool:
        future = pool.submit(meanwhile)
        for statement in statements:
            cursor.execute(statement)
        try:
            return future.result()
        except DatabaseError as exc:
            logger.warning("work beside the index builds left to this connection (%s)", exc)
            return None


# A first load of fewer rows is written by INSERT ... SELECT even where it could be relayed:
# a relay costs a second connection and a pass through Python, and below some tens of
# thousands of rows that is all it saves (50,000 demographics: 0.15 s relayed, 0.13 s
# inserted; 19,000 classes: 0.12 s and 0.11 s).
RELAY_FROM_ROWS = 60_000


def _first_load_write(cursor, entity: str, *, columns: str, rows: str,  # type: ignore[no-untyped-def]
                      concurrent: bool, staged: int) -> None:
    """Insert ``rows`` into the entity's table: a large file's (``staged`` rows, at least
    ``RELAY_FROM_ROWS``) through the relay (see ``diff_apply``), else, or without a second
    connection, by INSERT ... SELECT."""
    table = TABLES[entity].table
    view = view_definition(entity) if concurrent and staged >= RELAY_FROM_ROWS else None
    if view is not None:
        try:
            relay_rows(cursor, entity=entity, view=view, query=rows, table=table,
                       columns=columns)
            return
        except SecondConnectionUnavailable as exc:
            logger.warning("%s: written on one connection (%s)", table, exc)
    cursor.execute(f"INSERT INTO {table} ({columns}) {rows}")


def _indexes(cursor, table: str) -> list[tuple[str, str]]:  # type: ignore[no-untyped-def]
    """(DROP, CREATE) statements of a table's indexes, the primary key's included (as its
    constraint): to build after the rows of a first load, one sort each."""
    cursor.execute(
        """
        SELECT format('ALTER TABLE %%I DROP CONSTRAINT %%I', t.relname, k.conname),
               format('ALTER TABLE %%I ADD CONSTRAINT %%I %%s', t.relname, k.conname,
                      pg_get_constraintdef(k.oid))
        FROM pg_constraint k JOIN pg_class t ON t.oid = k.conrelid
        WHERE k.conrelid = %s::regclass AND k.conindid <> 0
        UNION ALL
        SELECT format('DROP INDEX %%I', i.relname), pg_get_indexdef(i.oid)
        FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid
        WHERE x.indrelid = %s::regclass
          AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = x.indexrelid)
          -- an index of closed rows only stays: no row loaded enters it, and building it
          -- would read the whole table
          AND coalesce(pg_get_expr(x.indpred, x.indrelid), '') <> '(valid_to_version IS NOT NULL)'
        """,
        [table, table],
    )
    return list(cursor.fetchall())


def diff_drop(entities) -> None:  # type: ignore[no-untyped-def]
    with connection.cursor() as cursor:
        for entity in entities:
            cursor.execute(f"DROP TABLE IF EXISTS {change_table(entity)}")


def entity_totals(*, source_id: int, entities) -> dict[str, int]:  # type: ignore[no-untyped-def]
    """Current row counts of this source, for version summaries."""
    totals = {}
    with connection.cursor() as cursor:
        for entity in entities:
            totals[entity] = _scalar(
                cursor,
                f"SELECT count(*) FROM {TABLES[entity].table} "
                f"WHERE source_id = %s AND valid_to_version IS NULL",
                [source_id],
            )
    return totals


# A version that changes at least this share of a table's rows (and at least
# STATISTICS_MIN_ROWS rows) refreshes the table's planner statistics.
STATISTICS_SHARE = 0.1
STATISTICS_MIN_ROWS = 1000
# The rows ANALYZE samples at PostgreSQL's default statistics target (300 x 100).
ANALYZE_SAMPLE_ROWS = 30_000


def statistics_refresh(changes: ChangeSet) -> list[str]:
    """ANALYZE the canonical tables that ``changes`` altered substantially; returns them.

    The diff, release and REST queries are planned from table statistics. Autovacuum may
    be switched off or may not have caught up after a bulk load, and a planner that
    believes a 100,000-row table is empty picks nested loops that never finish. Run after
    commit (the sample then sees the committed rows); cheap, since ANALYZE samples, and
    after a large import shared with a second connection (one table each at a time).
    """
    due: list[tuple[int, str]] = []  # (rows the table holds, at least those changed)
    changed = 0
    with connection.cursor() as cursor:
        for entity, change in changes.by_entity.items():
            rows = change.added + change.updated + change.deleted
            if rows < STATISTICS_MIN_ROWS:
                continue
            table = TABLES[entity].table
            cursor.execute("SELECT reltuples FROM pg_class WHERE oid = %s::regclass", [table])
            (tuples,) = cursor.fetchone()
            if tuples < 0 or rows >= STATISTICS_SHARE * tuples:
                due.append((max(rows, int(tuples)), table))
                changed += rows
    # Two lanes of about equal work, the larger tables first. ANALYZE reads a sample of at
    # most ANALYZE_SAMPLE_ROWS rows, so a table costs its size up to that, not its size:
    # weighed by rows, a large district's enrolments took one lane and every other table
    # the other, which then took three times as long.
    lanes: tuple[list[str], list[str]] = ([], [])
    weights = [0, 0]
    for size, table in sorted(due, reverse=True):
        lane = weights.index(min(weights))
        lanes[lane].append(table)
        weights[lane] += min(size, ANALYZE_SAMPLE_ROWS)
    if changed < CONCURRENT_DIFF_ROWS or connection.in_atomic_block:
        lanes = (lanes[0] + lanes[1], [])
    try:
        with ThreadPoolExecutor(max_workers=1) as pool:
            other = pool.submit(_analyze_elsewhere, lanes[1]) if lanes[1] else None
            _analyze(lanes[0])
            if other is not None:
                try:
                    other.result()
                except DatabaseError as exc:
                    logger.warning("statistics analysed on one connection (%s)", exc)
                    _analyze(lanes[1])
    except DatabaseError:
        # The version is committed by now: stale statistics cost speed, not correctness,
        # and must not turn an applied import into a failed one.
        logger.exception("planner statistics not refreshed after an import")
    return [table for _, table in due]


def _analyze(tables: list[str]) -> None:
    with connection.cursor() as cursor:
        for table in tables:
            cursor.execute(f"ANALYZE {table}")


def _analyze_elsewhere(tables: list[str]) -> None:
    with beside():
        _analyze(tables)
