"""Gradebook writes: integrations (and anything else that is not a feed) writing categories,
line items, results and score scales into the versioned roster.

A tool writes one score at a time, so a write is a small batch, and it must stay cheap:

* one new ``RosterVersion`` per batch, holding only the rows the batch changes (never a
  copy of the world), allocated under the same hub-wide lock as imports and rollbacks
  (``apply.next_version_number``), with the same outbox row the import pipeline's
  ``_version_create`` writes, but written together with the rows in one statement;
* set-based: the incoming rows travel as one JSON array, typed in SQL with the canonical
  column types, hashed with the same row hash as ingest (``EntityTables.hash_sql``),
  probed against the current rows in one statement per entity, then closed, inserted and
  versioned in one statement for the whole batch;
* idempotent: a row whose content hash equals its current row is left alone, and a batch
  that changes nothing writes no version.

Ownership is the rule that keeps grades safe: a writer only closes or inserts rows of its
own ``Source``. A batch that touches a sourcedId currently owned by another source (the
SIS's line item, another tool's result) is refused as a whole with ``GradebookWriteError``
(code ``NOT_OWNER``). Imports and rollbacks are scoped by source the same way, so a SIS
bulk feed or a rollback never closes a tool's rows.

Writes are not audited per score: the spoke records an access record per request instead
(the audit chain is for governance decisions).
"""

# SQL here is composed from identifiers of the schema registry (never from input);
# values are bound parameters or int() casts.
# ruff: noqa: S608

from __future__ import annotations

import contextlib
import datetime as dt
import decimal
import functools
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import psycopg
from django.db import DataError, connection, transaction
from django.utils import timezone

from apps.roster.ingest import apply as apply_sql
from apps.roster.ingest.apply import ChangeSet, EntityChange
from apps.roster.ingest.staging import TABLES, EntityTables
from apps.roster.models import RosterOutbox, RosterVersion, Source, SourceKind
from portal.db import prepared

# The entities a gradebook writer may write, in apply order.
GRADEBOOK_ENTITIES: tuple[str, ...] = ("categories", "lineItems", "results", "scoreScales")
VERSION_KIND = "gradebook"
INTEGRATION_SOURCE_PREFIX = "integration-"

# Error codes (asserted by tests and mapped to HTTP statuses by the REST spoke).
NOT_OWNER = "NOT_OWNER"
UNKNOWN_ENTITY = "UNKNOWN_ENTITY"
UNKNOWN_COLUMN = "UNKNOWN_COLUMN"
MISSING_COLUMN = "MISSING_COLUMN"
DUPLICATE_SOURCED_ID = "DUPLICATE_SOURCED_ID"
BAD_VALUE = "BAD_VALUE"
GUARD_REFUSED = "GUARD_REFUSED"

ERROR_NOT_OWNER = "{entity} {sid} belongs to another source; only its owner may change it."
ERROR_UNKNOWN_ENTITY = "{entity} cannot be written here (expected one of {expected})."
ERROR_UNKNOWN_COLUMN = "{entity} {sid}: unknown column {column}."
ERROR_MISSING_COLUMN = "{entity} {sid}: {column} is required."
ERROR_DUPLICATE = "{entity} {sid} appears more than once in one write."
ERROR_BAD_VALUE = "A value does not fit its column ({detail})."
ERROR_GUARD_REFUSED = "The write's precondition did not hold; nothing was written."


class GradebookWriteError(Exception):
    """A refused write; nothing of the batch was applied."""

    def __init__(self, code: str, message: str, *, entity: str = "", sourced_id: str = "",
                 column: str = "") -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.entity = entity
        self.sourced_id = sourced_id
        self.column = column


@dataclass(frozen=True)
class GradebookWriteOutcome:
    """What one batch did, per entity, by sourcedId."""

    version: RosterVersion | None
    # dateLastModified of the rows this batch wrote
    written_at: dt.datetime | None = None
    created: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    updated: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    unchanged: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    # dateLastModified of the unchanged rows (their stored row stays as it was)
    unchanged_since: Mapping[str, Mapping[str, dt.datetime | None]] = field(
        default_factory=dict)
    deleted: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    # deletes naming no current row (nothing to do; a REST DELETE answers 404)
    missing: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    def was_created(self, entity: str, sourced_id: str) -> bool:
        return sourced_id in self.created.get(entity, ())


def integration_source(*, integration: Any) -> Source:
    """The ``Source`` owning everything ``integration`` writes: one per integration, with a
    stable name, so its rows stay its own across renames of the integration.

    Kept on the integration instance once committed: a source is never deleted or renamed,
    and the instance a cached release holds lives only as long as that release, so writes
    under a cached release cost no lookup. Only after commit: a source created in a
    transaction that rolls back must not be remembered."""
    cached = integration.__dict__.get(_SOURCE_ATTRIBUTE)
    if cached is not None:
        return cached
    source, _ = Source.objects.get_or_create(
        name=f"{INTEGRATION_SOURCE_PREFIX}{int(integration.pk)}",
        defaults={"kind": SourceKind.INTEGRATION, "description": str(integration)[:300]},
    )
    transaction.on_commit(lambda: integration.__dict__.setdefault(_SOURCE_ATTRIBUTE, source))
    return source


_SOURCE_ATTRIBUTE = "_roster_gradebook_source"


# --- SQL --------------------------------------------------------------------------------------


def _db_types(t: EntityTables) -> dict[str, str]:
    fields = {f.column: f for f in t.model._meta.concrete_fields}
    return {c: fields[c].db_type(connection) for c in t.content}


def _base_type(db_type: str) -> str:
    # jsonb_to_recordset ignores type modifiers; the casts below apply them, so that a
    # score of 95 hashes as the stored 95.000000 does.
    return db_type.split("(", 1)[0]


def _typed_rows(t: EntityTables) -> str:
    """A subquery of the JSON rows (parameter 1) with the canonical column types: the
    same types staging has, so ``hash_sql`` gives ingest's hash."""
    types = _db_types(t)
    defs = ", ".join(
        ["sourced_id text"] + [f"{_q(c)} {_base_type(types[c])}" for c in t.content]
    )
    casts = ", ".join(
        ["r.sourced_id"] + [f"r.{_q(c)}::{types[c]} AS {_q(c)}" for c in t.content]
    )
    return f"SELECT {casts} FROM jsonb_to_recordset(%s::jsonb) AS r({defs})"


def _q(name: str) -> str:
    return connection.ops.quote_name(name)


@dataclass(frozen=True)
class _Statements:
    """One entity's statements, composed once per process (the schema does not change)."""

    # each incoming row (parameter: the JSON rows) with its hash and every current row of
    # its sourcedId, whatever its owner
    probe: prepared.Prepared
    # parameters: source id, dateLastModified, the JSON rows (the version number is the
    # write statement's ``n``)
    insert: str
    # parameter: sourcedIds
    current_owners: prepared.Prepared
    # parameter: row ids
    close: str
    # what a write batch needs to know about every field: nullability, known columns
    required: tuple[str, ...]
    allowed: frozenset[str]


@functools.cache
def _statements(entity: str) -> _Statements:
    t = TABLES[entity]
    fields = {f.column: f for f in t.model._meta.concrete_fields}
    return _Statements(
        # The planner takes a JSON array for 100 rows and would hash-join it with a scan
        # of the whole table (every current result, per score). A LATERAL subquery it
        # cannot flatten (OFFSET 0) makes it one index probe per incoming row.
        probe=prepared.Prepared(
            f"SELECT x.sourced_id, {t.hash_sql('x')}, c.id, c.source_id, "
            f"c.content_hash, c.date_last_modified FROM ({_typed_rows(t)}) x "
            f"LEFT JOIN LATERAL (SELECT id, source_id, content_hash, date_last_modified "
            f"FROM {t.table} "
            f"WHERE sourced_id = x.sourced_id AND valid_to_version IS NULL OFFSET 0) c ON true",
            generic=True,
        ),
        insert=(
            f"INSERT INTO {t.table} (source_id, sourced_id, date_last_modified, content_hash, "
            f"valid_from_version, {t.content_list()}) "
            f"SELECT %s, x.sourced_id, %s, {t.hash_sql('x')}, {_NUMBER}, "
            f"{', '.join('x.' + _q(c) for c in t.content)} FROM ({_typed_rows(t)}) x"
        ),
        current_owners=prepared.Prepared(
            f"SELECT sourced_id, id, source_id FROM {t.table} "
            f"WHERE sourced_id = ANY(%s) AND valid_to_version IS NULL",
            generic=True,
        ),
        close=f"UPDATE {t.table} SET valid_to_version = {_NUMBER} WHERE id = ANY(%s)",
        required=tuple(c for c in t.content if not fields[c].null),
        allowed=frozenset({"sourced_id", *t.content}),
    )


# The hub-wide version allocation of ``apply.next_version_number``, in two parts: its lock
# (held to commit, so versions become visible in number order), and the next number, read
# by the write statement itself (its snapshot starts after the lock is held).
VERSION_LOCK_SQL = "SELECT pg_advisory_xact_lock(%s, %s)"
VERSION_LOCK_PARAMS = (apply_sql.SERIALISE_CLASS, apply_sql.HUB_VERSION_LOCK)
NUMBER_SQL = "n AS (SELECT coalesce(max(number), 0) + 1 AS number FROM roster_rosterversion)"
_NUMBER = "(SELECT n.number FROM n)"

# The version row and its outbox row, as the roster's ``_version_create`` writes them for
# imports and rollbacks (same columns, same payload), in one statement.
VERSION_SQL = (
    "v AS (INSERT INTO roster_rosterversion (number, source_id, import_run_id, kind, "
    "rolled_back_to, added, updated, deleted, by_entity, created_by_id, created_at) "
    f"VALUES ({_NUMBER}, %s, NULL, %s, NULL, %s, %s, %s, %s::jsonb, %s, %s) "
    "RETURNING id, number) "
    "INSERT INTO roster_rosteroutbox (version_id, topic, payload, created_at, processed_at) "
    "SELECT v.id, %s, jsonb_build_object('version', v.number) || %s::jsonb, %s, NULL FROM v "
    "RETURNING version_id, (payload ->> 'version')::int"
)
OUTBOX_TOPIC = RosterOutbox._meta.get_field("topic").default


# --- the service ------------------------------------------------------------------------------


def _json_default(value: Any) -> Any:
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, dt.date | dt.datetime):
        return value.isoformat()
    if isinstance(value, tuple | set | frozenset):
        return list(value)
    raise TypeError(f"{type(value).__name__} is not a column value")


def _check_rows(entity: str, rows: Sequence[dict]) -> None:
    statements = _statements(entity)
    allowed = statements.allowed
    seen: set[str] = set()
    for row in rows:
        sid = row.get("sourced_id")
        if not sid or not isinstance(sid, str):
            raise GradebookWriteError(
                MISSING_COLUMN, ERROR_MISSING_COLUMN.format(entity=entity, sid="?",
                                                            column="sourced_id"),
                entity=entity, column="sourced_id",
            )
        if sid in seen:
            raise GradebookWriteError(
                DUPLICATE_SOURCED_ID, ERROR_DUPLICATE.format(entity=entity, sid=sid),
                entity=entity, sourced_id=sid,
            )
        seen.add(sid)
        for column in row:
            if column not in allowed:
                raise GradebookWriteError(
                    UNKNOWN_COLUMN,
                    ERROR_UNKNOWN_COLUMN.format(entity=entity, sid=sid, column=column),
                    entity=entity, sourced_id=sid, column=column,
                )
        for column in statements.required:
            if row.get(column) in (None, ""):
                raise GradebookWriteError(
                    MISSING_COLUMN,
                    ERROR_MISSING_COLUMN.format(entity=entity, sid=sid, column=column),
                    entity=entity, sourced_id=sid, column=column,
                )


def _check_entity(entity: str) -> EntityTables:
    if entity not in GRADEBOOK_ENTITIES:
        raise GradebookWriteError(
            UNKNOWN_ENTITY,
            ERROR_UNKNOWN_ENTITY.format(entity=entity, expected=", ".join(GRADEBOOK_ENTITIES)),
            entity=entity,
        )
    return TABLES[entity]


def _refuse_foreign(entity: str, sid: str) -> GradebookWriteError:
    return GradebookWriteError(
        NOT_OWNER, ERROR_NOT_OWNER.format(entity=entity, sid=sid), entity=entity, sourced_id=sid
    )


Statement = tuple[str, Sequence[Any]]


@dataclass
class _Plan:
    """One entity's part of a batch, once probed."""

    changed_json: str = "[]"
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    unchanged_since: dict[str, dt.datetime | None] = field(default_factory=dict)
    deleted: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    close_ids: list[int] = field(default_factory=list)

    @property
    def change(self) -> EntityChange:
        return EntityChange(
            added=len(self.created), updated=len(self.updated), deleted=len(self.deleted)
        )


def _plan_upserts(cursor, entity: str, rows: Sequence[dict],  # type: ignore[no-untyped-def]
                  source_id: int, plan: _Plan, prelude: list[Statement]) -> None:
    prepared.execute(cursor, _statements(entity).probe,
                     [json.dumps(list(rows), default=_json_default)], prelude)
    own: dict[str, tuple[int, bytes, dt.datetime | None]] = {}
    hashes: dict[str, bytes] = {}
    for sid, new_hash, old_id, owner, old_hash, modified in cursor.fetchall():
        hashes[sid] = bytes(new_hash)
        if old_id is None:
            continue
        if owner != source_id:
            raise _refuse_foreign(entity, sid)
        own[sid] = (old_id, bytes(old_hash), modified)
    changed = []
    for row in rows:
        sid = row["sourced_id"]
        current = own.get(sid)
        if current is None:
            plan.created.append(sid)
        elif current[1] == hashes[sid]:
            plan.unchanged.append(sid)
            plan.unchanged_since[sid] = current[2]
            continue
        else:
            plan.updated.append(sid)
            plan.close_ids.append(current[0])
        changed.append(row)
    plan.changed_json = json.dumps(changed, default=_json_default)


def _plan_deletes(cursor, entity: str, sids: Sequence[str],  # type: ignore[no-untyped-def]
                  source_id: int, plan: _Plan, prelude: list[Statement]) -> None:
    wanted = list(dict.fromkeys(sids))
    prepared.execute(cursor, _statements(entity).current_owners, [wanted], prelude)
    found: dict[str, int] = {}
    for sid, row_id, owner in cursor.fetchall():
        if owner != source_id:
            raise _refuse_foreign(entity, sid)
        found[sid] = row_id
    for sid in wanted:
        if sid in plan.created or sid in plan.updated or sid in plan.unchanged:
            raise GradebookWriteError(
                DUPLICATE_SOURCED_ID, ERROR_DUPLICATE.format(entity=entity, sid=sid),
                entity=entity, sourced_id=sid,
            )
        if sid in found:
            plan.deleted.append(sid)
            plan.close_ids.append(found[sid])
        else:
            plan.missing.append(sid)


def _apply_statement(*, source: Source, plans: Mapping[str, _Plan], changes: ChangeSet,
                     written_at: dt.datetime, actor_id: int | None) -> tuple[str, list]:
    """Everything a planned batch writes, as ONE statement: the next version number, per
    entity the closing of the rows it replaces or deletes and the insertion of the new
    ones, then the version row and its outbox row; it returns the version's id and number.
    An entity's insertion waits for its closing (it reads the closed count first), so the
    new current row never meets the old one in the unique index."""
    ctes: list[str] = [NUMBER_SQL]
    params: list[Any] = []
    for n, (entity, plan) in enumerate(plans.items()):
        statements = _statements(entity)
        gate = ""
        if plan.close_ids:
            ctes.append(f"c{n} AS ({statements.close} RETURNING 1)")
            params += [plan.close_ids]
            gate = f" WHERE (SELECT count(*) FROM c{n}) >= 0"
        if plan.created or plan.updated:
            ctes.append(f"i{n} AS ({statements.insert}{gate})")
            params += [source.pk, written_at, plan.changed_json]
    summary = changes.as_dict()
    payload = {"source": source.name, "kind": VERSION_KIND, "changes": summary}  # + version
    params += [source.pk, VERSION_KIND, changes.added, changes.updated,
               changes.deleted, json.dumps(summary["by_entity"]), actor_id, written_at,
               OUTBOX_TOPIC, json.dumps(payload), written_at]
    return "WITH " + ", ".join([*ctes, VERSION_SQL]), params


def _version(*, pk: int, number: int, source: Source, changes: ChangeSet,
             created_at: dt.datetime, actor_id: int | None) -> RosterVersion:
    """The version row just inserted, as a model instance, without reading it back."""
    version = RosterVersion(
        pk=pk, number=number, source=source, kind=VERSION_KIND, added=changes.added,
        updated=changes.updated, deleted=changes.deleted,
        by_entity=changes.as_dict()["by_entity"], created_by_id=actor_id,
        created_at=created_at,
    )
    version._state.adding = False
    version._state.db = connection.alias
    return version


@contextlib.contextmanager
def _rolled_back_on_error(cursor, own: bool):  # type: ignore[no-untyped-def]
    """A write that began its own transaction and failed (a refused row, a bad value, a
    lost connection) rolls it back before anything else uses the connection: Django
    believes the connection is in autocommit mode, and must be able to."""
    try:
        yield
    except BaseException:
        if own and connection.connection is not None and (
                connection.connection.info.transaction_status
                != psycopg.pq.TransactionStatus.IDLE):
            try:
                cursor.execute("ROLLBACK")
            except Exception:  # noqa: BLE001 - the connection is gone: Django replaces it
                connection.close()
        raise


def gradebook_write(
    *,
    source: Source,
    upserts: Mapping[str, Sequence[dict]],
    deletes: Mapping[str, Sequence[str]] | None = None,
    actor: Any = None,
    guard: Statement | None = None,
) -> GradebookWriteOutcome:
    """Create, update and delete ``source``'s gradebook rows as one new version.

    ``upserts`` maps an entity (``categories``, ``lineItems``, ``results``,
    ``scoreScales``) to full rows keyed by canonical column name (``sourced_id``,
    ``line_item_sourced_id``, ``score`` ...; values typed or as their text). ``deletes``
    maps an entity to sourcedIds to close. Atomic: a refused row (another owner's
    sourcedId, a missing required column) refuses the whole batch. References are not
    checked here: the caller knows what its writer may see (the REST spoke checks them
    against the writer's release).

    ``guard`` is a statement of the caller's own, run in the same transaction under the
    version lock before anything is probed (an LTI score's "only if newer than the one
    recorded" upsert): when it returns no row, nothing is written and
    ``GradebookWriteError`` (code ``GUARD_REFUSED``) is raised; its own changes are
    rolled back with the rest.

    Round trips, since a tool writes one score per request and every one of them holds
    the hub-wide version lock: the lock and the first probe together, one more per
    further entity, and one statement taking the number and writing rows, version and
    outbox together. Called outside any transaction (a vendor's request), the write's
    own transaction starts in the first round trip and commits in the last: two round
    trips for a score, the lock held across one.
    """
    deletes = deletes or {}
    for entity in (*upserts, *deletes):
        _check_entity(entity)
    for entity, rows in upserts.items():
        if rows:
            _check_rows(entity, rows)
    plans: dict[str, _Plan] = {}
    written_at = timezone.now()
    actor_id = actor.pk if getattr(actor, "pk", None) else None
    version = None
    # Inside a caller's transaction, a savepoint; otherwise BEGIN and COMMIT travel with
    # the first and the last statement.
    own = not connection.in_atomic_block and connection.get_autocommit()
    try:
        with (contextlib.nullcontext() if own else transaction.atomic()), \
                connection.cursor() as cursor, _rolled_back_on_error(cursor, own):
            # The hub-wide version lock first, then the probe: no other write, import or
            # rollback can open a row between what the probe sees and what this batch
            # writes, so "another source owns it" holds across sources too. A batch that
            # changes nothing takes no number.
            prelude: list[Statement] = [*([("BEGIN", ())] if own else []),
                                        (VERSION_LOCK_SQL, VERSION_LOCK_PARAMS)]
            if guard is not None:
                prepared.execute(cursor, guard[0], guard[1], prelude)
                if cursor.fetchone() is None:
                    raise GradebookWriteError(GUARD_REFUSED, ERROR_GUARD_REFUSED)
            for entity in GRADEBOOK_ENTITIES:
                rows = upserts.get(entity) or ()
                sids = deletes.get(entity) or ()
                if not rows and not sids:
                    continue
                plan = plans[entity] = _Plan()
                if rows:
                    _plan_upserts(cursor, entity, rows, source.pk, plan, prelude)
                if sids:
                    _plan_deletes(cursor, entity, sids, source.pk, plan, prelude)
            changes = ChangeSet(
                by_entity={e: p.change for e, p in plans.items() if p.change.total}
            )
            if not changes.is_empty:
                sql, params = _apply_statement(source=source, plans=plans, changes=changes,
                                               written_at=written_at, actor_id=actor_id)
                prepared.execute(cursor, prepared.statement(sql, generic=True), params,
                                 postlude=("COMMIT",) if own else ())
                pk, number = cursor.fetchone()
                version = _version(pk=pk, number=number, source=source, changes=changes,
                                   created_at=written_at, actor_id=actor_id)
                # (outside a transaction, Django runs it at once: after the COMMIT above)
                transaction.on_commit(lambda: apply_sql.statistics_refresh(changes))
            elif own:
                cursor.execute("COMMIT")
    except DataError as exc:
        # A value PostgreSQL cannot read as its column's type ("abc" as a score): the
        # whole batch was rolled back. Callers validate first; this keeps the promise.
        detail = str(exc).splitlines()[0]
        raise GradebookWriteError(BAD_VALUE, ERROR_BAD_VALUE.format(detail=detail)) from exc
    return GradebookWriteOutcome(
        version=version,
        written_at=written_at if version is not None else None,
        created={e: tuple(p.created) for e, p in plans.items() if p.created},
        updated={e: tuple(p.updated) for e, p in plans.items() if p.updated},
        unchanged={e: tuple(p.unchanged) for e, p in plans.items() if p.unchanged},
        unchanged_since={e: dict(p.unchanged_since) for e, p in plans.items()
                         if p.unchanged_since},
        deleted={e: tuple(p.deleted) for e, p in plans.items() if p.deleted},
        missing={e: tuple(p.missing) for e, p in plans.items() if p.missing},
    )
