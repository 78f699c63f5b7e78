"""Server-side prepared statements for the few statements every vendor request runs.

Vendors' requests are small and many: a token lookup, a reference check, a probe and a
write per score. PostgreSQL spent more CPU *planning* those statements than running them
(pg_stat_statements on the gradebook benchmark: 1.2 ms of planning against 0.5 ms of
execution per score). A statement prepared once per connection is planned by PostgreSQL's
plan cache instead: custom plans for its first executions, then a generic plan when that
is no worse, with no planning at all.

Django binds parameters on the client and sends text, so preparation is written out:
``PREPARE name AS ...`` once per connection (in the same round trip as the first
``EXECUTE``), then ``EXECUTE name(...)``. A prepared statement belongs to the session and
survives rollbacks; a new connection prepares again, and a connection whose session lost
its statements (a ``DISCARD ALL``, a schema change under a prepared statement) fails that
request and is replaced when it ends. Opt-in per statement, for statements
whose parameters' types PostgreSQL can infer, and off altogether with
``DATABASE_PREPARED_STATEMENTS=false`` (for a transaction-pooling proxy such as PgBouncer,
which does not keep sessions).
"""

from __future__ import annotations

import functools
import hashlib
import re
import time
import weakref
from collections.abc import Sequence
from typing import Any

import psycopg
from django.conf import settings
from django.db import DatabaseError, connection

_PLACEHOLDER = re.compile(r"%s|%%")

# A ``generic`` statement runs its generic plan: PostgreSQL otherwise keeps planning a
# statement afresh whenever its estimate for the generic plan (blind to how few ids an array
# parameter holds) exceeds a custom plan's, as it did for a score's reference check and
# write (half a millisecond of planning each, every time). The setting is the session's,
# set before the EXECUTE and reset after it in the same round trip (and rolled back
# with it, should the EXECUTE fail).
GENERIC_PLANS = "SET plan_cache_mode = force_generic_plan"
AUTO_PLANS = "RESET plan_cache_mode"  # back to the session's own setting

# Prepared statements one connection keeps at most; the next one starts the set afresh.
MAX_PER_CONNECTION = 200

# Per psycopg connection: the names prepared on it (a new connection starts empty).
_prepared: weakref.WeakKeyDictionary[Any, set[str]] = weakref.WeakKeyDictionary()
# Per psycopg connection: names whose first round trip failed. A PREPARE that ran stays
# in the session even when the EXECUTE after it fails and its transaction rolls back, so
# whether the name exists is only known by asking (once, on its next use).
_uncertain: weakref.WeakKeyDictionary[Any, set[str]] = weakref.WeakKeyDictionary()


class Prepared:
    """One statement (``%s`` placeholders, ``%%`` for a literal percent sign), run as a
    prepared statement of whichever connection executes it."""

    def __init__(self, sql: str, *, generic: bool = False) -> None:
        self.sql = sql
        self.generic = generic
        self.name = "ix_" + hashlib.blake2b(sql.encode(), digest_size=10).hexdigest()
        count = 0

        def dollar(match: re.Match[str]) -> str:
            nonlocal count
            if match.group(0) == "%%":
                return "%%"
            count += 1
            return f"${count}"

        self.prepare_sql = f"PREPARE {self.name} AS {_PLACEHOLDER.sub(dollar, sql)}"
        self.execute_sql = f"EXECUTE {self.name}({', '.join(['%s'] * count)})" if count \
            else f"EXECUTE {self.name}"

    def statements(self) -> list[str]:
        """What to send for it now, on the default connection: the EXECUTE, preceded by
        the PREPARE the first time; ``mark_prepared`` once they succeeded."""
        if not enabled():
            return [self.sql]
        names = _prepared.get(connection.connection, set())
        mode = [GENERIC_PLANS] if self.generic else []
        if self.name not in names and self.name in _uncertain.get(connection.connection, ()):
            self._settle()
            names = _prepared.get(connection.connection, set())
        if self.name in names:
            return [*mode, self.execute_sql]
        if len(names) >= MAX_PER_CONNECTION:
            # statements compiled per release content come and go: never let one
            # long-lived connection keep every one it ever saw
            names.clear()
            return ["DEALLOCATE ALL", self.prepare_sql, *mode, self.execute_sql]
        return [self.prepare_sql, *mode, self.execute_sql]

    def after(self) -> list[str]:
        """What follows its EXECUTE in the same round trip."""
        return [AUTO_PLANS] if self.generic and enabled() else []

    def mark_prepared(self) -> None:
        if enabled():
            _prepared.setdefault(connection.connection, set()).add(self.name)

    def mark_uncertain(self) -> None:
        _uncertain.setdefault(connection.connection, set()).add(self.name)

    def _settle(self) -> None:
        """Ask the session whether an earlier, failed round trip left this prepared."""
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1 FROM pg_prepared_statements WHERE name = %s", [self.name])
            exists = cursor.fetchone() is not None
        _uncertain[connection.connection].discard(self.name)
        if exists:
            self.mark_prepared()


@functools.lru_cache(maxsize=512)
def statement(sql: str, *, generic: bool = False) -> Prepared:
    """The ``Prepared`` for a statement composed at run time (one per distinct text; a
    statement compiled once per release content has few texts)."""
    return Prepared(sql, generic=generic)


# What PostgreSQL answers when the session no longer holds what was prepared on it (something
# ran DEALLOCATE or DISCARD) or a schema change altered a prepared statement's result columns.
_SESSION_LOST = (psycopg.errors.InvalidSqlStatementName, psycopg.errors.FeatureNotSupported,
                 psycopg.errors.DuplicatePreparedStatement)


def _forget_session() -> None:
    """Never trust this connection's prepared statements again: forget them, and have Django
    replace the connection when the request ends (as it replaces one past its age), so the
    next request prepares afresh instead of failing the same way."""
    _prepared.pop(connection.connection, None)
    connection.close_at = time.monotonic()


def enabled() -> bool:
    return getattr(settings, "DATABASE_PREPARED_STATEMENTS", True)


def execute(cursor: Any, statement: Prepared | str, params: Sequence[Any] = (),
            prelude: list[tuple[str, Sequence[Any]]] | None = None,
            postlude: Sequence[str] = ()) -> None:
    """Run the ``prelude`` statements, ``statement``, then the ``postlude`` (statements
    without parameters, such as ``COMMIT``) in ONE round trip, leaving ``statement``'s
    result current; ``prelude`` (if given) is emptied.

    The cursor binds parameters on the client and sends the text with the simple query
    protocol, which runs several statements in order, each with its own snapshot."""
    prelude = prelude if prelude is not None else []
    is_prepared = isinstance(statement, Prepared)
    texts = statement.statements() if is_prepared else [statement]
    before = [text for text, _ in prelude] + texts[:-1]
    values = [value for _, vals in prelude for value in vals] + list(params)
    after = [*(statement.after() if is_prepared else []), *postlude]
    try:
        cursor.execute("; ".join([*before, texts[-1], *after]), values)
    except DatabaseError as exc:
        if is_prepared and isinstance(exc.__cause__, _SESSION_LOST):
            _forget_session()
        elif is_prepared and statement.prepare_sql in texts:
            statement.mark_uncertain()
        raise
    for _ in before:
        cursor.nextset()
    prelude.clear()
    if is_prepared:
        statement.mark_prepared()
