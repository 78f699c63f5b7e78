"""Set-level validation in SQL over the staged rows: every problem, with file and line.

Row-level checks (types, enumerations, required fields, date order) happen in the
parser; what needs the whole set happens here:

* duplicate sourcedIds within a file (``check_duplicates``, file-local, before the lock);
* references across files and, for deltas and absent files, against the current
  state (``check_references``), one primary role per user and org, and org and
  session parents without cycles (``check_state``). These read the canonical tables
  and therefore run under the source's import lock, in the apply transaction.

References are checked against the state the import would produce ("post-state"):
for the importing source, a bulk entity is exactly its staged rows, a delta entity
is its current rows plus staged active rows minus staged deletions, an absent entity
is its current rows; other sources' current rows always count (a grade-writing
integration may reference the SIS's classes, and vice versa).
"""

# SQL here is composed from identifiers of the schema registry (never from input);
# values are bound parameters or int() casts.
# ruff: noqa: S608

from __future__ import annotations

from dataclasses import dataclass

from django.db import connection

from apps.roster.ingest import errors as codes
from apps.roster.ingest.errors import IngestError
from apps.roster.ingest.staging import TABLES

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


def _absent_sql(
    target: str, value: str, *, source_id: int, modes: dict[str, str], materialised: set[str]
) -> str:
    """A condition true when ``value`` is not a sourcedId of ``target`` in the post-state.

    Against a materialised id set (``ids_<target>``) when one was built for bulk rows;
    otherwise probes, driven by the (small) rows being checked: the staged rows of the
    target, and the current rows through the partial sourcedId index, so that a delta
    costs in proportion to the delta and not to the roster. Two top-level NOT EXISTS
    (rather than NOT of an OR) so that each becomes an anti-join.
    """
    if target in materialised:
        return (
            f"NOT EXISTS (SELECT 1 FROM ids_{target.lower()} i WHERE i.sourced_id = {value})"
        )
    tables = TABLES[target]
    mode = modes.get(target, "absent")
    kept = _current_kept_sql(target, source_id, mode)
    if mode == "delta":
        # c.sourced_id = value, so whether it is staged for deletion does not depend on
        # c: an uncorrelated NOT IN is hashed once instead of re-scanning staging per probe
        # (staged sourcedIds are NOT NULL and value is NOT NULL, so NOT IN = NOT EXISTS).
        kept = (
            f"(c.source_id <> {int(source_id)} OR {value} NOT IN (SELECT d.sourced_id "
            f"FROM {tables.staging} d WHERE d.status = 'tobedeleted'))"
        )
    # OFFSET 0 keeps this a probe per checked value through the current-sourcedId index:
    # as an anti-join, the planner would rather hash the whole roster than probe it a few
    # thousand times (its page costs assume a cold disk), costing a delta the roster's size.
    sql = (
        f"NOT EXISTS (SELECT 1 FROM {tables.table} c WHERE c.sourced_id = {value} "
        f"AND c.valid_to_version IS NULL AND {kept} OFFSET 0)"
    )
    if mode in ("bulk", "delta"):
        sql += (
            f" AND NOT EXISTS (SELECT 1 FROM {tables.staging} p WHERE p.sourced_id = {value} "
            f"AND p.status IS DISTINCT FROM 'tobedeleted')"
        )
    return sql


def check_references(*, source_id: int, modes: dict[str, str]) -> list[IngestError]:
    """Every reference of every staged active row must resolve in the post-state.

    Bulk rows are checked against materialised post-state id sets (``ids_<target>``,
    hash joins: a bulk file is as large as the roster anyway); delta rows probe the
    current tables through their sourcedId index, so a delta never reads the whole roster.
    """
    supplied = {e for e, m in modes.items() if m in ("bulk", "delta")}
    # targets whose id sets a bulk file's rows are checked against, or whose removed
    # candidates are as large as the roster (a bulk target, for the orphan check)
    materialised = sorted(
        {r.target for r in REFERENCES if modes.get(r.entity) == "bulk"}
        | {r.target for r in REFERENCES if modes.get(r.target) == "bulk"}
    )
    found: list[IngestError] = []
    with connection.cursor() as cursor:
        for target in materialised:
            cursor.execute(f"DROP TABLE IF EXISTS ids_{target.lower()}")
            cursor.execute(
                f"CREATE TEMPORARY TABLE ids_{target.lower()} AS "
                f"{_post_state_ids_sql(target, source_id=source_id, modes=modes)}"
            )
            # No index: every probe of an id set is an anti-join the planner hashes.
            cursor.execute(f"ANALYZE ids_{target.lower()}")
        for ref in REFERENCES:
            if ref.entity not in supplied:
                continue
            tables = TABLES[ref.entity]
            column = tables.staged("s", ref.column)
            # a plain column stays a column (a lateral subquery would defeat the hash join)
            if ref.is_list:
                source_rows = f"{tables.staging} s CROSS JOIN LATERAL unnest({column}) AS r(ref)"
                value = "r.ref"
            else:
                source_rows = f"{tables.staging} s"
                value = column
            absent = _absent_sql(
                ref.target, value, source_id=source_id, modes=modes,
                materialised=set(materialised) if modes[ref.entity] == "bulk" else set(),
            )
            cursor.execute(
                f"""
                SELECT s.line, s.sourced_id, {value} FROM {source_rows}
                WHERE {value} IS NOT NULL AND s.status IS DISTINCT FROM 'tobedeleted'
                  AND {absent}
                ORDER BY s.n LIMIT {MAX_ERRORS_PER_CHECK}
                """
            )
            header = tables.header_of(ref.column)
            for line, sid, value in cursor.fetchall():
                found.append(
                    IngestError(
                        tables.file_name, line, header, codes.REFERENCE_MISSING,
                        MESSAGES[codes.REFERENCE_MISSING].format(
                            sid=sid, column=header, ref=value, target=_TARGET_NAMES[ref.target]
                        ),
                    )
                )
        found += _check_orphans(
            cursor, source_id=source_id, modes=modes, supplied=supplied,
            materialised=set(materialised),
        )
        for target in materialised:
            cursor.execute(f"DROP TABLE IF EXISTS ids_{target.lower()}")
    return found


def _check_orphans(  # type: ignore[no-untyped-def]
    cursor, *, source_id: int, modes: dict[str, str], supplied: set[str],
    materialised: set[str],
) -> list[IngestError]:
    """Rows the source keeps from its current roster (absent files, delta rows not
    restated) must not be left pointing at records this feed removes.

    Only the removed ids (``rm_<target>``: the source's records the feed drops that no
    source keeps) are joined against, so an import that removes nothing costs nothing.
    """
    found: list[IngestError] = []
    removed: dict[str, bool] = {}
    for target in sorted({r.target for r in REFERENCES if r.target in supplied}):
        t = TABLES[target]
        if modes[target] == "bulk":
            candidates = (
                f"SELECT c.sourced_id FROM {t.table} c WHERE c.source_id = {source_id} "
                f"AND c.valid_to_version IS NULL AND NOT EXISTS "
                f"(SELECT 1 FROM {t.staging} s WHERE s.sourced_id = c.sourced_id)"
            )
        else:
            candidates = f"SELECT sourced_id FROM {t.staging} WHERE status = 'tobedeleted'"
        cursor.execute(f"DROP TABLE IF EXISTS rm_{target.lower()}")
        absent = _absent_sql(
            target, "r.sourced_id", source_id=source_id, modes=modes, materialised=materialised
        )
        cursor.execute(
            f"CREATE TEMPORARY TABLE rm_{target.lower()} AS SELECT r.sourced_id "
            f"FROM ({candidates}) r WHERE {absent}"
        )
        removed[target] = cursor.rowcount > 0
    for ref in REFERENCES:
        mode = modes.get(ref.entity, "absent")
        if not removed.get(ref.target) or mode == "bulk":
            continue
        tables = TABLES[ref.entity]
        kept = f"c.valid_to_version IS NULL AND c.source_id = {source_id}"
        if mode == "delta":
            kept += (
                f" AND NOT EXISTS (SELECT 1 FROM {tables.staging} s "
                f"WHERE s.sourced_id = c.sourced_id)"
            )
        column = f'c."{ref.column}"'
        rm = f"rm_{ref.target.lower()}"
        # No ORDER BY ... LIMIT here: it tempts the planner into walking the sourcedId
        # index with a nested loop per row. Filter first (array overlap for lists), sort after.
        if ref.is_list:
            # Array overlap with the removed ids first (the GIN index on users' agents),
            # so only the lists that name a removed record are unnested.
            sql = (
                f"SELECT c.sourced_id, r.ref FROM {tables.table} c "
                f"CROSS JOIN LATERAL unnest({column}) AS r(ref) WHERE {kept} "
                f"AND {column} && (SELECT coalesce(array_agg(m.sourced_id::text), '{{}}') "
                f"FROM {rm} m) AND r.ref IN (SELECT m.sourced_id FROM {rm} m)"
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
    for target in removed:
        cursor.execute(f"DROP TABLE IF EXISTS rm_{target.lower()}")
    return found


def _post_state_rows_sql(
    entity: str, columns: str, *, source_id: int, mode: str, current_filter: str = "TRUE"
) -> str:
    """This source's rows of ``entity`` after the import, with the staged line (or NULL).

    ``current_filter`` narrows the current rows read (a condition on ``c``), so that a
    delta reads only the current rows its staged rows can meet.
    """
    tables = TABLES[entity]
    staged = (
        f"SELECT line, sourced_id, {columns} FROM {tables.staging} "
        f"WHERE status IS DISTINCT FROM 'tobedeleted'"
    )
    if mode == "bulk":
        return staged
    return (
        f"{staged} UNION ALL SELECT NULL::integer, sourced_id, {columns} FROM {tables.table} c "
        f"WHERE c.valid_to_version IS NULL AND c.source_id = {source_id} AND {current_filter} "
        f"AND NOT EXISTS (SELECT 1 FROM {tables.staging} s WHERE s.sourced_id = c.sourced_id)"
    )


def check_primary_roles(*, source_id: int, mode: str) -> list[IngestError]:
    """One primary role per user and org: each staged primary beyond the first conflicts."""
    # Only staged primaries are ever reported, so only the (user, org) pairs they name
    # matter: a delta reads just those pairs' current roles, never every user's.
    staging_table = TABLES["roles"].staging
    post = _post_state_rows_sql(
        "roles", "user_sourced_id, org_sourced_id, role_type",
        source_id=source_id, mode=mode,
        current_filter=(
            # NOT (... NOT IN ...): a hashed subplan built once from the staged users, never
            # a join order the planner can misjudge into a nested loop on stale statistics
            f"c.role_type = 'primary' AND NOT (c.user_sourced_id NOT IN "
            f"(SELECT q.user_sourced_id FROM {staging_table} q "
            f"WHERE q.role_type = 'primary' AND q.status IS DISTINCT FROM 'tobedeleted'))"
        ),
    )
    # Conflicts are rare: a hash aggregate (no sort) finds whether there is one at all.
    (conflict,) = _fetch(
        f"SELECT EXISTS (SELECT 1 FROM ({post}) p WHERE role_type = 'primary' "
        f"GROUP BY user_sourced_id, org_sourced_id HAVING count(*) > 1 "
        f"AND count(line) > 0)"
    )[0]
    if not conflict:
        return []
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


def check_state(*, source_id: int, modes: dict[str, str]) -> list[IngestError]:
    """The checks that read the current roster (run under the source's import lock)."""
    found = check_references(source_id=source_id, modes=modes)
    if modes.get("roles") in ("bulk", "delta"):
        found += check_primary_roles(source_id=source_id, mode=modes["roles"])
    for entity in ("orgs", "academicSessions"):
        if modes.get(entity) in ("bulk", "delta"):
            found += check_cycles(entity, source_id=source_id, mode=modes[entity])
    return found
