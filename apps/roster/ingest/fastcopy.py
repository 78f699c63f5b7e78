"""The COPY fast path: a file's own CSV bytes go to PostgreSQL, and SQL checks its rows.

Parsing and checking a large district's rows one by one in Python is the slowest part of
an import. For a 1.2 file this module instead

1. streams the entry's bytes (through the same size-limited inflater, with the encoding,
   quoting and line checks of ``parse.PlainScan``) into ``COPY raw (FORMAT csv)``, a
   temporary table of text columns, one per header column;
2. converts the raw text into the typed staging table in one ``INSERT ... SELECT``, whose
   ``WHERE`` holds every row-level check of the file's row plan (rowplan.py): required
   fields, GUID charset, enumerations after the mapping rules, booleans, dates and times,
   numbers, lists, bulk/delta status and date order.

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
from collections.abc import Callable

import psycopg
from django.db import DataError, connection, transaction
from psycopg import sql

from apps.roster import schema as S
from apps.roster.ingest.parse import Feed, NotPlain
from apps.roster.ingest.rowplan import Field
from apps.roster.ingest.staging import TABLES, staging_copy
from apps.roster.ingest.zipsafe import CorruptEntryError, ZipBombError

logger = logging.getLogger(__name__)

# PostgreSQL's regex engine is slow with a bounded repeat ({1,255}): the length limit of
# a GUID (255 characters, all ASCII) is checked with length() instead.
_GUID = "[-0-9A-Za-z._/@]+"
_RE_GUID = f"^{_GUID}$"
_RE_GUID_LIST = f"^ *{_GUID} *(, *{_GUID} *)*$"
_RE_DATE = "^[0-9]{4}-[0-9]{2}-[0-9]{2}$"
# PostgreSQL would read hour 24 and second 60; Python's datetime (the parser) does not.
_RE_DATETIME = (
    "^[0-9]{4}-[0-9]{2}-[0-9]{2}T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\\.[0-9]{1,6})?Z$"
)
_RE_YEAR = "^[0-9]{4}$"
_RE_DECIMAL = "^(-?[0-9]{1,15}(\\.[0-9]{1,10})?|-?\\.[0-9]{1,10})$"
_RE_INTEGER = "^-?[0-9]{1,18}$"
# Whitespace Python's str.strip() removes besides the space: a string list holding any of
# them next to a space is left to the parser.
_RE_OTHER_SPACE = (
    "[\\t\\n\\v\\f\\r\\u001c-\\u001f\\u0085\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029"
    "\\u202f\\u205f\\u3000]"
)

# Fall back to the parser on these; anything else (a bug, a lost connection) is raised.
_DECLINED = (NotPlain, ZipBombError, CorruptEntryError, DataError, psycopg.DataError)


class _Declined(Exception):
    pass


def staging_load(
    entity: str, feed: Feed, *, progress: Callable[[str, int], None] | None = None
) -> int:
    """Stage an entity's file (fast path if it qualifies, else the parser); returns rows."""
    plan = feed.plain_plan(entity)
    if plan is not None:
        try:
            count = _copy_plain(entity, feed, plan.fields, plan.mode, plan.width)
        except (_Declined, *_DECLINED) as exc:
            logger.info("%s: row-by-row parse (%s)", plan.file_name, exc or type(exc).__name__)
        else:
            if progress is not None:
                progress(entity, count)
            return count
    return staging_copy(entity, feed.rows(entity), progress=progress)


def _copy_plain(entity: str, feed: Feed, fields: tuple[Field, ...], mode: str,
                width: int) -> int:
    tables = TABLES[entity]
    raw = f"raw_{tables.model._meta.model_name}"
    columns = ", ".join(f"c{i}" for i in range(width))
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(f"DROP TABLE IF EXISTS {raw}")
        cursor.execute(
            f"CREATE TEMPORARY TABLE {raw} ({', '.join(f'c{i} text' for i in range(width))})"
        )
        scan = feed.plain_scan(entity)
        with cursor.copy(
            f"COPY {raw} ({columns}) FROM STDIN (FORMAT csv, ENCODING 'UTF8')"
        ) as copy:
            for block in scan:
                copy.write(block)
        copied = cursor.rowcount
        if copied != scan.lines:
            raise _Declined(f"{copied} rows read from {scan.lines} lines")
        cursor.execute(_insert_sql(entity, raw, fields, mode, guids_checked=scan.guids_checked))
        if cursor.rowcount != copied:
            raise _Declined("a row fails a check")
        cursor.execute(f"DROP TABLE {raw}")
        cursor.execute(f"ANALYZE {tables.staging} ({tables.statistics_columns})")
    return copied


def _literal(value: str) -> str:
    connection.ensure_connection()
    return sql.Literal(value).as_string(connection.connection)


def _insert_sql(entity: str, raw: str, fields: tuple[Field, ...], mode: str, *,
                guids_checked: bool = False) -> str:
    """INSERT ... SELECT from the raw table into staging, keeping only rows that pass.

    ``guids_checked``: the scan already proved every GUID column bare and valid. Rows are
    numbered in the order COPY wrote them: a sequential scan of a temporary table just
    filled reads its blocks in order (no synchronised or parallel scans of local buffers).
    """
    tables = TABLES[entity]
    schema = S.SCHEMAS[entity]
    by_out = {f.out_index: f for f in fields if f.out_index >= 0}
    checks: list[str] = []
    typed: dict[int, str] = {}  # schema index -> typed SQL value
    # Bulk rows leave status and dateLastModified empty; delta rows need both.
    if mode == "bulk":
        checks.append("coalesce(r.c1, '') = '' AND coalesce(r.c2, '') = ''")
    else:
        checks.append("coalesce(r.c1, '') <> '' AND coalesce(r.c2, '') <> ''")
    for out_index, field in by_out.items():
        if mode == "bulk" and out_index in (1, 2):
            continue
        value, check = _column_sql(field)
        if guids_checked and field.column.type in (S.GUID, S.GUID_LIST):
            check = ""
        typed[out_index] = value
        if check:
            checks.append(check)
    for start, end in schema.date_order:
        i, j = schema.index(start), schema.index(end)
        if i in typed and j in typed:
            a, b = typed[i], typed[j]
            checks.append(f"({a} IS NULL OR {b} IS NULL OR {a} <= {b})")
    names = schema.column_names
    values = []
    for column in ("sourced_id", "status", "date_last_modified", *tables.content):
        value = typed.get(names.index(column), "NULL")
        if column in tables.list_columns and value != "NULL":
            value = f"({value})::text"
        values.append(value)
    target = ", ".join(
        ["n", "line", "sourced_id", "status", "date_last_modified"]
        + [connection.ops.quote_name(c) for c in tables.content]
    )
    return (
        f"INSERT INTO {tables.staging} ({target}) "
        f"SELECT row_number() OVER (), row_number() OVER () + 1, {', '.join(values)} "
        f"FROM {raw} r WHERE {' AND '.join(f'({c})' for c in checks)}"
    )


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
    if kind in (S.DATE, S.DATETIME, S.YEAR, S.DECIMAL, S.INTEGER):
        pattern, cast = {
            S.DATE: (_RE_DATE, "date"), S.DATETIME: (_RE_DATETIME, "timestamptz"),
            S.YEAR: (_RE_YEAR, "integer"), S.DECIMAL: (_RE_DECIMAL, "numeric"),
            S.INTEGER: (_RE_INTEGER, "bigint"),
        }[kind]
        return f"nullif({v}, '')::{cast}", either(f"{v} ~ '{pattern}'")
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
