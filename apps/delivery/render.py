"""Render a OneRoster 1.2 CSV bundle from the release policy, streamed.

Every file is one ``COPY (SELECT ...) TO STDOUT`` over the release's queryset for that
entity (``release_for(integration).queryset(entity)``): the release has already filtered
the rows (scope, exclusions), projected the columns (an unapproved column is not even
selected) and replaced identifiers with pseudonyms. This module only formats: every header
of the binding is written, a column the release did not approve is left empty, values take
the binding's text forms, and text that a spreadsheet would run as a formula (a cell
starting with ``= + - @``, tab or carriage return) is prefixed with an apostrophe.
Rows flow from PostgreSQL into the zip one COPY block at a time, so memory does not grow
with the district.

A delta since version N holds the released rows a version in (N, M] opened (``active``),
and ``tobedeleted`` rows for records a version in the range closed that the release does
not show now (deleted, or moved out of the approved scope) and for every record of a
person newly withheld by an exclusion; a ``tobedeleted`` row carries its sourcedId, status
and time only, so a withheld pupil's data and every reference to them (enrollment, role,
result) leaves nothing but the fact of deletion. Whether a delta is right at all (the same
policy as the last delivery) is decided by the deliverer (``services.delivery_plan``).

The whole bundle is read in one transaction (one snapshot) with JIT off
(``render_transaction``).
"""

from __future__ import annotations

import csv
import io
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, BinaryIO

from django.core.exceptions import EmptyResultSet
from django.db import connection, transaction
from django.db.models import F, QuerySet, Subquery
from django.db.models.expressions import RawSQL
from django.utils import timezone

from apps.governance.release import PSEUDONYMISED_COLUMNS
from apps.roster import schema
from apps.roster.models import CANONICAL_MODELS
from apps.roster.selectors import roster_changes

BULK = "bulk"
DELTA = "delta"
SYSTEM_NAME = "Interchange"

# The person each entity's row is about (for the disclosure ledger and exclusions).
PERSON_REFERENCE: dict[str, str] = {
    "users": "sourced_id",
    "roles": "user_sourced_id",
    "userProfiles": "user_sourced_id",
    "enrollments": "user_sourced_id",
    "demographics": "sourced_id",
    "results": "student_sourced_id",
}

# A cell a spreadsheet would evaluate (OWASP "CSV injection").
FORMULA_PATTERN = r"^[-=+@\t\r]"

_TEXT_TYPES = frozenset({schema.GUID, schema.STRING, schema.ENUM})


# The same rule as code points, which PostgreSQL tests faster than a regular expression;
# the "< 65" guard lets the usual first letter or digit skip the list.
FORMULA_CODE_POINTS = "61, 43, 45, 64, 9, 13"  # = + - @ tab CR


def _neutralised(sql: str) -> str:
    first = f"ascii({sql})"
    return (f"CASE WHEN {first} < 65 AND {first} IN ({FORMULA_CODE_POINTS}) "
            f"THEN '''' || {sql} ELSE {sql} END")


def cell_sql(column: schema.Column, ref: str) -> str:
    """The SQL text form of one canonical column (``ref`` is its qualified name)."""
    t = column.type
    if t in _TEXT_TYPES:
        return _neutralised(f"{ref}::text")
    if t in schema.LIST_TYPES:
        return _neutralised(f"array_to_string({ref}, ',')")
    if t == schema.DATE:
        return f"to_char({ref}, 'YYYY-MM-DD')"
    if t == schema.DATETIME:
        return f"to_char({ref} AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')"
    if t == schema.BOOLEAN:
        return f"CASE WHEN {ref} THEN 'true' WHEN NOT {ref} THEN 'false' END"
    if t == schema.DECIMAL:
        return f"trim_scale({ref})::text"
    return f"{ref}::text"  # year, integer


def neutralise(value: str) -> str:
    """The Python twin of the SQL rule, for the few cells written outside COPY."""
    if value and value[0] in "=+-@\t\r":
        return "'" + value
    return value


def unneutralise(value: str) -> str:
    """Undo ``neutralise`` (for reading a bundle back: identifiers in the ledger)."""
    if len(value) > 1 and value[0] == "'" and value[1] in "=+-@\t\r":
        return value[1:]
    return value


@dataclass
class RenderResult:
    """What a bundle holds: rows per file, the people it disclosed, and its size."""

    mode: str
    version_from: int | None
    version_to: int
    files: dict[str, str] = field(default_factory=dict)  # entity -> bulk|delta (present only)
    counts: dict[str, int] = field(default_factory=dict)
    deleted: dict[str, int] = field(default_factory=dict)
    # entity -> raw (never pseudonymised) person ids its active rows are about
    people: dict[str, list[str]] = field(default_factory=dict)
    bytes_written: int = 0

    @property
    def total_rows(self) -> int:
        return sum(self.counts.values())


def _active_queryset(release: Any, entity: str, *, since: int | None, until: int) -> QuerySet:
    qs = release.queryset(entity)
    if since is not None:
        qs = qs.filter(valid_from_version__gt=since, valid_from_version__lte=until)
    return qs


def _deleted_queryset(release: Any, entity: str, *, since: int, until: int,
                      withheld: frozenset[str] | None = None) -> QuerySet:
    """sourcedIds (released form) that the vendor must drop: closed without a successor,
    or about a person an exclusion now withholds."""
    model = CANONICAL_MODELS[entity]
    # A record a version in the range closed is gone for this vendor unless the release
    # still shows it now (its successor may be out of scope, e.g. a class moved to a school
    # the integration is not approved for).
    # Every step is narrowed to the records closed in the range (by row id: the released
    # sourced_id may be a pseudonym), so the cost follows the change, not the district.
    closed_in_range = roster_changes(model, since=since, until=until).filter(
        valid_to_version__gt=since, valid_to_version__lte=until
    )
    successors = model.objects.filter(
        valid_to_version__isnull=True,
        sourced_id__in=Subquery(closed_in_range.values("sourced_id")),
    ).values("pk")
    released_rows = release.queryset(entity).filter(pk__in=Subquery(successors)).values("pk")
    released_ids = model.objects.filter(pk__in=Subquery(released_rows)).values("sourced_id")
    closed = closed_in_range.exclude(sourced_id__in=Subquery(released_ids))
    pseudonymised_id = release.pseudonymised and "sourced_id" in PSEUDONYMISED_COLUMNS.get(
        entity, ()
    )
    released_id = release.pseudonymiser.sql("sourced_id") if pseudonymised_id else F("sourced_id")
    parts = [closed.annotate(_sid=released_id).values("_sid")]
    reference = PERSON_REFERENCE.get(entity)
    excluded = sorted(release.excluded_user_sourced_ids if withheld is None else withheld)
    if reference and excluded:
        of_excluded = model.objects.filter(
            valid_to_version__isnull=True, **{f"{reference}__in": excluded}
        )
        parts.append(of_excluded.annotate(_sid=released_id).values("_sid"))
    qs = parts[0]
    for part in parts[1:]:
        qs = qs.union(part)  # UNION: distinct ids
    return qs


def _select_sql(
    entity: str, released: tuple[str, ...], *, mode: str, stamp: str
) -> tuple[str, list]:
    """SELECT list rendering the binding's columns of ``entity`` from subquery ``r``."""
    model_fields = {f.attname for f in CANONICAL_MODELS[entity]._meta.concrete_fields}
    parts: list[str] = []
    params: list[Any] = []
    for column in schema.SCHEMAS[entity].columns:
        if column.name == "status":
            parts.append("'active'" if mode == DELTA else "NULL")
        elif column.name == "date_last_modified":
            if mode == DELTA:
                parts.append("%s")
                params.append(stamp)
            else:
                parts.append("NULL")
        elif column.name in released and column.name in model_fields:
            parts.append(cell_sql(column, f'r."{column.name}"'))
        else:
            parts.append("NULL")  # not approved (or never kept, e.g. passwords): empty
    return ", ".join(parts), params


def _deleted_select_sql(entity: str, stamp: str) -> tuple[str, list]:
    parts = []
    sid = schema.SCHEMAS[entity].columns[0]
    for column in schema.SCHEMAS[entity].columns:
        if column.name == "sourced_id":
            parts.append(cell_sql(sid, 'd."_sid"'))
        elif column.name == "status":
            parts.append("'tobedeleted'")
        elif column.name == "date_last_modified":
            parts.append("%s")
        else:
            parts.append("NULL")
    return ", ".join(parts), [stamp]


def entity_copy_sql(
    release: Any, entity: str, *, mode: str, since: int | None, until: int, stamp: str,
    withheld: frozenset[str] | None = None,
) -> tuple[str, list] | None:
    """The one statement producing ``entity``'s CSV rows for this release (no header);
    None when the release can hold no row of it (no org in scope). In a delta, the rows of
    the people in ``withheld`` (default: everyone the release excludes) are tobedeleted."""
    released = release.columns(entity)
    try:
        inner_sql, inner_params = _active_queryset(
            release, entity, since=since if mode == DELTA else None, until=until
        ).order_by().query.sql_with_params()
    except EmptyResultSet:
        return None
    select, select_params = _select_sql(entity, released, mode=mode, stamp=stamp)
    sql = f"SELECT {select} FROM ({inner_sql}) AS r"  # noqa: S608 (names from schema.py, values bound)
    params = [*select_params, *inner_params]
    if mode == DELTA and since is not None:
        deleted = _deleted_queryset(release, entity, since=since, until=until,
                                    withheld=withheld)
        del_sql, del_params = deleted.order_by().query.sql_with_params()
        dselect, dparams = _deleted_select_sql(entity, stamp)
        sql = f"({sql}) UNION ALL (SELECT {dselect} FROM ({del_sql}) AS d)"  # noqa: S608 (names from schema.py, values bound)
        params = [*params, *dparams, *del_params]
    return sql, params


def people_sql(release: Any, entity: str, *, mode: str, since: int | None, until: int
               ) -> tuple[str, list] | None:
    """The raw ids of the people ``entity``'s active rows are about (disclosure ledger)."""
    reference = PERSON_REFERENCE.get(entity)
    if reference is None:
        return None
    table = CANONICAL_MODELS[entity]._meta.db_table
    qs = _active_queryset(release, entity, since=since if mode == DELTA else None, until=until)
    qs = qs.annotate(_pid=RawSQL(f'"{table}"."{reference}"', ())).values("_pid")  # noqa: S611 (a table and column of our own models)
    inner_sql, params = qs.order_by().query.sql_with_params()
    return f"SELECT DISTINCT p._pid FROM ({inner_sql}) AS p", list(params)  # noqa: S608 (names from schema.py, values bound)


@contextmanager
def render_transaction() -> Iterator[None]:
    """One transaction for a whole bundle: every file is read from the same snapshot
    (REPEATABLE READ when it is the outermost transaction), so a version applied mid-render
    cannot make enrollments point at users the users file lacks. JIT is off for it: the
    release's correlated subplans inflate cost estimates, and PostgreSQL would spend more
    compiling the statements (over a second per file at 50,000 pupils) than running them."""
    outermost = not connection.in_atomic_block
    with transaction.atomic():
        with connection.cursor() as cursor:
            if outermost:
                cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            cursor.execute("SET LOCAL jit = off")
        yield


def _copy_rows(sql: str, params: list) -> Iterator[bytes]:
    with connection.cursor() as cursor:
        raw = cursor.cursor
        with raw.copy(f"COPY ({sql}) TO STDOUT WITH (FORMAT csv)", params) as copy:
            for block in copy:
                yield bytes(block)


def _header(entity: str) -> bytes:
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerow(schema.SCHEMAS[entity].headers_v12)
    return out.getvalue().encode()


def manifest_bytes(files: dict[str, str]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(schema.MANIFEST_HEADERS)
    writer.writerow(["manifest.version", "1.0"])
    writer.writerow(["oneroster.version", "1.2"])
    for name in schema.ALL_FILE_NAMES:
        writer.writerow([f"file.{name}", files.get(name, "absent")])
    writer.writerow(["source.systemName", SYSTEM_NAME])
    return out.getvalue().encode()


def bundle_write(
    release: Any, out: BinaryIO, *, mode: str, since: int | None, until: int,
    collect_people: bool = True, withheld: frozenset[str] | None = None,
) -> RenderResult:
    """Write the bundle zip for ``release`` into ``out`` (any writable stream).

    ``withheld``: in a delta, the people whose records the vendor must now delete because
    an exclusion withholds them (the deliverer passes only those newly excluded since the
    destination's last delivery; None means every excluded person).

    A file whose entity has no rows is left out and marked ``absent`` (the binding makes a
    header-only file invalid); a delta with no changes is a zip holding only the manifest,
    which the binding reads as "no updates".
    """
    if mode == DELTA and since is None:
        raise ValueError("a delta needs the version it starts from")
    now = timezone.now()
    stamp = now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z"
    result = RenderResult(mode=mode, version_from=since if mode == DELTA else None,
                          version_to=until)
    # A no-seek stream (the encrypting writer) makes zipfile write data descriptors.
    with render_transaction(), \
            zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED,
                            compresslevel=6) as archive:
        for entity in schema.ENTITIES:
            if not release.columns(entity):
                continue
            statement = entity_copy_sql(
                release, entity, mode=mode, since=since, until=until, stamp=stamp,
                withheld=withheld,
            )
            if statement is None:
                continue
            rows = _copy_rows(*statement)
            first = next(rows, None)
            if first is None:
                continue
            count = 1
            deleted = 0
            with archive.open(f"{entity}.csv", "w", force_zip64=True) as handle:
                handle.write(_header(entity))
                handle.write(first)
                buffer: list[bytes] = []
                size = 0
                for block in rows:
                    buffer.append(block)
                    size += len(block)
                    count += 1
                    if size >= 256 * 1024:
                        handle.write(b"".join(buffer))
                        buffer, size = [], 0
                if buffer:
                    handle.write(b"".join(buffer))
            if mode == DELTA:
                deleted = _count_tobedeleted(release, entity, since=since, until=until,
                                             withheld=withheld)
            result.files[entity] = mode
            result.counts[entity] = count
            if deleted:
                result.deleted[entity] = deleted
            if collect_people:
                people = people_sql(release, entity, mode=mode, since=since, until=until)
                if people is not None:
                    with connection.cursor() as cursor:
                        cursor.execute(*people)
                        result.people[entity] = [r[0] for r in cursor.fetchall() if r[0]]
        archive.writestr(schema.MANIFEST_FILE, manifest_bytes(result.files))
    return result


def _count_tobedeleted(release: Any, entity: str, *, since: int | None, until: int,
                       withheld: frozenset[str] | None = None) -> int:
    if since is None:
        return 0
    return _deleted_queryset(release, entity, since=since, until=until,
                             withheld=withheld).count()
