"""The COPY fast path: a file's own CSV bytes go to PostgreSQL, and SQL checks its rows.

Parsing and checking a large district's rows one by one in Python is the slowest part of
an import. For a 1.2 file this module instead

1. streams the entry's bytes (through the same size-limited inflater, with the encoding,
   quoting and line checks of ``parse.PlainScan``) into ``COPY raw (FORMAT csv)``, a
   table of one column per header column: text, except dates, times and numbers, which
   COPY reads into their types when every line passes their patterns (a line that does
   not sends the file round again, all text, for SQL to check);
2. makes every row-level check of the file's row plan (rowplan.py): required fields,
   GUID charset, enumerations after the mapping rules, booleans, dates and times,
   numbers, lists, bulk/delta status and date order. Most are made on the bytes as they
   stream past (``parse.scan_pattern``, at most as lenient as the SQL check it stands in
   for); one read of the rows in SQL makes the rest (mapped enumerations, lists, date
   order: all of them when any line missed a pattern) and computes every cast a pattern
   does not guarantee (2024-02-30);
3. makes the staging view (staging.py) type the raw text as later steps read it.

It is all or nothing per file. Every check here is at least as strict as the parser's, so
if any row fails one, PostgreSQL refuses the bytes, a cast fails, or the row count differs
from the line count, the savepoint is rolled back and the file goes through the row-by-row
parser instead, which reports each problem exactly (file, line, column, code). A clean file,
the only kind that can be applied, is staged identically either way (the tests compare
both paths row by row).
"""

# SQL here is composed from identifiers of the schema registry and integer positions;
# values (enumerations, mapping rules) are quoted as literals by psycopg.
# ruff: noqa: S608

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import NamedTuple

import psycopg
from django.db import DataError, connection, transaction
from psycopg import sql

from apps.roster import schema as S
from apps.roster.ingest import relay
from apps.roster.ingest.parse import VALUE_PATTERNS, Feed, NotPlain, scan_pattern
from apps.roster.ingest.rowplan import Field
from apps.roster.ingest.staging import (
    BOOKKEEPING,
    TABLES,
    session_key,
    staging_copy,
    staging_view,
)
from apps.roster.ingest.zipsafe import CorruptEntryError, ZipBombError

logger = logging.getLogger(__name__)

# PostgreSQL's regex engine is slow with a bounded repeat ({1,255}): the length limit of
# a GUID (255 characters, all ASCII) is checked with length() instead.
_GUID = "[-0-9A-Za-z._/@]+"
_RE_GUID = f"^{_GUID}$"
_RE_GUID_LIST = f"^ *{_GUID} *(, *{_GUID} *)*$"
# The byte scan's patterns, anchored (one definition: parse.VALUE_PATTERNS).
_RE_VALUE = {kind: f"^{pattern}$" for kind, pattern in VALUE_PATTERNS.items()}
# Types whose staged value is a cast a matching pattern does not guarantee (2024-02-30, a
# number too large for its column), and the cast.
_CASTS = {S.DATE: "date", S.DATETIME: "timestamptz", S.YEAR: "integer", S.DECIMAL: "numeric",
          S.INTEGER: "bigint"}
# Whitespace Python's str.strip() removes besides the space: a string list holding any of
# them next to a space is left to the parser.
_RE_OTHER_SPACE = (
    "[\\t\\n\\v\\f\\r\\u001c-\\u001f\\u0085\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029"
    "\\u202f\\u205f\\u3000]"
)

# Fall back to the parser on these; anything else (a bug, a lost connection) is raised.
_DECLINED = (NotPlain, ZipBombError, CorruptEntryError, DataError, psycopg.DataError)


# Staged files with fewer rows are not analysed.
ANALYZE_FROM_ROWS = 20_000
# Files at least this large (uncompressed bytes) are staged in an unlogged table, which a
# second connection can read: the references a first load's checks share out (where a
# 50,000-pupil district's 2 to 4 MB classes, demographics and results files, staged in
# temporary tables, kept part of the checks on one connection) and the files staging shares
# out. Smaller ones go in temporary tables, which cost less to create than an unlogged
# table's synced init fork.
UNLOGGED_FROM_BYTES = 1 << 20


class _Declined(Exception):
    pass


class _Untyped(Exception):
    """A line missed its fields' patterns: stage the file as text, where SQL checks it."""


def staging_load(
    entity: str, feed: Feed, *, progress: Callable[[str, int], None] | None = None
) -> int:
    """Stage an entity's file (fast path if it qualifies, else the parser); returns rows."""
    plan = feed.plain_plan(entity)
    if plan is not None:
        try:
            count, _ = _copy_fast(entity, feed)
        except (_Declined, *_DECLINED) as exc:
            logger.info("%s: row-by-row parse (%s)", plan.file_name, exc or type(exc).__name__)
        else:
            if progress is not None:
                progress(entity, count)
            return count
    return staging_copy(entity, feed.rows(entity), progress=progress)


def stage_feed(
    feed: Feed, entities: list[str], *, progress: Callable[[str, int], None] | None = None,
    staged: Callable[[str, int], None] | None = None,
) -> dict[str, int]:
    """Stage the feed's files of ``entities``: large ones partly on a second connection
    (``StagedBeside``), the rest here. ``progress`` hears from inside each COPY, ``staged``
    after each file (outside any COPY: it may use this connection). Stops at a zip bomb or
    corrupt entry (``feed.fatal``). Rows staged, by entity, in file order."""
    beside = StagedBeside(feed, entities)
    counts: dict[str, int] = {}

    def done(entity: str, rows: int) -> None:
        counts[entity] = rows
        if staged is not None:
            staged(entity, rows)

    for entity in entities:
        if feed.fatal:
            break
        if beside.take_here(entity):
            done(entity, staging_load(entity, feed, progress=progress))
    staged_beside = beside.finish()
    for entity in beside.entities:
        if feed.fatal:
            break
        done(entity, staged_beside[entity] if entity in staged_beside
             else staging_load(entity, feed, progress=progress))
    return {e: counts[e] for e in entities if e in counts}


def _copy_fast(entity: str, feed: Feed, *, beside: bool = False) -> tuple[int, str]:
    """``_copy_plain`` with typed columns, or untyped when a line missed its patterns."""
    plan = feed.plain_plan(entity)
    assert plan is not None
    try:
        return _copy_plain(entity, feed, plan.fields, plan.mode, plan.width, beside=beside)
    except _Untyped:
        return _copy_plain(entity, feed, plan.fields, plan.mode, plan.width, typed=False,
                           beside=beside)


# Once a feed has a file at least this large (declared bytes), files are staged on a second
# connection too, while this one stages the rest: two COPYs, one per core (a large
# district's staging 2.85 -> 2.35 s with its largest file beside).
BESIDE_FROM_BYTES = 16 << 20


class StagedBeside:
    """Large files of a feed, staged on a worker thread's connection while this one stages
    the others.

    The two connections share the large files out as they go (``FileShares``): the worker
    begins with the largest and, each time it is free, takes the largest this connection
    has not begun; this connection goes through the feed in order and skips the files the
    worker took. (Split by size beforehand, the worker sat idle for nearly half of a
    50,000-pupil district's staging: a user's line costs more to stage than an enrolment's.)

    The worker only ever takes the fast path. Should it decline a file, or fail in any way
    (no second connection, say), ``finish`` leaves the file out and the caller stages it as
    any other, so that declines, the parser and its error reports all happen on this
    connection, in the usual order. Every file the worker may take is reserved at its
    declared size in the feed's total size limit before anything streams, and may not
    inflate past it there.
    """

    def __init__(self, feed: Feed, entities: list[str]) -> None:
        candidates = [] if connection.in_atomic_block else _beside_candidates(feed, entities)
        self._shares = FileShares(candidates)
        self._staged: dict[str, tuple[int, str]] = {}
        self._thread: threading.Thread | None = None
        if not candidates:
            return
        for entity in candidates:
            feed.reserve(entity)
        self._thread = threading.Thread(target=self._stage, args=(feed, session_key()),
                                        name="roster-stage", daemon=True)
        self._thread.start()

    @property
    def entities(self) -> list[str]:
        """The files the worker took, in the order it took them."""
        return self._shares.beside

    def take_here(self, entity: str) -> bool:
        """Whether this connection stages ``entity`` (False: the worker took it)."""
        return self._shares.take_here(entity)

    def _stage(self, feed: Feed, key: int) -> None:
        try:
            with relay.beside(key=key):
                while not feed.fatal and (entity := self._shares.take_beside()) is not None:
                    try:
                        self._staged[entity] = _copy_fast(entity, feed, beside=True)
                    except (_Declined, *_DECLINED) as exc:
                        logger.info("%s: staged on the import's connection (%s)", entity,
                                    exc or type(exc).__name__)
        except Exception as exc:  # noqa: BLE001 - the caller stages the files instead
            logger.info("no staging beside (%s)", exc or type(exc).__name__)

    def finish(self) -> dict[str, int]:
        """Wait for the worker; make the staging views here. Rows staged, by entity (the
        files it staged; the caller stages the others)."""
        if self._thread is None:
            return {}
        self._thread.join()
        with connection.cursor() as cursor:
            for _, view in self._staged.values():
                cursor.execute(view)
        return {entity: copied for entity, (copied, _) in self._staged.items()}


class FileShares:
    """Which connection stages which of the files the worker may take (``candidates``,
    largest first): the worker has the largest from the start, then whichever is largest
    and not yet begun by the import's connection each time it asks."""

    def __init__(self, candidates: list[str]) -> None:
        self._waiting = list(candidates[1:])
        self.beside: list[str] = list(candidates[:1])
        self._handed = 0  # of ``beside``, how many the worker has asked for
        self._lock = threading.Lock()

    def take_here(self, entity: str) -> bool:
        with self._lock:
            if entity in self.beside:
                return False
            if entity in self._waiting:
                self._waiting.remove(entity)
            return True

    def take_beside(self) -> str | None:
        with self._lock:
            if self._handed == len(self.beside):
                if not self._waiting:
                    return None
                self.beside.append(self._waiting.pop(0))
            self._handed += 1
            return self.beside[self._handed - 1]


def _beside_candidates(feed: Feed, entities: list[str]) -> list[str]:
    """The files the worker may take, largest first: those the fast path may take, the
    largest when it has at least ``BESIDE_FROM_BYTES`` (else none), then those large
    enough to be staged unlogged anyway."""
    if len(entities) < 2:
        return []
    plain = sorted(((feed.declared_size(e), e) for e in entities
                    if feed.plain_plan(e) is not None), reverse=True)
    if not plain or plain[0][0] < BESIDE_FROM_BYTES:
        return []
    return [plain[0][1]] + [e for size, e in plain[1:] if size >= UNLOGGED_FROM_BYTES]


def _copy_plain(entity: str, feed: Feed, fields: tuple[Field, ...], mode: str,
                width: int, *, typed: bool = True, beside: bool = False) -> tuple[int, str]:
    """Stage the file; returns the rows staged and the statement that made the staging
    view. ``beside``: on a second connection for the import (``StagedBeside``), which
    makes the view on its own connection: the table is unlogged, the view left to it."""
    tables = TABLES[entity]
    raw = tables.raw_table
    columns = ", ".join(f"c{i}" for i in range(width))
    scan = feed.plain_scan(entity, reserved=beside)
    # Columns COPY reads straight into their type, when the scan checks every line
    # against the fields' patterns (else, and once a line misses, all stays text).
    types = _raw_types(fields) if typed and scan.lines_checked else {}
    values, checks = _typed_sql(entity, fields, mode, types)
    options = "FORMAT csv, ENCODING 'UTF8'"
    if types:
        # a quoted empty field ("") is empty too, as the parser reads it
        options += f", FORCE_NULL ({', '.join(f'c{i}' for i in sorted(types))})"
    raw_columns = ", ".join(f"c{i} {types.get(i, 'text')}" for i in range(width))
    with transaction.atomic(), connection.cursor() as cursor:
        # Replaces the parser path's view (restored if this savepoint rolls back). n
        # numbers rows in the order COPY reads them (the identity's sequence is the
        # table's own, so it starts at 1 for every file; cached in large steps, as one
        # sequence call per row cost a tenth of the COPY). One round trip.
        # A large file's table is unlogged (PostgreSQL may scan it in parallel, and a
        # second connection may diff it); a small one's temporary, which costs less to
        # create than an unlogged table's synced init fork.
        persistence = ("UNLOGGED" if beside or feed.declared_size(entity) >= UNLOGGED_FROM_BYTES
                       else "TEMPORARY")
        cursor.execute(
            f"DROP VIEW IF EXISTS {tables.staging}; DROP TABLE IF EXISTS {raw}; "
            f"CREATE {persistence} TABLE {raw} (n integer GENERATED ALWAYS AS IDENTITY "
            f"(CACHE 100000), "
            f"{raw_columns})"
        )
        with cursor.copy(f"COPY {raw} ({columns}) FROM STDIN ({options})") as copy:
            for block in scan:
                copy.write(block)
        copied = cursor.rowcount
        if copied != scan.lines:
            raise _Declined(f"{copied} rows read from {scan.lines} lines")
        if types and not scan.lines_checked:
            # COPY read some value its pattern refuses (2024-9-2, say) and SQL must now
            # check it as text: this savepoint goes, the file is staged again untyped
            raise _Untyped
        # One read of every row: the checks, and every cast that can still fail after
        # its pattern matched (2024-02-30, a number too large for its column) computed,
        # so that it raises DataError here rather than in a later reader of the view.
        active = [c for c in checks if not (scan.lines_checked and c.scan)]
        passing = " AND ".join(f"({c.sql})" for c in active) or "TRUE"
        casts = "".join(f", count({value})" for value in values.values() if _may_fail(value))
        cursor.execute(
            f"SELECT count(*) FILTER (WHERE NOT coalesce({passing}, false)){casts} "
            f"FROM {raw} r"
        )
        failing = cursor.fetchone()[0]
        if failing:
            raise _Declined(f"{failing} rows fail a check")
        named = ", ".join(
            f"{value} AS {connection.ops.quote_name(column)}" for column, value in values.items()
        )
        view = staging_view(tables, f"SELECT r.n, r.n + 1 AS line, {named} FROM {raw} r")
        statements = [] if beside else [view]
        if copied >= ANALYZE_FROM_ROWS:
            # The planner needs row counts and rough distinct counts to join staged rows,
            # not histograms: a 3,000-row sample (statistics target 10), not 30,000. (A
            # delta's few rows: the planner's estimate from the table's size will do.)
            statements.append(
                f"SET default_statistics_target = 10; "
                f"ANALYZE {raw} ({_raw_statistics_columns(entity, fields)}); "
                f"RESET default_statistics_target"
            )
        if statements:
            cursor.execute("; ".join(statements))
    return copied, view


def _literal(value: str) -> str:
    connection.ensure_connection()
    return sql.Literal(value).as_string(connection.connection)


class _Check(NamedTuple):
    sql: str
    scan: bool = False  # a check the byte scan may already have made (parse.scan_pattern)


def _raw_types(fields: tuple[Field, ...]) -> dict[int, str]:
    """Raw columns (by CSV position) that COPY reads into their staged type: the content
    columns whose values are a cast (dates, times, numbers). Their patterns are what the
    input functions read alike (an ISO date in any DateStyle), and the cast is then made
    once, where every later read of the view (checks, the diff's hashes, a first load's
    rows) made it again."""
    return {f.csv_index: _CASTS[f.column.type] for f in fields
            if f.out_index >= 0 and f.column.name not in BOOKKEEPING
            and f.column.type in _CASTS and scan_pattern(f) is not None}


def _typed_sql(
    entity: str, fields: tuple[Field, ...], mode: str, types: dict[int, str] | None = None,
) -> tuple[dict[str, str], list[_Check]]:
    """The staging view's typed values by column (sourced_id, status, date_last_modified,
    then content, each cast to its staged type) and every row-level check, over the raw
    table ``r`` (``types``: its columns already typed, see ``_raw_types``)."""
    types = types or {}
    tables = TABLES[entity]
    schema = S.SCHEMAS[entity]
    by_out = {f.out_index: f for f in fields if f.out_index >= 0}
    checks: list[_Check] = []
    typed: dict[int, str] = {}  # schema index -> typed SQL value
    # Bulk rows leave status and dateLastModified empty; delta rows need both.
    if mode == "bulk":
        checks.append(_Check("coalesce(r.c1, '') = '' AND coalesce(r.c2, '') = ''", True))
    else:
        checks.append(_Check("coalesce(r.c1, '') <> '' AND coalesce(r.c2, '') <> ''"))
    for out_index, field in by_out.items():
        if mode == "bulk" and out_index in (1, 2):
            continue
        if field.csv_index in types:
            # typed by COPY, every line having passed the field's pattern
            typed[out_index] = f"r.c{field.csv_index}"
            continue
        value, check = _column_sql(field)
        typed[out_index] = value
        if check:
            checks.append(_Check(check, scan_pattern(field) is not None))
    for start, end in schema.date_order:
        i, j = schema.index(start), schema.index(end)
        if i in typed and j in typed:
            both_text = not ({by_out[i].csv_index, by_out[j].csv_index} & set(types))
            if both_text and schema.columns[i].type == schema.columns[j].type == S.DATE:
                # both checked as YYYY-MM-DD: their bytes sort as the dates do (no casts)
                a, b = (f"r.c{by_out[k].csv_index} COLLATE \"C\"" for k in (i, j))
                checks.append(_Check(f"(coalesce({a}, '') = '' OR coalesce({b}, '') = '' "
                                     f"OR {a} <= {b})"))
                continue
            a, b = typed[i], typed[j]
            checks.append(_Check(f"({a} IS NULL OR {b} IS NULL OR {a} <= {b})"))
    names = schema.column_names
    values = {}
    for column in (*BOOKKEEPING, *tables.content):
        kind = tables.column_type(column)
        value = typed.get(names.index(column), "NULL")
        if kind.startswith("varchar") or kind in ("text", "text[]"):
            # the canonical column's collation (the checks compare bytes under "C"; readers
            # compare staged values with stored ones, through the stored column's indexes)
            cast = "text[]" if kind == "text[]" else "text"
            value = f'({value})::{cast} COLLATE "{tables.column_collation(column)}"'
        else:
            value = f"({value})::{kind}"
        values[column] = value
    return values, checks


def _may_fail(typed_value: str) -> bool:
    """Whether a typed value is a cast that a matching pattern does not guarantee."""
    return any(f"::{cast}" in typed_value for cast in _CASTS.values())


def _raw_statistics_columns(entity: str, fields: tuple[Field, ...]) -> str:
    """The raw columns behind the staged columns the checks and the diff join on."""
    names = {f.column.name: f.csv_index for f in fields if f.out_index >= 0}
    wanted = ["sourced_id", "status"] + [
        c for c in TABLES[entity].content
        if S.SCHEMAS[entity].columns[S.SCHEMAS[entity].index(c)].type == S.GUID
    ]
    return ", ".join(["n", *(f"c{names[c]}" for c in wanted if c in names)])


def _column_sql(field: Field) -> tuple[str, str]:
    """(typed value, check) of one column, mirroring rowplan.compile_plan and fields.py.

    ``v`` is NULL for an unquoted empty field and '' for a quoted one; the parser sees ''
    for both, so every expression treats them alike.
    """
    # Byte-wise comparisons: equality and these patterns do not depend on the collation,
    # and the database's default one makes each comparison several times slower.
    v = f'r.c{field.csv_index} COLLATE "C"'
    column = field.column
    kind = column.type
    empty = f"coalesce({v}, '') = ''"
    required = field.required

    def either(test: str) -> str:
        return f"{v} <> '' AND {test}" if required else f"{empty} OR ({test})"

    if kind == S.STRING:
        return (v if required else f"nullif({v}, '')"), (f"{v} <> ''" if required else "")
    if kind == S.GUID:  # the parser applies no mapping to a GUID
        return f"nullif({v}, '')", either(f"{v} ~ '{_RE_GUID}' AND length({v}) <= 255")
    if kind == S.BOOLEAN:
        return (f"CASE {v} WHEN 'true' THEN true WHEN 'false' THEN false END",
                either(f"{v} IN ('true', 'false')"))
    if kind in _CASTS:
        return f"nullif({v}, '')::{_CASTS[kind]}", either(f"{v} ~ '{_RE_VALUE[kind]}'")
    if kind == S.GUID_LIST:
        # GUIDs hold no spaces, so dropping every space strips each item.
        items = f"string_to_array(replace(nullif({v}, ''), ' ', ''), ',')"
        longest = f"(SELECT max(length(i)) FROM unnest({items}) i)"
        return items, either(f"{v} ~ '{_RE_GUID_LIST}' AND (length({v}) <= 255 OR "
                             f"{longest} <= 255)")
    if kind == S.STRING_LIST:
        # The parser splits on commas and strips the items only when the text has a space.
        items = (f"CASE WHEN strpos({v}, ' ') = 0 THEN string_to_array({v}, ',') "
                 f"ELSE regexp_split_to_array(btrim({v}, ' '), ' *, *') END")
        # Without a space, "no empty item" is "no leading, trailing or doubled comma".
        no_empty = (f"CASE WHEN strpos({v}, ' ') = 0 THEN {v} NOT LIKE ',%' AND "
                    f"{v} NOT LIKE '%,' AND strpos({v}, ',,') = 0 ELSE "
                    f"array_position({items}, '') IS NULL AND {v} !~ '{_RE_OTHER_SPACE}' END")
        return f"CASE WHEN {empty} THEN NULL ELSE {items} END", either(no_empty)
    if kind == S.ENUM:
        mapped = v
        if field.mapping:
            cases = " ".join(
                f"WHEN {_literal(k)} THEN {_literal(val)}" for k, val in field.mapping.items()
            )
            mapped = f"(CASE {v} {cases} ELSE {v} END)"
        allowed = ", ".join(_literal(term) for term in sorted(column.enum or ()))
        test = f"{mapped} = ANY(ARRAY[{allowed}]::text[])"
        if column.allow_ext:
            test = f"({test} OR (left({mapped}, 4) = 'ext:' AND length({mapped}) > 4))"
        return f"CASE WHEN {empty} THEN NULL ELSE {mapped} END", either(test)
    raise _Declined(f"no SQL check for {kind}")
