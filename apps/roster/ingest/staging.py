"""Staging: an import's rows, readable as the view ``stg_<entity>`` of typed columns.

The canonical tables and their staging twins are derived from ``apps.roster.schema``
and the canonical models, so a column is named and typed once. The staging view has
the canonical content columns with exactly the canonical column types (so hashing a
staged row and a stored row gives the same bytes) plus the row ordinal ``n``, the
file ``line`` for error reports, and ``status`` / ``date_last_modified`` (delta
bookkeeping, never hashed). Every check, the diff and the apply read that view.

Behind the view is one of two tables:

* the COPY fast path (fastcopy.py): ``raw_table``, the file's own CSV, one column per
  header column (text, or a date, time or number COPY typed), and the view types the
  rest as it is read. Writing typed copies of every row in a second pass cost an import
  more than the COPY itself, and most rows of a re-sync are only read for their sourcedId
  and hash;
* the row-by-row parser (``staging_copy``): ``stg_<entity>_rows``, typed rows.

The views and the parser's tables are temporary, private to the database session. A
large file's text table is unlogged instead (PostgreSQL may scan it in parallel, and a
second connection may diff it), named after the session so that concurrent imports never
meet; a session that dies leaves it behind, and the next import drops it
(``drop_orphaned_tables``).
"""

# SQL here is composed from identifiers of the schema registry (never from input).
# ruff: noqa: S608

from __future__ import annotations

import operator
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from django.db import DatabaseError, connection, transaction

from apps.roster import schema
from apps.roster.models import CANONICAL_MODELS, CanonicalRow

# Schema columns the canonical tables do not keep as content: identity and delta
# bookkeeping (kept separately) and SIS passwords (never kept, data minimisation).
BOOKKEEPING = ("sourced_id", "status", "date_last_modified")
NOT_KEPT = frozenset({"password"})

# How often (in rows) the progress callback hears from a COPY.
PROGRESS_EVERY = 50_000


@dataclass(frozen=True)
class EntityTables:
    """One entity's canonical table, its staging table and the column lists between them."""

    entity: str
    schema: schema.EntitySchema
    model: type[CanonicalRow]
    table: str
    staging: str
    # canonical content columns (hashed), in schema order
    content: tuple[str, ...]
    # positions in a canonical row tuple of sourced_id, status, date_last_modified, *content
    positions: tuple[int, ...]
    # PostgreSQL type names of the COPY columns, so psycopg need not inspect each value
    copy_types: tuple[str, ...]
    # content columns holding lists: staged as array literals (text), see ``staged``
    list_columns: frozenset[str]
    # their slots in the picked tuple (sourced_id, status, dlm, *content)
    list_slots: tuple[int, ...]

    @property
    def file_name(self) -> str:
        return self.schema.file_name

    def header_of(self, column: str) -> str:
        """The CSV header a canonical column is read from (for error reports)."""
        for col in self.schema.columns:
            if col.name == column:
                return col.header
        return column

    @property
    def rows_table(self) -> str:
        """The parser path's typed table behind the staging view."""
        return f"{self.staging}_rows"

    @property
    def raw_table(self) -> str:
        """The fast path's CSV text table behind the staging view (temporary for a small
        file, unlogged for a large one; see the module doc), named after this session."""
        return f"ingest_raw_{session_key()}_{self.model._meta.model_name}"

    def staged(self, alias: str, column: str) -> str:
        """A staged column (the staging view already has the canonical type)."""
        return f"{alias}.{_q(column)}"

    def hash_sql(self, alias: str) -> str:
        """64-bit hash of the typed content columns, as bytea: identical for equal values.

        PostgreSQL's record hash of the row value: each column hashed by its type's own
        hash function, so no text is rendered (md5 over the row's text cost four times as
        much, and an import hashes every staged row). The hash only detects whether one
        record changed between two of its versions (the source is trusted to send its own
        data), so it need not be cryptographic, and 64 bits leave one missed change in 2^64;
        a second seeded hash (migration 0004) doubled the cost of every diff for nothing
        (migration 0008 cut stored hashes to this one). A staged row (through the staging
        view) and a stored row hash alike.
        """
        cols = ", ".join(f"{alias}.{_q(c)}" for c in self.content)
        return f"int8send(hash_record_extended(ROW({cols}), 0))"

    @property
    def statistics_columns(self) -> str:
        """The staged columns the checks and the diff join or filter on (for ANALYZE)."""
        refs = [c.name for c in self.schema.columns
                if c.type == schema.GUID and c.name in self.content]
        return ", ".join(["n", "sourced_id", "status", *(_q(c) for c in refs)])

    def column_type(self, column: str) -> str:
        """The staging view's SQL type of a bookkeeping or content column."""
        if column in ("n", "line"):
            return "integer"
        if column in ("sourced_id", "status"):
            return "text"
        if column == "date_last_modified":
            return "timestamptz"
        if column in self.list_columns:
            return "text[]"
        field = next(f for f in self.model._meta.concrete_fields if f.column == column)
        return field.db_type(connection)

    def column_collation(self, column: str) -> str:
        """The collation of a text column of the canonical table (its model field's
        ``db_collation``, else the database's): the staging view declares the same, so
        that comparing a staged and a stored value can use the stored column's indexes."""
        field = next((f for f in self.model._meta.concrete_fields if f.column == column), None)
        field = getattr(field, "base_field", field)  # a list: its items' collation
        return getattr(field, "db_collation", None) or "default"

    def content_list(self, alias: str | None = None) -> str:
        """Content columns; with an alias, the staged expressions of them."""
        if alias is None:
            return ", ".join(_q(c) for c in self.content)
        return ", ".join(self.staged(alias, c) for c in self.content)


_acting = threading.local()


def session_key() -> int:
    """This database session's backend process id, which names its unlogged staging and
    change tables: unique among live sessions, and a dead session's tables are known by
    it (``drop_orphaned_tables``). On a thread working for an import (``acting_for``), the
    import's."""
    key = getattr(_acting, "key", None)
    if key is not None:
        return key
    connection.ensure_connection()
    return connection.connection.info.backend_pid


@contextmanager
def acting_for(key: int) -> Iterator[None]:
    """Name staging tables on this thread's connection after the import's session ``key``
    (a second connection staging a file for it)."""
    _acting.key = key
    try:
        yield
    finally:
        _acting.key = None


ORPHANED_TABLES_SQL = r"""
SELECT c.relname FROM pg_class c JOIN pg_namespace ns ON ns.oid = c.relnamespace
WHERE ns.nspname = current_schema() AND c.relkind = 'r' AND c.relpersistence = 'u'
  AND c.relname ~ '^ingest_(raw|chg|ids)_[0-9]+_'
  AND split_part(c.relname, '_', 3)::integer NOT IN (SELECT pid FROM pg_stat_activity)
"""


def drop_orphaned_tables() -> list[str]:
    """Drop the staging and change tables of sessions that ended without dropping them
    (a worker killed mid-import); returns their names."""
    dropped = []
    with connection.cursor() as cursor:
        cursor.execute(ORPHANED_TABLES_SQL)
        for (name,) in cursor.fetchall():
            cursor.execute(f"DROP TABLE IF EXISTS {connection.ops.quote_name(name)}")
            dropped.append(name)
    return dropped


def _q(name: str) -> str:
    """Quote a column name ("primary" is a reserved word)."""
    return connection.ops.quote_name(name)


# Lists travel as array literals in a text column: psycopg's per-element list dumping
# costs more than the rest of a row together, PostgreSQL's array parser far less.
_COPY_TYPES = {
    "ArrayField": "text", "CharField": "text", "TextField": "text", "DateField": "date",
    "DateTimeField": "timestamptz", "BooleanField": "bool", "DecimalField": "numeric",
    "IntegerField": "int4", "PositiveIntegerField": "int4",
}


def _build_tables() -> dict[str, EntityTables]:
    tables = {}
    for entity in schema.ENTITIES:
        entity_schema = schema.SCHEMAS[entity]
        model = CANONICAL_MODELS[entity]
        names = entity_schema.column_names
        content = tuple(n for n in names if n not in BOOKKEEPING and n not in NOT_KEPT)
        positions = tuple(names.index(n) for n in (*BOOKKEEPING, *content))
        fields = {f.column: f for f in model._meta.concrete_fields}
        copy_types = ("int4", "int4", "text", "text", "timestamptz") + tuple(
            _COPY_TYPES[fields[n].get_internal_type()] for n in content
        )
        lists = frozenset(n for n in content if fields[n].get_internal_type() == "ArrayField")
        tables[entity] = EntityTables(
            entity=entity,
            schema=entity_schema,
            model=model,
            table=model._meta.db_table,
            staging=f"stg_{model._meta.model_name}",
            content=content,
            positions=positions,
            copy_types=copy_types,
            list_columns=lists,
            list_slots=tuple(3 + content.index(n) for n in content if n in lists),
        )
    return tables


TABLES: dict[str, EntityTables] = _build_tables()


STAGED_COLUMNS = ("n", "line", "sourced_id", "status", "date_last_modified")


def _rows_ddl(tables: EntityTables) -> str:
    """The parser path's table: the view's types, except lists as array literals (text)."""
    columns = ["n integer NOT NULL", "line integer", "sourced_id text NOT NULL",
               "status text", "date_last_modified timestamptz"]
    for name in tables.content:
        db_type = "text" if name in tables.list_columns else tables.column_type(name)
        columns.append(f"{_q(name)} {db_type}")
    return f"CREATE TEMPORARY TABLE {tables.rows_table} ({', '.join(columns)})"


def staging_view(tables: EntityTables, select: str) -> str:
    """The statement creating the staging view from ``select``, whose columns are
    ``STAGED_COLUMNS`` then the content columns, each of its type in the view
    (``EntityTables.column_type``)."""
    return f"CREATE TEMPORARY VIEW {tables.staging} AS {select}"


def _rows_view(tables: EntityTables) -> str:
    columns = [f"r.{_q(c)}" for c in STAGED_COLUMNS] + [
        f"r.{_q(c)}::text[] AS {_q(c)}" if c in tables.list_columns else f"r.{_q(c)}"
        for c in tables.content
    ]
    return staging_view(tables, f"SELECT {', '.join(columns)} FROM {tables.rows_table} r")


def _drop_sql(tables: EntityTables) -> list[str]:
    return [
        f"DROP VIEW IF EXISTS {tables.staging}",
        f"DROP TABLE IF EXISTS {tables.rows_table}",
        f"DROP TABLE IF EXISTS {tables.raw_table}",
    ]


# Session settings for an import: its sorts (index builds), hashes (diff, checks) and
# temporary tables are the size of the roster, far beyond PostgreSQL's defaults (4 MB of
# work_mem, 8 MB of temp_buffers), which would spill every one of them to disk.
IMPORT_SETTINGS = {"work_mem": "256MB", "maintenance_work_mem": "256MB"}
TEMP_BUFFERS = "256MB"


def session_tune() -> None:
    """Apply IMPORT_SETTINGS to this session (undone by ``session_untune``).

    temp_buffers can only be raised before the session first touches a temporary table (a
    worker's long-lived connection may already have): then the default stays.
    """
    with connection.cursor() as cursor:
        for name, value in IMPORT_SETTINGS.items():
            cursor.execute(f"SET {name} = %s", [value])
        try:
            with transaction.atomic():
                cursor.execute("SET temp_buffers = %s", [TEMP_BUFFERS])
        except DatabaseError:
            pass


def session_untune() -> None:
    with connection.cursor() as cursor:
        for name in IMPORT_SETTINGS:
            cursor.execute(f"RESET {name}")


def staging_create(entities: Iterable[str]) -> None:
    """Start staging these entities in this database session: drop what an earlier import
    left, tune the session. Each entity's view is made by whichever path stages it."""
    session_tune()
    drop_orphaned_tables()
    with connection.cursor() as cursor:
        for entity in entities:
            tables = TABLES[entity]
            for statement in _drop_sql(tables):
                cursor.execute(statement)


def staging_drop(entities: Iterable[str] | None = None) -> None:
    with connection.cursor() as cursor:
        for entity in entities or TABLES:
            for statement in _drop_sql(TABLES[entity]):
                cursor.execute(statement)
    session_untune()


def staging_copy(
    entity: str,
    rows: Iterable[tuple[int, tuple]],
    *,
    progress: Callable[[str, int], None] | None = None,
) -> int:
    """COPY (line, canonical row) pairs into the entity's staging rows; returns the count.

    ``progress`` is called during the COPY, so it must not use the database connection.

    Constant memory: rows stream from the parser into the COPY buffer. The staging
    table is analysed afterwards, because temporary tables are invisible to
    autovacuum and the diff's join plans depend on row estimates.
    """
    tables = TABLES[entity]
    pick = operator.itemgetter(*tables.positions)
    column_list = ", ".join(
        ["n", "line", "sourced_id", "status", "date_last_modified"]
        + [_q(c) for c in tables.content]
    )
    count = 0
    # A savepoint, so that a COPY the database refuses leaves the session usable for
    # recording the failure (inside a caller's transaction too).
    with transaction.atomic(), connection.cursor() as cursor:
        for statement in _drop_sql(tables):
            cursor.execute(statement)
        cursor.execute(_rows_ddl(tables))
        cursor.execute(_rows_view(tables))
        with cursor.copy(
            f"COPY {tables.rows_table} ({column_list}) FROM STDIN (FORMAT BINARY)"
        ) as copy:
            copy.set_types(tables.copy_types)
            write = copy.write_row
            slots = tables.list_slots
            for line, row in rows:
                count += 1
                if slots:
                    values = list(pick(row))
                    for slot in slots:
                        if values[slot] is not None:
                            values[slot] = array_literal(values[slot])
                    write((count, line, *values))
                else:
                    write((count, line, *pick(row)))
                if progress is not None and count % PROGRESS_EVERY == 0:
                    progress(entity, count)
        cursor.execute(f"ANALYZE {tables.rows_table} ({tables.statistics_columns})")
    if progress is not None:
        progress(entity, count)
    return count


def array_literal(items: list[str]) -> str:
    """A PostgreSQL text[] literal with every element quoted (so always the same text)."""
    return "{" + ",".join(
        '"' + item.replace("\\", "\\\\").replace('"', '\\"') + '"' for item in items
    ) + "}"
