"""A second connection for the work of an import that can run beside the first.

The import holds one transaction on one connection, and PostgreSQL runs a statement on one
core. What a second connection may do for it is read what is committed: the fast path's
staged text of a large file (an unlogged table, committed before the import's transaction
starts) and the canonical rows as they were before the import. Its uses:

* ``fastcopy.StagedBeside`` stages large files on a worker thread's connection
  while the import's stages the others, ``apply.diff_compute`` diffs the largest file
  there, and ``apply.statistics_refresh`` analyses half the tables there (``beside``,
  with the staging views recreated from ``view_definition``);
* ``reading_beside`` (``beside`` on one core, never waiting long on a lock) reads for
  the import meanwhile: a first load's reference checks (``validate_sql``) and the work
  beside a one-process index build (``first_import``);
* ``relay_rows`` has the second connection compute a first load's typed rows and hashes
  (``COPY (query) TO STDOUT``) while this one writes them (``COPY table FROM STDIN``).
  Besides the second core, COPY writes rows in batches (one WAL record per page of rows),
  where ``INSERT ... SELECT`` writes one per row: measured on a 1.5-million-row
  enrollments file, 0.9 s against 1.7 s for the write.
"""

# SQL here is composed from identifiers of the schema registry (never from input).
# ruff: noqa: S608

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from django.db import OperationalError, connection
from psycopg import pq
from psycopg.conninfo import make_conninfo

from apps.roster.ingest.staging import TABLES, acting_for, session_tune


class SecondConnectionUnavailable(OperationalError):
    """No second connection could be opened (the server's connection limit, a pooler):
    the caller does the work on its own connection instead."""


# How text COPY renders and reads values: the second connection takes this one's, so
# that a value reads back exactly as it was written.
_TEXT_SETTINGS = ("DateStyle", "IntervalStyle", "TimeZone", "extra_float_digits",
                  "bytea_output", "search_path", "standard_conforming_strings")
# Rows are sent on in blocks about this large (one message per row costs a call each).
_BLOCK_BYTES = 1 << 18


@contextmanager
def beside(*, key: int | None = None, views: dict[str, str] | None = None) -> Iterator[None]:
    """Run the body on this thread's own connection (a worker thread's: not the import's),
    tuned for an import, with the import's staging views recreated there from
    ``view_definition`` and, given the import's session ``key``, the tables it writes
    named after the import (``staging.acting_for``); the connection is closed when the
    body ends."""
    try:
        session_tune()
        with connection.cursor() as cursor:
            for entity, view in (views or {}).items():
                cursor.execute(f"CREATE TEMPORARY VIEW {TABLES[entity].staging} AS {view}")
        if key is None:
            yield
        else:
            with acting_for(key):
                yield
    finally:
        connection.close()


@contextmanager
def reading_beside(views: dict[str, str]) -> Iterator[None]:
    """``beside`` for reads alongside the import's own work (checks, counts): on one core,
    the other being the import's, and never waiting long on a lock, which the import may
    hold while it waits for this work: a DatabaseError instead, and the import does the
    work itself."""
    with beside(views=views), connection.cursor() as cursor:
        cursor.execute("SET max_parallel_workers_per_gather = 0")
        cursor.execute("SET lock_timeout = '5s'")
        yield


def view_definition(entity: str) -> str | None:
    """The staging view's query, when it reads a table another session can see (the fast
    path's unlogged table; the parser's rows are in a temporary table)."""
    t = TABLES[entity]
    with connection.cursor() as cursor:
        cursor.execute("SELECT relpersistence = 'u' FROM pg_class WHERE oid = to_regclass(%s)",
                       [t.raw_table])
        row = cursor.fetchone()
        if not (row and row[0]):
            return None
        cursor.execute("SELECT pg_get_viewdef(%s::regclass)", [t.staging])
        return cursor.fetchone()[0].rstrip().rstrip(";")


@contextmanager
def _second_connection() -> Iterator[pq.PGconn]:
    """A plain libpq connection to the same database, with this one's value formatting.

    Plain libpq (psycopg.pq) because the relay reads a row per call: through psycopg's
    Copy object that call cost twice as much, on a machine whose cores the two
    connections' server processes already use.
    """
    with connection.cursor() as cursor:
        cursor.execute("SELECT " + ", ".join("current_setting(%s)" for _ in _TEXT_SETTINGS),
                       list(_TEXT_SETTINGS))
        values = cursor.fetchone()
    keywords = {option.keyword.decode() for option in pq.Conninfo.get_defaults()}
    params = {k: v for k, v in connection.get_connection_params().items()
              if k in keywords and v is not None}
    side = pq.PGconn.connect(make_conninfo(**params).encode())
    try:
        if side.status != pq.ConnStatus.OK:
            raise SecondConnectionUnavailable(side.get_error_message())
        pairs = ", ".join(f"set_config(${2 * i + 1}, ${2 * i + 2}, false)"
                          for i in range(len(_TEXT_SETTINGS)))
        _expect(side, side.exec_params(
            f"SELECT {pairs}".encode(),
            [str(v).encode() for pair in zip(_TEXT_SETTINGS, values, strict=True) for v in pair],
        ), pq.ExecStatus.TUPLES_OK)
        yield side
    finally:
        side.finish()


def _expect(side: pq.PGconn, result: pq.PGresult, status: pq.ExecStatus) -> None:
    if result.status != status:
        raise OperationalError(side.get_error_message())


def relay_rows(cursor, *, entity: str, view: str, query: str, table: str,  # type: ignore[no-untyped-def]
               columns: str) -> int:
    """Insert into ``table`` (``columns``) the rows of ``query`` over the staging view of
    ``entity`` (recreated from ``view`` on a second connection), through this cursor's
    transaction; returns the rows written. Raises SecondConnectionUnavailable, having
    written nothing, when no second connection can be had."""
    with _second_connection() as side:
        _expect(side, side.exec_(
            f"CREATE TEMPORARY VIEW {TABLES[entity].staging} AS {view}".encode()),
            pq.ExecStatus.COMMAND_OK)
        _expect(side, side.exec_(f"COPY ({query}) TO STDOUT".encode()),
                pq.ExecStatus.COPY_OUT)
        read = side.get_copy_data
        with cursor.copy(f"COPY {table} ({columns}) FROM STDIN") as into:
            # a call per row: kept to the fewest operations (the row's size comes with it)
            block, size = bytearray(), 0
            while True:
                length, row = read(0)  # blocks for the next row; no length at the end
                if length <= 0:
                    break
                block += row
                size += length
                if size >= _BLOCK_BYTES:
                    into.write(block)
                    block, size = bytearray(), 0
            if block:
                into.write(block)
            # the COPY's own result: an error found after the last row shows here
            _expect(side, side.get_result(), pq.ExecStatus.COMMAND_OK)
        return cursor.rowcount
