"""The rows of one LTI launch, through the release policy (DESIGN.md rule 3).

A launch carries one person, one class, the person's roles in that class and their roles at
orgs. ``launch_rows(release, person_sourced_id=..., class_sourced_id=...)`` reads them as the
release shows them to REST: the same visibility filters (org scope with its descendants,
exclusions, people known only outside the scope), the same pseudonymised identifiers, the
same overrides (preferred names, hidden directory fields, role corrections). An excluded
pupil therefore has no row here exactly as they have none in ``release.users()``, and a
corrected role reaches the launch as it reaches ``release.enrollments()``.

What differs from REST is the projection only: a launch is governed by the LTI grant
(``release.claims``: which personal claims a token may carry), and the rows here hold the
few columns a launch can carry before that grant is applied (``claims.personal_claims``
applies it). Nothing outside those columns is read.

Why compiled SQL: a launch runs this twice (initiation and ``/lti/auth``), and building the
release's querysets costs milliseconds of ORM work each time. The statement is compiled once
per release content (its fingerprint: scope, exclusions, overrides, pseudonym key, field
classes) with placeholders for the person and the class, and reused while that content is
unchanged; any change of a lever changes the fingerprint, so the next launch compiles anew.
Spokes may embed the statement in their own (``launch_rows_sql``), so a launch reads its
rows in the statement that already reads its hint or deployment.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from django.db import connection
from django.db.models import QuerySet

from apps.governance.release import Release, _select_as
from portal.db import prepared

PERSON_COLUMNS = ("sourced_id", "enabled_user", "given_name", "family_name",
                  "preferred_given_name", "preferred_family_name", "email")
CLASS_COLUMNS = ("sourced_id", "title", "class_code", "school_sourced_id", "course_sourced_id")

# Placeholder values the statements are compiled with; each is swapped for a bound value
# (or a SQL fragment of the caller's) afterwards.
_PERSON = "\x00release-launch:person\x00"
_CLASS = "\x00release-launch:class\x00"
_CACHE_SIZE = 256


@dataclass(frozen=True)
class LaunchRows:
    """One launch as released: ``person["sourced_id"]`` is the released (vendor-facing)
    identifier; the school's own id stays with the caller."""

    person: dict[str, Any]
    klass: dict[str, Any]
    enrollment_roles: tuple[str, ...]
    org_roles: tuple[str, ...]


@dataclass(frozen=True)
class CompiledSql:
    """A statement with named slots: ``bind`` fills them for one call."""

    sql: str
    params: tuple[Any, ...]
    slots: tuple[tuple[int, str], ...]  # (index in params, slot name)

    def bind(self, **values: Any) -> list[Any]:
        params = list(self.params)
        for index, name in self.slots:
            params[index] = values[name]
        return params


def _released(release: Release, entity: str, columns: Sequence[str], **filters: Any) -> QuerySet:
    """``entity``'s rows as ``release`` shows them (visibility, pseudonyms, overrides), the
    filters applied to the school's values before any replacement, ``columns`` selected."""
    qs = release._filtered(entity, excluded=release.excluded_user_sourced_ids).filter(**filters)
    replaced = {c: e for c, e in release._replacements(entity).items() if c in columns}
    if replaced:
        qs = _select_as(qs, replaced)
    return qs.values(*columns)


def compiled(qs: QuerySet) -> tuple[str, list[Any]]:
    """A queryset's SQL and parameters; an empty queryset (nothing released) as a statement
    with the same column names and no rows, so a statement embedding it keeps its shape."""
    if qs.query.is_empty():
        names = list(getattr(qs, "_fields", None) or ()) or ["value"]
        columns = ", ".join(f'NULL AS "{name}"' for name in names)
        return f"SELECT {columns} WHERE false", []  # noqa: S608 (field names)
    sql, params = qs.query.sql_with_params()
    return sql, list(params)


def substitute(sql: str, params: Sequence[Any],
                fragments: Mapping[str, tuple[str, tuple[str, ...]]]) -> CompiledSql:
    """Replace each placeholder whose value is a marker in ``fragments`` by the marker's SQL
    fragment (which may hold placeholders of its own, one per named slot)."""
    pieces = sql.split("%s")
    if len(pieces) != len(params) + 1:  # pragma: no cover - Django emits no literal %s
        raise ValueError("unexpected placeholders in a release statement")
    out_sql = [pieces[0]]
    out_params: list[Any] = []
    slots: list[tuple[int, str]] = []
    for value, tail in zip(params, pieces[1:], strict=True):
        marker = fragments.get(value) if isinstance(value, str) else None
        if marker is None:
            out_sql.append("%s")
            out_params.append(value)
        else:
            fragment, names = marker
            out_sql.append(fragment)
            for name in names:
                slots.append((len(out_params), name))
                out_params.append(None)
        out_sql.append(tail)
    return CompiledSql(sql="".join(out_sql), params=tuple(out_params), slots=tuple(slots))


def _build_launch_sql(release: Release) -> tuple[str, list[Any]]:
    person, person_params = compiled(
        _released(release, "users", PERSON_COLUMNS, sourced_id=_PERSON))
    klass, class_params = compiled(
        _released(release, "classes", CLASS_COLUMNS, sourced_id=_CLASS))
    enrolled, enrolled_params = compiled(
        _released(release, "enrollments", ("role",), user_sourced_id=_PERSON,
                  class_sourced_id=_CLASS))
    roles, roles_params = compiled(
        _released(release, "roles", ("role",), user_sourced_id=_PERSON))
    sql = (
        f"SELECT (SELECT row_to_json(p) FROM ({person}) p LIMIT 1) AS person, "  # noqa: S608
        f"(SELECT row_to_json(c) FROM ({klass}) c LIMIT 1) AS klass, "
        f"ARRAY(SELECT DISTINCT e.role FROM ({enrolled}) e(role) ORDER BY 1) AS enrollment_roles, "
        f"ARRAY(SELECT DISTINCT r.role FROM ({roles}) r(role) ORDER BY 1) AS org_roles"
    )
    return sql, [*person_params, *class_params, *enrolled_params, *roles_params]


def fingerprint(release: Release) -> tuple[Any, ...]:
    """Everything the release's filters, replacements and projection are built from (not
    ``at``: the statements hold no instant). A release whose levers moved differs here, so
    a statement compiled for it is never reused for another."""
    pseudonymiser = release.pseudonymiser
    hidden = any(o.kind == "hide_directory" for o in release.overrides)
    return (
        release.integration.pk, release.live, pseudonymiser.enabled, pseudonymiser._ipad,
        pseudonymiser._opad, release.org_array, release.excluded_user_sourced_ids,
        release.overrides, release.claims,
        tuple(sorted((entity, tuple(cols)) for entity, cols in release.projection.items())),
        tuple(sorted(release.column_classes.get("users", {}).items())) if hidden else (),
    )


_statements: OrderedDict[tuple[Any, ...], CompiledSql] = OrderedDict()
_lock = threading.Lock()


def compiled_for(release: Release, key: tuple[Any, ...],
                 build: Callable[[], tuple[str, list[Any]]],
                 fragments: Mapping[str, tuple[str, tuple[str, ...]]]) -> CompiledSql:
    """The statement ``build`` compiles for ``release``, its markers replaced by
    ``fragments`` (``substitute``): compiled once per release content, ``key`` (what else
    the statement depends on) and fragments, then reused while they are unchanged."""
    cache_key = (*key, tuple(sorted(fragments.items())), *fingerprint(release))
    return _cached(cache_key, lambda: substitute(*build(), fragments))


def _cached(key: tuple[Any, ...], build: Callable[[], CompiledSql]) -> CompiledSql:
    with _lock:
        hit = _statements.get(key)
        if hit is not None:
            _statements.move_to_end(key)
            return hit
    built = build()
    with _lock:
        _statements[key] = built
        while len(_statements) > _CACHE_SIZE:
            _statements.popitem(last=False)
    return built


def launch_rows_sql(release: Release, *, person_sql: str = "%s", person_slots: Iterable[str] = (
        "person",), class_sql: str = "%s", class_slots: Iterable[str] = ("class",)
                    ) -> CompiledSql:
    """The launch statement for ``release``: one row of (person json, class json,
    enrollment roles, org roles). The person and the class are bound as values by default
    (slots ``person`` and ``class``), or given as SQL fragments of the embedding statement
    (``person_sql="(SELECT ... WHERE user_id = %s)", person_slots=("user",)``)."""
    return compiled_for(release, ("launch",), lambda: _build_launch_sql(release), {
        _PERSON: (person_sql, tuple(person_slots)),
        _CLASS: (class_sql, tuple(class_slots)),
    })


def launch_rows_from(row: Sequence[Any]) -> LaunchRows | None:
    """The ``LaunchRows`` of one result row of ``launch_rows_sql`` (None: the person or the
    class is not released, e.g. excluded, out of scope or left)."""
    person, klass, enrollment_roles, org_roles = row
    if person is None or klass is None:
        return None
    return LaunchRows(person=dict(person), klass=dict(klass),
                      enrollment_roles=tuple(enrollment_roles or ()),
                      org_roles=tuple(org_roles or ()))


def launch_rows(release: Release, *, person_sourced_id: str,
                class_sourced_id: str) -> LaunchRows | None:
    """The person, the class and the person's roles as ``release`` shows them, in one
    statement (None: either is not released). Enrollment roles may be empty: the person is
    released but not enrolled in the class."""
    if not release.live:
        return None
    compiled = launch_rows_sql(release)
    with connection.cursor() as cursor:
        prepared.execute(cursor, prepared.statement(compiled.sql), compiled.bind(
            person=person_sourced_id, **{"class": class_sourced_id}))
        return launch_rows_from(cursor.fetchone())
