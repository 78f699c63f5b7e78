"""Staging: parsed rows go straight into per-run temporary tables with COPY.

The canonical tables and their staging twins are derived from ``apps.roster.schema``
and the canonical models, so a column is named and typed once. A staging table has
the canonical content columns with exactly the canonical column types (so hashing a
staged row and a stored row gives the same bytes) plus the row ordinal ``n``, the
file ``line`` for error reports, and ``status`` / ``date_last_modified`` (delta
bookkeeping, never hashed).

Temporary tables are private to the database session, so concurrent imports never
see each other's staging, and nothing is left behind if a worker dies.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from django.db import connection, transaction

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

    @property
    def file_name(self) -> str:
        return self.schema.file_name

    def header_of(self, column: str) -> str:
        """The CSV header a canonical column is read from (for error reports)."""
        for col in self.schema.columns:
            if col.name == column:
                return col.header
        return column

    def hash_sql(self, alias: str) -> str:
        """md5 of the content columns, as bytea: identical for equal typed values."""
        cols = ", ".join(f"{alias}.{_q(c)}" for c in self.content)
        return f"decode(md5(ROW({cols})::text), 'hex')"

    def content_list(self, alias: str | None = None) -> str:
        prefix = f"{alias}." if alias else ""
        return ", ".join(prefix + _q(c) for c in self.content)


def _q(name: str) -> str:
    """Quote a column name ("primary" is a reserved word)."""
    return connection.ops.quote_name(name)


def _build_tables() -> dict[str, EntityTables]:
    tables = {}
    for entity in schema.ENTITIES:
        entity_schema = schema.SCHEMAS[entity]
        model = CANONICAL_MODELS[entity]
        names = entity_schema.column_names
        content = tuple(n for n in names if n not in BOOKKEEPING and n not in NOT_KEPT)
        positions = tuple(names.index(n) for n in (*BOOKKEEPING, *content))
        tables[entity] = EntityTables(
            entity=entity,
            schema=entity_schema,
            model=model,
            table=model._meta.db_table,
            staging=f"stg_{model._meta.model_name}",
            content=content,
            positions=positions,
        )
    return tables


TABLES: dict[str, EntityTables] = _build_tables()


def _staging_ddl(tables: EntityTables) -> str:
    fields = {f.column: f for f in tables.model._meta.concrete_fields}
    columns = [
        "n integer NOT NULL",
        "line integer",
        "sourced_id text NOT NULL",
        "status text",
        "date_last_modified timestamptz",
    ]
    for name in tables.content:
        columns.append(f"{_q(name)} {fields[name].db_type(connection)}")
    return f"CREATE TEMPORARY TABLE {tables.staging} ({', '.join(columns)})"


def staging_create(entities: Iterable[str]) -> None:
    """(Re)create the staging tables of these entities in this database session."""
    with connection.cursor() as cursor:
        for entity in entities:
            tables = TABLES[entity]
            cursor.execute(f"DROP TABLE IF EXISTS {tables.staging}")
            cursor.execute(_staging_ddl(tables))


def staging_drop(entities: Iterable[str] | None = None) -> None:
    with connection.cursor() as cursor:
        for entity in entities or TABLES:
            cursor.execute(f"DROP TABLE IF EXISTS {TABLES[entity].staging}")


def staging_copy(
    entity: str,
    rows: Iterable[tuple[int, tuple]],
    *,
    progress: Callable[[str, int], None] | None = None,
) -> int:
    """COPY (line, canonical row) pairs into the entity's staging table; returns the count.

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
        with cursor.copy(f"COPY {tables.staging} ({column_list}) FROM STDIN") as copy:
            write = copy.write_row
            for line, row in rows:
                count += 1
                write((count, line, *pick(row)))
                if progress is not None and count % PROGRESS_EVERY == 0:
                    progress(entity, count)
        cursor.execute(f"ANALYZE {tables.staging}")
    if progress is not None:
        progress(entity, count)
    return count
