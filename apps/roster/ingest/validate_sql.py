"""Set-level validation in SQL over the staged rows: every problem, with file and line.

Row-level checks (types, enumerations, required fields, date order) happen in the
parser or the fast path; what needs the whole set happens here, under the source's
import lock, after ``apply.diff_compute`` has said what the import changes:

* duplicate sourcedIds within a file (``check_duplicates_after_diff``);
* references across files and, for deltas and absent files, against the current
  state (``check_references``), one primary role per user and org, and org and
  session parents without cycles (``check_state``).

References are checked against the state the import would produce ("post-state"):
for the importing source, a bulk entity is exactly its staged rows, a delta entity
is its current rows plus staged active rows minus staged deletions, an absent entity
is its current rows; other sources' current rows always count (a grade-writing
integration may reference the SIS's classes, and vice versa).

The current roster was checked when it was applied, so a row the import leaves as it
is stays valid unless the import removes what it points at. Hence, once a source has
rows of an entity, only what changes is checked: the rows the diff adds or updates
(delta files: every active staged row) against the post-state, and every row kept as
it is against what the import removes. A re-sync of an unchanged roster checks almost
nothing; a first import checks every row, with hash joins against the post-state ids.
"""

# SQL here is composed from identifiers of the schema registry (never from input);
# values are bound parameters or int() casts.
# ruff: noqa: S608

from __future__ import annotations

import logging
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass

from django.db import DatabaseError, connection

from apps.roster.ingest import errors as codes
from apps.roster.ingest.apply import ChangeSet, EntityChange, change_table
from apps.roster.ingest.errors import IngestError
from apps.roster.ingest.relay import reading_beside, view_definition
from apps.roster.ingest.staging import TABLES, session_key

logger = logging.getLogger(__name__)

PRIMARY_ROLE_CONFLICT = "PRIMARY_ROLE_CONFLICT"
REFERENCE_ORPHANED = "REFERENCE_ORPHANED"
PARENT_CYCLE = "PARENT_CYCLE"

MESSAGES = {
    codes.DUPLICATE_SOURCED_ID: "{sid}: sourcedId appears more than once in {file} "
    "(first on line {first}).",
    codes.REFERENCE_MISSING: "{sid}: {column} {ref!r} does not match any {target} in this "
    "feed or the current roster.",
    REFERENCE_ORPHANED: "{sid} (kept from the current roster) has {column} {ref!r}, a {target} "
    "this feed removes; supply {file} too, or keep the {target}.",
    PRIMARY_ROLE_CONFLICT: "{sid}: user {user!r} already has a primary role at org {org!r} "
    "(role {other!r}); one primary role per user and org.",
    PARENT_CYCLE: "{sid}: parentSourcedId chain returns to {sid!r} (a cycle).",
}

# Errors kept per check, so that a wholly wrong file cannot flood the error table.
MAX_ERRORS_PER_CHECK = 1000


@dataclass(frozen=True)
class Reference:
    entity: str
    column: str
    target: str
    is_list: bool = False


# Every reference the canonical model carries, checked in this order.
REFERENCES: tuple[Reference, ...] = (
    Reference("orgs", "parent_sourced_id", "orgs"),
    Reference("academicSessions", "parent_sourced_id", "academicSessions"),
    Reference("courses", "school_year_sourced_id", "academicSessions"),
    Reference("courses", "org_sourced_id", "orgs"),
    Reference("classes", "course_sourced_id", "courses"),
    Reference("classes", "school_sourced_id", "orgs"),
    Reference("classes", "term_sourced_ids", "academicSessions", is_list=True),
    Reference("users", "agent_sourced_ids", "users", is_list=True),
    Reference("users", "primary_org_sourced_id", "orgs"),
    Reference("userProfiles", "user_sourced_id", "users"),
    Reference("roles", "user_sourced_id", "users"),
    Reference("roles", "org_sourced_id", "orgs"),
    Reference("roles", "user_profile_sourced_id", "userProfiles"),
    Reference("enrollments", "class_sourced_id", "classes"),
    Reference("enrollments", "school_sourced_id", "orgs"),
    Reference("enrollments", "user_sourced_id", "users"),
    Reference("demographics", "sourced_id", "users"),
    Reference("lineItems", "class_sourced_id", "classes"),
    Reference("lineItems", "category_sourced_id", "categories"),
    Reference("lineItems", "academic_session_sourced_id", "academicSessions"),
    Reference("lineItems", "school_sourced_id", "orgs"),
    Reference("results", "line_item_sourced_id", "lineItems"),
    Reference("results", "student_sourced_id", "users"),
    Reference("results", "class_sourced_id", "classes"),
    Reference("scoreScales", "org_sourced_id", "orgs"),
    Reference("scoreScales", "course_sourced_id", "courses"),
    Reference("scoreScales", "class_sourced_id", "classes"),
)

# References whose column leads a b-tree index over current rows (the REST and LTI read
# paths', or the sourcedId index): checks of the rows pointing at a few ids probe these
# (tests/roster/test_resync_checks.py holds this list to the database's indexes).
INDEXED_REFERENCES = frozenset({
    ("enrollments", "class_sourced_id"),
    ("enrollments", "user_sourced_id"),
    ("roles", "user_sourced_id"),
    ("demographics", "sourced_id"),
    ("roles", "user_profile_sourced_id"),
    ("results", "student_sourced_id"),
})

_TARGET_NAMES = {
    "orgs": "org", "academicSessions": "academic session", "courses": "course",
    "classes": "class", "users": "user", "userProfiles": "user profile",
    "categories": "category", "lineItems": "line item",
}


def _fetch(sql: str, params: dict | None = None) -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params or {})
        return cursor.fetchall()


def check_duplicates(entities: list[str]) -> list[IngestError]:
    """A sourcedId twice in one file: every repeat is reported, naming the first line."""
    found = []
    for entity in entities:
        tables = TABLES[entity]
        # Most files have no repeat: a hash aggregate over 64-bit hashes of the sourcedIds
        # (no sort, small enough to stay in memory) says so; a hash collision only costs
        # the exact windowed query below, which names each repeat's first line.
        (repeated,) = _fetch(
            f"SELECT EXISTS (SELECT 1 FROM {tables.staging} "
            f"GROUP BY hashtextextended(sourced_id, 0) HAVING count(*) > 1)"
        )[0]
        if not repeated:
            continue
        rows = _fetch(
            f"""
            SELECT sourced_id, line, first_line FROM (
                SELECT sourced_id, line,
                       first_value(line) OVER w AS first_line,
                       row_number() OVER w AS k
                FROM {tables.staging}
                WINDOW w AS (PARTITION BY sourced_id ORDER BY n)
            ) d WHERE k > 1 ORDER BY line LIMIT {MAX_ERRORS_PER_CHECK}
            """
        )
        for sid, line, first in rows:
            found.append(
                IngestError(
                    tables.file_name, line, "sourcedId", codes.DUPLICATE_SOURCED_ID,
                    MESSAGES[codes.DUPLICATE_SOURCED_ID].format(
                        sid=sid, file=tables.file_name, first=first
                    ),
                )
            )
    return found


def check_duplicates_after_diff(
    *, modes: dict[str, str], changes: ChangeSet
) -> tuple[list[IngestError], list[str]]:
    """Repeated sourcedIds of the supplied files: (errors, entities left to the apply).

    A bulk file of an entity the source already has needs no pass of its own: every
    staged row either matched a current row or is added, and each current row matched
    at most once (one current row per source and sourcedId), so a repeat among matched
    rows shows as more matched staged rows than matched current rows; a repeat among
    added rows, as a group of the (few) added rows. A first load of an entity is left to
    the canonical unique index, which the apply builds anyway: a repeat there fails the
    apply, and ``check_duplicates`` then names every one. Delta files are checked whole.
    """
    suspects, deferred = [], []
    with connection.cursor() as cursor:
        for entity, change in changes.by_entity.items():
            if modes[entity] != "bulk":
                suspects.append(entity)
            elif change.first_load:
                deferred.append(entity)
            elif (change.staged - change.added != change.current - change.deleted
                  or (change.added > 1 and _added_repeat(cursor, entity))):
                suspects.append(entity)
    return check_duplicates(suspects), deferred


def _added_repeat(cursor, entity: str) -> bool:  # type: ignore[no-untyped-def]
    cursor.execute(
        f"SELECT EXISTS (SELECT 1 FROM {TABLES[entity].staging} s "
        f"JOIN {change_table(entity)} d ON d.n = s.n WHERE d.op = 'a' "
        f"GROUP BY s.sourced_id HAVING count(*) > 1)"
    )
    return cursor.fetchone()[0]


def _post_state_ids_sql(target: str, *, source_id: int, modes: dict[str, str]) -> str:
    """sourcedIds of ``target`` in the state this import would produce (see module doc).

    Possibly with repeats (UNION ALL: only ever probed for existence, so no dedupe pass).
    """
    tables = TABLES[target]
    mode = modes.get(target, "absent")
    sql = (
        f"SELECT c.sourced_id FROM {tables.table} c "
        f"WHERE c.valid_to_version IS NULL AND {_current_kept_sql(target, source_id, mode)}"
    )
    if mode in ("bulk", "delta"):
        sql += (
            f" UNION ALL SELECT sourced_id FROM {tables.staging} "
            f"WHERE status IS DISTINCT FROM 'tobedeleted'"
        )
    return sql


def _current_kept_sql(target: str, source_id: int, mode: str) -> str:
    """Which current rows ``c`` of ``target`` stay in the post-state."""
    if mode == "bulk":
        return f"c.source_id <> {int(source_id)}"
    if mode == "delta":
        return (
            f"(c.source_id <> {int(source_id)} OR NOT EXISTS (SELECT 1 "
            f"FROM {TABLES[target].staging} d WHERE d.sourced_id = c.sourced_id "
            f"AND d.status = 'tobedeleted'))"
        )
    return "TRUE"


def ids_table(target: str) -> str:
    """The materialised post-state ids of ``target`` (unlogged, so that the anti-joins
    against them may run in parallel; named after the session, see staging)."""
    return f"ingest_ids_{session_key()}_{target.lower()}"


# An id set smaller than this is probed as a hashed subplan (NOT IN), larger ones by a
# hash anti-join (NOT EXISTS), which PostgreSQL can run in parallel. The subplan because
# an anti-join with a small set was seen planned as a nested loop, row by row.
SMALL_ID_SET = 10_000


def _absent_sql(
    target: str, value: str, *, source_id: int, modes: dict[str, str],
    materialised: dict[str, int],
) -> str:
    """A condition true when ``value`` is not a sourcedId of ``target`` in the post-state.

    Against a materialised id set (``ids_table``, hashed) for a first load's rows.
    Otherwise the rows being checked are few, so each probes: the current rows
    through the partial sourcedId index (any source), corrected by what this import
    removes (``rm_``) and adds (``add_``) to the target, both small; or, for a target
    loaded here for the first time, its staged rows (hashed once).
    """
    x = target.lower()
    if target in materialised:
        ids = ids_table(target)
        if materialised[target] < SMALL_ID_SET:
            # Neither side holds NULLs, so NOT IN means NOT EXISTS here.
            return f"{value} NOT IN (SELECT sourced_id FROM {ids})"
        return f"NOT EXISTS (SELECT 1 FROM {ids} i WHERE i.sourced_id = {value})"
    # OFFSET 0 keeps this a probe per checked value through the current-sourcedId index:
    # as an anti-join, the planner would rather hash the whole roster than probe it a few
    # thousand times (its page costs assume a cold disk), costing a delta the roster's size.
    current = (
        f"NOT EXISTS (SELECT 1 FROM {TABLES[target].table} c WHERE c.sourced_id = {value} "
        f"AND c.valid_to_version IS NULL OFFSET 0)"
    )
    if modes.get(target) not in ("bulk", "delta"):
        return current
    return (
        f"({current} OR {value} IN (SELECT sourced_id FROM rm_{x})) "
        f"AND {value} NOT IN (SELECT sourced_id FROM add_{x})"
    )


def _changed_rows_sql(entity: str, change: EntityChange) -> str:
    """The staged rows of ``entity`` whose references need checking (see module doc)."""
    t = TABLES[entity]
    if change.first_load:
        return f"{t.staging} s"
    return (
        f"{t.staging} s JOIN {change_table(entity)} d ON d.n = s.n AND d.op IN ('a', 'u')"
    )


def _prepare_changes(cursor, *, source_id: int,  # type: ignore[no-untyped-def]
                     changes: ChangeSet) -> set[str]:
    """``add_<target>``: sourcedIds the import adds; ``rm_<target>``: those it removes
    (closed rows of this source that no other source keeps). Returns the targets it
    removes any of."""
    removed = set()
    for target, change in _referenced(changes):
        t, x, chg = TABLES[target], target.lower(), change_table(target)
        cursor.execute(f"DROP VIEW IF EXISTS add_{x}")
        cursor.execute(f"DROP TABLE IF EXISTS add_{x}, rm_{x}")
        if change.first_load:
            # every staged row is added: a view (rarely read: a first load's own rows are
            # checked against ids_table sets), not a copy of the file's sourcedIds
            cursor.execute(
                f"CREATE TEMPORARY VIEW add_{x} AS SELECT sourced_id FROM {t.staging} "
                f"WHERE status IS DISTINCT FROM 'tobedeleted'"
            )
        else:
            cursor.execute(
                f"CREATE TEMPORARY TABLE add_{x} AS SELECT s.sourced_id FROM {t.staging} s "
                f"JOIN {chg} d ON d.n = s.n WHERE d.op = 'a'"
            )
            cursor.execute(f"ANALYZE add_{x}")
        cursor.execute(
            f"CREATE TEMPORARY TABLE rm_{x} AS SELECT c.sourced_id FROM {chg} d "
            f"JOIN {t.table} c ON c.id = d.old_id WHERE d.op = 'd' AND NOT EXISTS "
            f"(SELECT 1 FROM {t.table} o WHERE o.sourced_id = c.sourced_id "
            f"AND o.valid_to_version IS NULL AND o.source_id <> {int(source_id)})"
        )
        if cursor.rowcount:
            removed.add(target)
        cursor.execute(f"ANALYZE rm_{x}")
    return removed


def _referenced(changes: ChangeSet) -> list[tuple[str, EntityChange]]:
    """The supplied entities that some reference points at (enrollments, say, are not)."""
    targets = {r.target for r in REFERENCES}
    return [(e, c) for e, c in changes.by_entity.items() if e in targets]


def _drop_changes(cursor, changes: ChangeSet) -> None:  # type: ignore[no-untyped-def]
    for target, change in _referenced(changes):
        x = target.lower()
        cursor.execute(f"DROP {'VIEW' if change.first_load else 'TABLE'} IF EXISTS add_{x}")
        cursor.execute(f"DROP TABLE IF EXISTS rm_{x}")


def check_references(
    *, source_id: int, modes: dict[str, str], changes: ChangeSet, concurrent: bool = False,
) -> list[IngestError]:
    """Every reference of every changed (or first-loaded) row must resolve in the
    post-state, and no row kept as it is may point at what the import removes.

    ``concurrent``: the staged rows are committed, so a first load's checks may be shared
    with a second connection (``_WholeChecks``)."""
    supplied = {e for e, m in modes.items() if m in ("bulk", "delta")}
    # A first load of a bulk file checks every row: against materialised post-state id
    # sets (hash joins; the file is as large as the roster anyway).
    whole = {e for e in supplied if modes[e] == "bulk" and changes.by_entity[e].first_load}
    checks = _WholeChecks([r for r in REFERENCES if r.entity in whole], changes,
                          source_id=source_id, modes=modes, concurrent=concurrent)
    found_by_ref: dict[Reference, list[IngestError]] = {}
    with checks.beside() as there, connection.cursor() as cursor:
        removed = _prepare_changes(cursor, source_id=source_id, changes=changes)
        found_by_ref.update(checks.run(cursor, checks.here))
        for ref in REFERENCES:
            if ref.entity not in supplied or ref.entity in whole:
                continue
            tables = TABLES[ref.entity]
            change = changes.by_entity[ref.entity]
            if modes[ref.entity] == "delta":
                rows = f"{tables.staging} s"  # every active row, applied or stale
            elif change.added or change.updated:
                rows = _changed_rows_sql(ref.entity, change)
            else:
                continue
            source_rows, value = _staged_refs(ref, rows)
            absent = _absent_sql(ref.target, value, source_id=source_id, modes=modes,
                                 materialised={})
            found_by_ref[ref] = _missing_refs(cursor, ref, source_rows, value, absent)
        orphans = _check_orphans(
            cursor, source_id=source_id, modes=modes, removed=removed, whole=whole,
        )
        _drop_changes(cursor, changes)
        found_by_ref.update(there.result() if there is not None else {})
        if checks.left:  # the second connection failed: its share is checked here
            found_by_ref.update(checks.run(cursor, checks.left))
    return [e for ref in REFERENCES for e in found_by_ref.get(ref, [])] + orphans


def _missing_refs(cursor, ref: Reference, rows: str, value: str,  # type: ignore[no-untyped-def]
                  absent: str) -> list[IngestError]:
    """The staged ``rows`` whose ``value`` of ``ref`` is ``absent`` from the post-state."""
    cursor.execute(
        f"""
        SELECT s.line, s.sourced_id, {value} FROM {rows}
        WHERE {value} IS NOT NULL AND s.status IS DISTINCT FROM 'tobedeleted'
          AND {absent}
        ORDER BY s.n LIMIT {MAX_ERRORS_PER_CHECK}
        """
    )
    return _missing(TABLES[ref.entity], ref, cursor.fetchall())


class _WholeChecks:
    """The reference checks of first-loaded bulk files: every staged row against the
    post-state ids of its target, materialised once per target (``ids_table``).

    They read only what is committed (the staged files, other sources' rows), so, given a
    second connection that can read the staged files, they are shared out between the two
    connections by the rows they read, the larger shares first (on one core, a first
    import's checks were about a tenth of a 50,000-pupil import).
    A share the second connection could not check (no connection, a lock it would not
    wait for) is checked on this one afterwards (``left``).
    """

    def __init__(self, refs: list[Reference], changes: ChangeSet, *, source_id: int,
                 modes: dict[str, str], concurrent: bool) -> None:
        self._source_id, self._modes = source_id, modes
        self.here, self.there, self.left = refs, [], []
        self._views: dict[str, str] = {}
        self._unreadable: set[str] = set()
        if concurrent and len({r.target for r in refs}) > 1:
            self._share(changes)

    def _share(self, changes: ChangeSet) -> None:
        """Share out the checks by target, each target's checks in two parts: those the
        second connection can read (the target's staged file and the checked file both
        unlogged), and the others, which stay here. A target with checks on both
        connections has its ids materialised on both."""
        def staged(entity: str) -> int:
            change = changes.by_entity.get(entity)
            return change.staged if change is not None else 0

        parts: dict[tuple[str, bool], list[Reference]] = {}
        for ref in self.here:
            readable = self._readable(ref.target) and self._readable(ref.entity)
            parts.setdefault((ref.target, readable), []).append(ref)
        cost = {part: staged(part[0]) + sum(staged(r.entity) for r in refs)
                for part, refs in parts.items()}
        loads = {True: 0, False: 0}  # rows read there (True) and here
        self.here = []
        for part in sorted(parts, key=lambda p: (-cost[p], p)):
            there = part[1] and loads[True] <= loads[False]
            loads[there] += cost[part]
            (self.there if there else self.here).extend(parts[part])

    def _readable(self, entity: str) -> bool:
        """Whether a second connection can read the entity's staged file, if any (and
        the statement that makes its view there)."""
        if entity in self._views or self._modes.get(entity) not in ("bulk", "delta"):
            return True  # no staged file: only the current rows are read
        if entity in self._unreadable:
            return False
        view = view_definition(entity)
        if view is None:
            self._unreadable.add(entity)
            return False
        self._views[entity] = view
        return True

    @contextmanager
    def beside(self) -> Iterator[Future | None]:
        """Check the second connection's share on a worker thread meanwhile."""
        if not self.there:
            yield None
            return
        with ThreadPoolExecutor(max_workers=1) as pool, connection.cursor() as cursor:
            # one core each: the parallel workers the checks would otherwise start here
            # would take the other connection's core
            cursor.execute("SHOW max_parallel_workers_per_gather")
            workers = cursor.fetchone()[0]
            cursor.execute("SET max_parallel_workers_per_gather = 0")
            yield pool.submit(self._run_beside)
            # (not on an error: the transaction's rollback undoes the SET, and an aborted
            # transaction would refuse this statement and hide the error)
            cursor.execute("SELECT set_config('max_parallel_workers_per_gather', %s, false)",
                           [workers])

    def _run_beside(self) -> dict[Reference, list[IngestError]]:
        try:
            with reading_beside(self._views), connection.cursor() as cursor:
                return self.run(cursor, self.there)
        except DatabaseError as exc:
            logger.warning("reference checks left to the import's connection (%s)", exc)
            self.left = self.there
            return {}

    def run(self, cursor, refs: list[Reference]) -> dict[Reference, list[IngestError]]:  # type: ignore[no-untyped-def]
        """Check ``refs`` on ``cursor``'s connection, with its own materialised id sets."""
        materialised: dict[str, int] = {}
        found: dict[Reference, list[IngestError]] = {}
        for target in sorted({r.target for r in refs}):
            ids = ids_table(target)
            cursor.execute(f"DROP TABLE IF EXISTS {ids}")
            cursor.execute(
                f"CREATE UNLOGGED TABLE {ids} AS "
                f"{_post_state_ids_sql(target, source_id=self._source_id, modes=self._modes)}"
            )
            materialised[target] = cursor.rowcount
            # No index: every probe of an id set is hashed.
            cursor.execute(f"ANALYZE {ids}")
        for ref in refs:
            source_rows, value = _staged_refs(ref, f"{TABLES[ref.entity].staging} s")
            absent = _absent_sql(ref.target, value, source_id=self._source_id,
                                 modes=self._modes, materialised=materialised)
            found[ref] = _missing_refs(cursor, ref, source_rows, value, absent)
        # (after an error, the import's rollback takes them, or the next import drops a
        # second connection's: staging.drop_orphaned_tables)
        for target in materialised:
            cursor.execute(f"DROP TABLE IF EXISTS {ids_table(target)}")
        return found


def _staged_refs(ref: Reference, rows: str) -> tuple[str, str]:
    """(FROM clause, value): the staged ``rows`` (as ``s``) with each value of ``ref``.

    A list is unnested in the select list of a subquery: the anti-join then meets one
    stream of values, hashed once (unnested laterally, each row's values were anti-joined
    on their own, a hash probe loop per row). A plain column stays a column, as a
    subquery would defeat the join.
    """
    column = TABLES[ref.entity].staged("s", ref.column)
    if ref.is_list:
        return (f"(SELECT s.n, s.line, s.sourced_id, s.status, unnest({column}) AS ref "
                f"FROM {rows}) s", "s.ref")
    return rows, column


def _missing(tables, ref: Reference, rows: list[tuple]) -> list[IngestError]:  # type: ignore[no-untyped-def]
    header = tables.header_of(ref.column)
    return [
        IngestError(
            tables.file_name, line, header, codes.REFERENCE_MISSING,
            MESSAGES[codes.REFERENCE_MISSING].format(
                sid=sid, column=header, ref=value, target=_TARGET_NAMES[ref.target]
            ),
        )
        for line, sid, value in rows
    ]


def _check_orphans(  # type: ignore[no-untyped-def]
    cursor, *, source_id: int, modes: dict[str, str], removed: set[str], whole: set[str],
) -> list[IngestError]:
    """Rows the import keeps as they are (absent files, delta rows not restated, bulk rows
    the diff found unchanged) must not be left pointing at records it removes.

    Only the removed ids (``rm_<target>``) are joined against, so an import that removes
    nothing costs nothing.
    """
    found: list[IngestError] = []
    for ref in REFERENCES:
        mode = modes.get(ref.entity, "absent")
        if ref.target not in removed or ref.entity in whole:
            continue
        tables = TABLES[ref.entity]
        rm = f"rm_{ref.target.lower()}"
        if mode == "bulk":
            # unchanged staged rows: reported on their line, as a missing reference
            rows, value = _staged_refs(ref, f"{tables.staging} s")
            cursor.execute(
                f"SELECT s.line, s.sourced_id, {value} FROM {rows} "
                f"WHERE {value} IN (SELECT sourced_id FROM {rm}) AND NOT EXISTS "
                f"(SELECT 1 FROM {change_table(ref.entity)} d WHERE d.n = s.n "
                f"AND d.op IN ('a', 'u')) ORDER BY s.n LIMIT {MAX_ERRORS_PER_CHECK}"
            )
            found += _missing(tables, ref, cursor.fetchall())
            continue
        current = f"c.valid_to_version IS NULL AND c.source_id = {source_id}"
        # a delta keeps the current rows it does not restate
        unstated = (f"NOT EXISTS (SELECT 1 FROM {tables.staging} s "
                    f"WHERE s.sourced_id = c.sourced_id)" if mode == "delta" else "TRUE")
        kept = f"{current} AND {unstated}"
        column = f'c."{ref.column}"'
        # No ORDER BY ... LIMIT here: it tempts the planner into walking the sourcedId
        # index with a nested loop per row. Filter first (array overlap for lists), sort after.
        if (ref.entity, ref.column) in INDEXED_REFERENCES:
            # one probe per removed id through the index on the referencing column, so a
            # delta that removes a few pupils never reads every current role or enrollment;
            # the staged rows are looked up outside the probe (inside it, PostgreSQL 18
            # hashed the staged file again for every removed id)
            sql = (
                f"SELECT c.sourced_id, c.ref FROM {rm} m CROSS JOIN LATERAL "
                f"(SELECT c.sourced_id, {column} AS ref FROM {tables.table} c "
                f"WHERE {column} = m.sourced_id AND {current} OFFSET 0) c WHERE {unstated}"
            )
        elif ref.is_list:
            # Array overlap with the removed ids first (the GIN index on users' agents),
            # so only the lists that name a removed record are unnested. The removed ids
            # take the list's collation: compared in another, the overlap could not use
            # the index.
            collation = tables.column_collation(ref.column)
            sql = (
                f"SELECT c.sourced_id, r.ref FROM {tables.table} c "
                f"CROSS JOIN LATERAL unnest({column}) AS r(ref) WHERE {kept} "
                f"AND {column} && (SELECT coalesce(array_agg(m.sourced_id::text "
                f"COLLATE \"{collation}\"), '{{}}') FROM {rm} m) "
                f"AND r.ref IN (SELECT m.sourced_id FROM {rm} m)"
            )
        else:
            sql = (
                f"SELECT c.sourced_id, {column} FROM {tables.table} c "
                f"WHERE {kept} AND {column} IN (SELECT sourced_id FROM {rm})"
            )
        cursor.execute(f"{sql} LIMIT {MAX_ERRORS_PER_CHECK}")
        header = tables.header_of(ref.column)
        for sid, value in sorted(cursor.fetchall()):
            found.append(
                IngestError(
                    tables.file_name, None, header, REFERENCE_ORPHANED,
                    MESSAGES[REFERENCE_ORPHANED].format(
                        sid=sid, column=header, ref=value, target=_TARGET_NAMES[ref.target],
                        file=tables.file_name,
                    ),
                )
            )
    return found


def _post_state_rows_sql(
    entity: str, columns: str, *, source_id: int, mode: str, current_filter: str = "TRUE",
    staged_filter: str = "TRUE",
) -> str:
    """This source's rows of ``entity`` after the import, with the staged line (or NULL).

    ``current_filter`` and ``staged_filter`` narrow the current rows (a condition on ``c``)
    and the staged rows read, so that a delta or a re-sync reads only the rows its
    changes can meet.
    """
    tables = TABLES[entity]
    staged = (
        f"SELECT line, sourced_id, {columns} FROM {tables.staging} "
        f"WHERE status IS DISTINCT FROM 'tobedeleted' AND {staged_filter}"
    )
    if mode == "bulk":
        return staged
    return (
        f"{staged} UNION ALL SELECT NULL::integer, sourced_id, {columns} FROM {tables.table} c "
        f"WHERE c.valid_to_version IS NULL AND c.source_id = {source_id} AND {current_filter} "
        f"AND NOT EXISTS (SELECT 1 FROM {tables.staging} s WHERE s.sourced_id = c.sourced_id)"
    )


def check_primary_roles(*, source_id: int, mode: str, change: EntityChange) -> list[IngestError]:
    """One primary role per user and org: each staged primary beyond the first conflicts."""
    post = primary_roles_post_state(source_id=source_id, mode=mode, change=change)
    if post is None or not primary_roles_conflict(post):
        return []
    return _primary_role_errors(post)


def primary_roles_conflict(post: str) -> bool:
    """Whether the roles ``post`` (``primary_roles_post_state``) give a user two primary
    roles at an org. Conflicts are rare: a hash aggregate (no sort) finds whether there
    is one at all, without naming it."""
    (conflict,) = _fetch(
        f"SELECT EXISTS (SELECT 1 FROM ({post}) p WHERE role_type = 'primary' "
        f"GROUP BY user_sourced_id, org_sourced_id HAVING count(*) > 1 "
        f"AND count(line) > 0)"
    )[0]
    return bool(conflict)


def primary_roles_post_state(*, source_id: int, mode: str, change: EntityChange) -> str | None:
    """The roles (after the import) that the primary-role check reads; None: none can
    conflict."""
    # Only staged primaries are ever reported, so only the (user, org) pairs they name
    # matter: a delta reads just those pairs' current roles, never every user's; a bulk
    # file of roles the source already has, just the pairs of the primaries it changes.
    staging_table = TABLES["roles"].staging
    staged_filter = "TRUE"
    if mode == "bulk" and not change.first_load:
        if not (change.added or change.updated):
            return None
        staged_filter = (
            f"user_sourced_id IN (SELECT q.user_sourced_id FROM {staging_table} q "
            f"JOIN {change_table('roles')} d ON d.n = q.n AND d.op IN ('a', 'u') "
            f"WHERE q.role_type = 'primary')"
        )
    return _post_state_rows_sql(
        "roles", "user_sourced_id, org_sourced_id, role_type",
        source_id=source_id, mode=mode, staged_filter=staged_filter,
        current_filter=(
            # one probe per staged user through the (user, org, ...) index of current
            # roles: a delta costs its own size, never a scan of every role
            f"c.role_type = 'primary' AND c.id IN (SELECT p.id FROM (SELECT DISTINCT "
            f"q.user_sourced_id FROM {staging_table} q WHERE q.role_type = 'primary' "
            f"AND q.status IS DISTINCT FROM 'tobedeleted') u CROSS JOIN LATERAL "
            f"(SELECT r.id FROM {TABLES['roles'].table} r WHERE r.user_sourced_id = "
            f"u.user_sourced_id AND r.valid_to_version IS NULL OFFSET 0) p)"
        ),
    )


def _primary_role_errors(post: str) -> list[IngestError]:
    rows = _fetch(
        f"""
        SELECT line, sourced_id, user_sourced_id, org_sourced_id, first_sid FROM (
            SELECT line, sourced_id, user_sourced_id, org_sourced_id,
                   first_value(sourced_id) OVER w AS first_sid,
                   row_number() OVER w AS k
            FROM ({post}) p WHERE role_type = 'primary'
            -- current rows first, then file order: the staged newcomer is the one at fault
            WINDOW w AS (PARTITION BY user_sourced_id, org_sourced_id
                         ORDER BY line NULLS FIRST, sourced_id)
        ) d WHERE k > 1 AND line IS NOT NULL ORDER BY line LIMIT {MAX_ERRORS_PER_CHECK}
        """
    )
    file_name = TABLES["roles"].file_name
    return [
        IngestError(
            file_name, line, "roleType", PRIMARY_ROLE_CONFLICT,
            MESSAGES[PRIMARY_ROLE_CONFLICT].format(sid=sid, user=user, org=org, other=first),
        )
        for line, sid, user, org, first in rows
    ]


def check_cycles(entity: str, *, source_id: int, mode: str) -> list[IngestError]:
    """Parents without cycles (recursive walk up the parent chain, bounded)."""
    post = _post_state_rows_sql(entity, "parent_sourced_id", source_id=source_id, mode=mode)
    rows = _fetch(
        f"""
        WITH RECURSIVE p AS MATERIALIZED ({post}),
        walk(start_sid, node, depth) AS (
            -- only staged rows are reported, so only their chains are walked
            SELECT sourced_id, parent_sourced_id, 1 FROM p
            WHERE parent_sourced_id IS NOT NULL AND line IS NOT NULL
            UNION ALL
            SELECT w.start_sid, p.parent_sourced_id, w.depth + 1
            FROM walk w JOIN p ON p.sourced_id = w.node
            WHERE w.node <> w.start_sid AND p.parent_sourced_id IS NOT NULL AND w.depth < 1000
        )
        SELECT DISTINCT p.line, p.sourced_id FROM walk w JOIN p ON p.sourced_id = w.start_sid
        WHERE w.node = w.start_sid AND p.line IS NOT NULL
        ORDER BY p.line LIMIT {MAX_ERRORS_PER_CHECK}
        """
    )
    file_name = TABLES[entity].file_name
    return [
        IngestError(
            file_name, line, "parentSourcedId", PARENT_CYCLE,
            MESSAGES[PARENT_CYCLE].format(sid=sid),
        )
        for line, sid in rows
    ]


def check_state(
    *, source_id: int, modes: dict[str, str], changes: ChangeSet,
    primary_roles_later: bool = False, concurrent: bool = False,
) -> list[IngestError]:
    """The checks that read the current roster (run under the source's import lock,
    after the diff). ``primary_roles_later``: the caller checks the primary roles itself
    (a first import's, beside its index builds: see ``first_import.py``).
    ``concurrent``: the staged rows are committed (see ``check_references``)."""
    found = check_references(source_id=source_id, modes=modes, changes=changes,
                             concurrent=concurrent)
    if modes.get("roles") in ("bulk", "delta") and not primary_roles_later:
        found += check_primary_roles(source_id=source_id, mode=modes["roles"],
                                     change=changes.by_entity["roles"])
    for entity in ("orgs", "academicSessions"):
        if modes.get(entity) in ("bulk", "delta"):
            found += check_cycles(entity, source_id=source_id, mode=modes[entity])
    return found
