"""The release policy: the one choke point between the canonical roster and any vendor.

``release_for(integration, at=None)`` answers, for one request or one run, everything a
spoke (OneRoster REST, CSV bundles, LTI launch, NRPS, AGS) may hand to that integration and
nothing else (DESIGN.md rule 3):

* ``live``: False when the integration is not active or its vendor is suspended or
  offboarded. The status is read from the database on every call, so a "suspend now" takes
  effect on the very next request or run. A release that is not live is empty: no
  services, no scopes, no projection, and every queryset is ``none()``; a spoke that forgot
  to check ``live`` still sends nothing.
* the allowed ``services``, ``scopes`` and LTI ``claims`` (the effective grant);
* ``projection``: per entity, the approved columns; a column that is not approved does not
  exist in any queryset (data minimisation happens in the SELECT list);
* ``org_sourced_ids``: the approved orgs and all their current descendants;
* ``excluded_user_sourced_ids``: people withheld by an active exclusion (all vendors, this
  vendor, or this integration);
* ``overrides``: corrections applied to the released values;
* ``pseudonymiser``: per-vendor keyed HMAC for pseudonymised integrations (identity
  otherwise);
* and the querysets spokes render from: ``orgs()``, ``academic_sessions()``, ``courses()``,
  ``classes()``, ``users()``, ``roles()``, ``user_profiles()``, ``enrollments()``,
  ``demographics()``, ``categories()``, ``line_items()``, ``results()``,
  ``score_scales()`` (or ``queryset(entity)``). Each is a ``values()`` queryset over the
  current canonical rows, already filtered, projected, pseudonymised and overridden in SQL:
  a page of any of them is one query, and rows are never filtered in Python.

Who is visible: a current user with a current role at an org in scope, or whose primary
org is in scope, and who is not excluded. Every row that refers to a person (enrollments,
roles, user profiles, demographics, results, and guardians' ``agent_sourced_ids``) is
released only when that person is visible, so an excluded pupil looks exactly like one who
left. References to orgs outside the scope (a user's primary org, an org's parent) are
released empty.

In a pseudonymised release the values carry the vendor-facing identifiers, and filters and
orderings a spoke adds on those columns (``.filter(sourced_id=...)``) compare the
pseudonyms too, so a vendor can never probe with a school identifier.
"""

from __future__ import annotations

import copy
import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from django.contrib.postgres.expressions import ArraySubquery
from django.db import connection
from django.db.models import (
    BooleanField,
    Case,
    Exists,
    F,
    Func,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Value,
    When,
)
from django.utils import timezone

from apps.audit.models import FieldClass
from apps.governance import release_cache
from apps.governance.pseudonyms import IDENTITY, Pseudonymiser, pseudonymiser_for_vendor
from apps.roster.ingest.staging import array_literal
from apps.roster.models import (
    CANONICAL_MODELS,
    CanonicalRow,
    Class,
    Course,
    Demographic,
    Enrollment,
    LineItem,
    Org,
    Result,
    Role,
    ScoreScale,
    User,
    UserProfile,
)

# Columns that identify a person, pseudonymised in a pseudonymised release. Arrays are
# pseudonymised element by element.
PSEUDONYMISED_COLUMNS: dict[str, tuple[str, ...]] = {
    "users": ("sourced_id", "username", "identifier", "user_master_identifier"),
    "roles": ("sourced_id", "user_sourced_id", "user_profile_sourced_id"),
    "userProfiles": ("sourced_id", "user_sourced_id", "username"),
    "enrollments": ("sourced_id", "user_sourced_id"),
    "demographics": ("sourced_id",),
    "results": ("sourced_id", "student_sourced_id"),
}
PSEUDONYMISED_ARRAYS: dict[str, tuple[str, ...]] = {"users": ("user_ids",)}

# User columns a preferred-name override replaces.
_NAME_COLUMNS = {
    "given_name": "given_name",
    "family_name": "family_name",
    "middle_name": "middle_name",
    "preferred_given_name": "given_name",
    "preferred_family_name": "family_name",
    "preferred_middle_name": "middle_name",
}
# Field classes a hide-from-directory override empties.
_DIRECTORY_CLASSES = frozenset({FieldClass.DIRECTORY, FieldClass.CONTACT})

# The person reference of each entity that refers to one (for counting what was withheld).
_PERSON_REFERENCE = {
    "users": "sourced_id",
    "roles": "user_sourced_id",
    "userProfiles": "user_sourced_id",
    "enrollments": "user_sourced_id",
    "demographics": "sourced_id",
    "results": "student_sourced_id",
}

ORG_SCOPE_SQL = """
WITH RECURSIVE scope(sourced_id) AS (
    SELECT o.sourced_id FROM roster_org o
    WHERE o.valid_to_version IS NULL AND o.sourced_id = ANY(%s)
  UNION
    SELECT child.sourced_id FROM roster_org child
    JOIN scope ON child.parent_sourced_id = scope.sourced_id
    WHERE child.valid_to_version IS NULL
)
SELECT sourced_id FROM scope
"""

WITHHELD_UPSERT_SQL = """
WITH ex(exclusion_id, user_sourced_id) AS (
    SELECT * FROM unnest(%s::bigint[], %s::text[])
), withheld(user_sourced_id) AS (
    {withheld}
), counted AS (
    SELECT ex.exclusion_id, count(*) AS records
    FROM withheld JOIN ex ON ex.user_sourced_id = withheld.user_sourced_id
    GROUP BY ex.exclusion_id
)
INSERT INTO governance_exclusionhit (exclusion_id, day, records, releases)
SELECT exclusion_id, %s, records, 1 FROM counted
ON CONFLICT (exclusion_id, day) DO UPDATE SET
    records = governance_exclusionhit.records + EXCLUDED.records,
    releases = governance_exclusionhit.releases + 1
"""


@dataclass(frozen=True)
class OverrideRule:
    """An active override as the release applies it (no owner or reason: not needed)."""

    id: int
    kind: str
    user_sourced_id: str
    class_sourced_id: str = ""
    role: str = ""
    given_name: str = ""
    middle_name: str = ""
    family_name: str = ""


def projection_for(
    *, field_classes: Iterable[str], fields: Iterable[str], classification: Mapping[str, str],
) -> dict[str, tuple[str, ...]]:
    """Approved columns per entity, by the classification's one rule
    (``fields_for_classes``): a column is approved when its class is approved or it is
    approved as a single field ("users.email"); an entity is released when one of its data
    columns is approved, and then its identifier columns (sourcedId, references) come with
    it, as nothing can be rendered without them."""
    from apps.governance.classification import fields_for_classes

    classes = frozenset(field_classes)
    singles = frozenset(fields)
    projection: dict[str, tuple[str, ...]] = {}
    for entity in CANONICAL_MODELS:
        columns = fields_for_classes(entity, classes, singles, classification=classification)
        if columns:
            projection[entity] = tuple(columns)
    return projection


def _column_classes(classification: Mapping[str, str]) -> dict[str, dict[str, str]]:
    out: dict[str, dict[str, str]] = {}
    for key, cls in classification.items():
        entity, column = key.split(".", 1)
        out.setdefault(entity, {})[column] = cls
    return out


def _select_as(qs: QuerySet, expressions: Mapping[str, Any]) -> QuerySet:
    """Select ``expressions`` under the names of the columns they replace.

    ``annotate()`` refuses a name that is a model field; the release needs exactly that
    (``sourced_id`` carrying the pseudonym), so that spokes cannot forget to use the
    released value, and so that their filters and orderings on it compare released values.
    Every expression is resolved against the unshadowed query first, so one replaced
    column never reads another's replacement.
    """
    qs = qs.all()
    query = qs.query
    resolved = {
        alias: expr.resolve_expression(query, allow_joins=True, reuse=None)
        for alias, expr in expressions.items()
    }
    for alias, expr in resolved.items():
        query.append_annotation_mask([alias])
        query.annotations[alias] = expr
    return qs


def _current(model: type[CanonicalRow]) -> QuerySet:
    return model.objects.filter(valid_to_version__isnull=True)


@dataclass(frozen=True)
class Release:
    """What one integration may receive at one moment. Ask ``release_for`` for one per
    request or run; it reuses a built release only while nothing it depends on has changed
    (``apps.governance.release_cache``), so levers act on the next request."""

    integration: Any
    vendor_id: int | None
    live: bool
    at: dt.datetime
    scopes: frozenset[str] = frozenset()
    services: frozenset[str] = frozenset()
    claims: frozenset[str] = frozenset()
    projection: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    org_sourced_ids: frozenset[str] = frozenset()
    # Never in the repr: a logged release must not name who is withheld.
    excluded_user_sourced_ids: frozenset[str] = field(default=frozenset(), repr=False)
    # exclusion id -> the person it withholds (for counting; never shown to a vendor)
    exclusions: Mapping[int, str] = field(default_factory=dict, repr=False)
    overrides: tuple[OverrideRule, ...] = field(default=(), repr=False)
    pseudonymiser: Pseudonymiser = IDENTITY
    column_classes: Mapping[str, Mapping[str, str]] = field(default_factory=dict, repr=False)
    approvals: tuple[int, ...] = ()
    # Built base querysets per entity, shared by every copy ``at_instant`` makes.
    _querysets: dict[str, QuerySet] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    def at_instant(self, at: dt.datetime) -> Release:
        """The same release, asked about at ``at`` (a cached release reused for a later
        request: only the instant differs; computed org literals are kept)."""
        if at == self.at:
            return self
        clone = copy.copy(self)
        object.__setattr__(clone, "at", at)
        return clone

    # --- questions spokes ask ---------------------------------------------------------------

    @property
    def pseudonymised(self) -> bool:
        return self.pseudonymiser.enabled

    def allows_service(self, service: str) -> bool:
        return self.live and service in self.services

    def allows_scope(self, scope: str) -> bool:
        return self.live and scope in self.scopes

    def columns(self, entity: str) -> tuple[str, ...]:
        """The approved columns of ``entity`` (empty: the entity is not released)."""
        return tuple(self.projection.get(entity, ()))

    # --- released querysets -----------------------------------------------------------------

    def orgs(self) -> QuerySet:
        return self.queryset("orgs")

    def academic_sessions(self) -> QuerySet:
        return self.queryset("academicSessions")

    def courses(self) -> QuerySet:
        return self.queryset("courses")

    def classes(self) -> QuerySet:
        return self.queryset("classes")

    def users(self) -> QuerySet:
        return self.queryset("users")

    def roles(self) -> QuerySet:
        return self.queryset("roles")

    def user_profiles(self) -> QuerySet:
        return self.queryset("userProfiles")

    def enrollments(self) -> QuerySet:
        return self.queryset("enrollments")

    def demographics(self) -> QuerySet:
        return self.queryset("demographics")

    def categories(self) -> QuerySet:
        return self.queryset("categories")

    def line_items(self) -> QuerySet:
        return self.queryset("lineItems")

    def results(self) -> QuerySet:
        return self.queryset("results")

    def score_scales(self) -> QuerySet:
        return self.queryset("scoreScales")

    def queryset(self, entity: str) -> QuerySet:
        """The released rows of ``entity`` as dicts of its approved columns.

        Built once per release and handed out as a fresh clone: a cached release serves
        many requests, and building the filters, subqueries and replacements is most of
        what a small page costs in Python. The base is never evaluated, so it holds no
        rows, only the query."""
        base = self._querysets.get(entity)
        if base is None:
            base = self._querysets[entity] = self._build_queryset(entity)
        return base.all()

    def _build_queryset(self, entity: str) -> QuerySet:
        model = CANONICAL_MODELS[entity]
        columns = self.columns(entity)
        if not self.live or not columns:
            return model.objects.none().values()
        qs = self._filtered(entity, excluded=self.excluded_user_sourced_ids)
        replaced = {
            column: expr
            for column, expr in self._replacements(entity).items()
            if column in columns
        }
        if replaced:
            qs = _select_as(qs, replaced)
        return qs.values(*columns)

    # --- counts for the effective-access page ------------------------------------------------

    def visible_user_count(self) -> int:
        return self.users().count()

    def withheld_user_count(self) -> int:
        """People an exclusion withholds who would otherwise be visible (a count only)."""
        if not self.live or not self.excluded_user_sourced_ids or not self.columns("users"):
            return 0
        return (
            self._filtered("users", excluded=frozenset())
            .filter(sourced_id__in=self.excluded_user_sourced_ids)
            .values("sourced_id").distinct().count()
        )

    def record_withheld(self, *, entities: Iterable[str] | None = None) -> int:
        """Count what the exclusions withheld from this release, in one upsert.

        For each active exclusion: how many rows of ``entities`` (default: every released
        entity) would have been released but for it, added to its counter for the day;
        ``releases`` counts the requests or runs in which it withheld anything. Spokes call
        it once per request or run. Returns the number of exclusions that withheld data.
        """
        if not self.live or not self.exclusions:
            return 0
        wanted = set(self.projection) if entities is None else set(entities)
        parts: list[tuple[str, tuple]] = []
        for entity, reference in _PERSON_REFERENCE.items():
            if entity not in wanted or not self.columns(entity):
                continue
            qs = (
                self._filtered(entity, excluded=frozenset())
                .filter(**{f"{reference}__in": self.excluded_user_sourced_ids})
                .values(reference)
            )
            parts.append(qs.query.sql_with_params())
        if "users" in wanted and "agent_sourced_ids" in self.columns("users"):
            # guardians' links to an excluded pupil, one per link
            links = (
                self._filtered("users", excluded=self.excluded_user_sourced_ids)
                .filter(agent_sourced_ids__overlap=list(self.excluded_user_sourced_ids))
                .annotate(linked=Func(F("agent_sourced_ids"), function="unnest"))
                .values("linked")
            )
            parts.append(links.query.sql_with_params())
        if not parts:
            return 0
        withheld = " UNION ALL ".join(f"({sql})" for sql, _ in parts)
        params: list[Any] = [list(self.exclusions), list(self.exclusions.values())]
        for _, part_params in parts:
            params.extend(part_params)
        params.append(timezone.localdate(self.at))
        with connection.cursor() as cursor:
            cursor.execute(WITHHELD_UPSERT_SQL.format(withheld=withheld), params)
            return cursor.rowcount

    # --- internals -------------------------------------------------------------------------

    @cached_property
    def _orgs(self) -> list[str]:
        return sorted(self.org_sourced_ids)

    @cached_property
    def org_array(self) -> str:
        """The org scope as one text[] literal, for SQL a spoke writes (``= ANY(%s::text[])``)."""
        return array_literal(self._orgs)

    def _in_orgs(self, column: str) -> _MemberOf:
        return _MemberOf(column, self.org_array)

    def _visible_users(self, excluded: frozenset[str]) -> QuerySet:
        in_scope = Q(self._in_orgs("primary_org_sourced_id")) | Exists(
            _current(Role).filter(self._in_orgs("org_sourced_id"),
                                  user_sourced_id=OuterRef("sourced_id"))
        )
        qs = _current(User).filter(in_scope)
        if excluded:
            qs = qs.exclude(sourced_id__in=sorted(excluded))
        return qs

    def _visible_person(self, reference: str, excluded: frozenset[str]) -> Exists:
        return Exists(self._visible_users(excluded).filter(sourced_id=OuterRef(reference)))

    def _visible_classes(self) -> QuerySet:
        return _current(Class).filter(self._in_orgs("school_sourced_id"))

    def _filtered(self, entity: str, *, excluded: frozenset[str]) -> QuerySet:
        """The rows of ``entity`` this release may show (unprojected, raw values)."""
        model = CANONICAL_MODELS[entity]
        if not self._orgs:
            return model.objects.none()
        person = lambda ref: self._visible_person(ref, excluded)  # noqa: E731
        visible_class = lambda ref: Exists(  # noqa: E731
            self._visible_classes().filter(sourced_id=OuterRef(ref))
        )
        if entity == "orgs":
            return _current(Org).filter(self._in_orgs("sourced_id"))
        if entity in ("academicSessions", "categories"):
            return _current(model)  # not tied to an org
        if entity == "courses":
            return _current(Course).filter(self._in_orgs("org_sourced_id"))
        if entity == "classes":
            return self._visible_classes()
        if entity == "scoreScales":
            return _current(ScoreScale).filter(self._in_orgs("org_sourced_id"))
        if entity == "users":
            return self._visible_users(excluded)
        if entity == "roles":
            return _current(Role).filter(person("user_sourced_id"), self._in_orgs("org_sourced_id"))
        if entity == "userProfiles":
            return _current(UserProfile).filter(person("user_sourced_id"))
        if entity == "demographics":
            return _current(Demographic).filter(person("sourced_id"))
        if entity == "enrollments":
            return _current(Enrollment).filter(
                person("user_sourced_id"), visible_class("class_sourced_id"),
                self._in_orgs("school_sourced_id"),
            )
        if entity == "lineItems":
            return _current(LineItem).filter(visible_class("class_sourced_id"))
        if entity == "results":
            visible_items = _current(LineItem).filter(
                visible_class("class_sourced_id"), sourced_id=OuterRef("line_item_sourced_id")
            )
            return _current(Result).filter(
                person("student_sourced_id"),
                Exists(visible_items),
                Q(class_sourced_id__isnull=True) | visible_class("class_sourced_id"),
            )
        raise KeyError(entity)  # pragma: no cover - CANONICAL_MODELS lists every entity

    def _replacements(self, entity: str) -> dict[str, Any]:
        """Released values that differ from the stored ones, as SQL expressions."""
        out: dict[str, Any] = {}
        pseudo = self.pseudonymiser
        if pseudo.enabled:
            for column in PSEUDONYMISED_COLUMNS.get(entity, ()):
                out[column] = pseudo.sql(column)
            for column in PSEUDONYMISED_ARRAYS.get(entity, ()):
                out[column] = pseudo.sql_array(column)
            if entity == "results":
                out["sourced_id"] = self._own_results_unpseudonymised(out["sourced_id"])
        if entity == "orgs":
            out["parent_sourced_id"] = Case(
                When(self._in_orgs("parent_sourced_id"), then=F("parent_sourced_id")),
                default=None, output_field=_field(Org, "parent_sourced_id"),
            )
        elif entity == "users":
            out.update(self._user_replacements(out.get("sourced_id")))
        elif entity == "enrollments":
            corrections = [o for o in self.overrides if o.kind == "role_correction"]
            if corrections:
                out["role"] = Case(
                    *(
                        When(user_sourced_id=o.user_sourced_id,
                             class_sourced_id=o.class_sourced_id, then=Value(o.role))
                        for o in corrections
                    ),
                    default=F("role"), output_field=_field(Enrollment, "role"),
                )
        return out

    def _own_results_unpseudonymised(self, pseudonym: Any) -> Any:
        """A result the integration wrote itself keeps the sourcedId it chose: that id is
        the vendor's own, not the school's, and the vendor must find its result by it."""
        from apps.roster.gradebook import INTEGRATION_SOURCE_PREFIX
        from apps.roster.models import Source

        own = Source.objects.filter(name=f"{INTEGRATION_SOURCE_PREFIX}{self.integration.pk}")
        return Case(
            When(source_id=Subquery(own.values("pk")[:1]), then=F("sourced_id")),
            default=pseudonym, output_field=_field(Result, "sourced_id"),
        )

    def _user_replacements(self, pseudonym_expr: Any) -> dict[str, Any]:
        out: dict[str, Any] = {
            "primary_org_sourced_id": Case(
                When(self._in_orgs("primary_org_sourced_id"),
                     then=F("primary_org_sourced_id")),
                default=None, output_field=_field(User, "primary_org_sourced_id"),
            ),
            # Only links to people this release shows, so a guardian never points at an
            # excluded or out-of-scope child.
            "agent_sourced_ids": ArraySubquery(
                self._visible_users(self.excluded_user_sourced_ids)
                .filter(_EqualsAny(F("sourced_id"), OuterRef("agent_sourced_ids")))
                .order_by("sourced_id")
                .values_list(self.pseudonymiser.sql("sourced_id"))
            ),
        }
        names = [o for o in self.overrides if o.kind == "preferred_name"]
        for column, source in _NAME_COLUMNS.items():
            if names:
                out[column] = Case(
                    *(
                        When(sourced_id=o.user_sourced_id,
                             then=Value(getattr(o, source) or None))
                        for o in names
                    ),
                    default=F(column), output_field=_field(User, column),
                )
        hidden = sorted({o.user_sourced_id for o in self.overrides if o.kind == "hide_directory"})
        if hidden:
            classes = self.column_classes.get("users", {})
            for column, cls in classes.items():
                if cls in _DIRECTORY_CLASSES:
                    kept = out.get(column, F(column))
                    out[column] = Case(
                        When(sourced_id__in=hidden, then=Value(None)), default=kept,
                        output_field=_field(User, column),
                    )
        return out


def _field(model: type[CanonicalRow], column: str) -> Any:
    return model._meta.get_field(column)


class _EqualsAny(Func):
    """``value = ANY(array)``: membership in a text array column, as a filter."""

    output_field = BooleanField()

    def as_sql(self, compiler, connection, **extra_context):  # type: ignore[no-untyped-def]
        (left, left_params), (right, right_params) = (
            compiler.compile(arg) for arg in self.get_source_expressions()
        )
        return f"{left} = ANY({right})", (*left_params, *right_params)


class _MemberOf(Func):
    """``column = ANY(%s::text[])`` with the members as ONE bound text[] literal.

    A district's org scope can hold hundreds of orgs. As ``__in`` it becomes one placeholder
    per org in every statement, each quoted by the driver on every request (tens of
    milliseconds a REST page at 334 orgs); as one literal it costs nothing, and PostgreSQL
    hashes the membership test.
    """

    output_field = BooleanField()

    def __init__(self, column: str, literal: str) -> None:
        super().__init__(F(column))
        self.literal = literal

    def as_sql(self, compiler, connection, **extra_context):  # type: ignore[no-untyped-def]
        column_sql, params = compiler.compile(self.get_source_expressions()[0])
        return f"{column_sql} = ANY(%s::text[])", (*params, self.literal)


def _expand_orgs(chosen: Iterable[str]) -> frozenset[str]:
    chosen = sorted(set(chosen))
    if not chosen:
        return frozenset()
    with connection.cursor() as cursor:
        cursor.execute(ORG_SCOPE_SQL, [chosen])
        return frozenset(row[0] for row in cursor.fetchall())


_READ_NOW: Any = object()


def release_for(integration: Any, *, at: dt.datetime | None = None,
                generations: release_cache.Generations | None = _READ_NOW) -> Release:
    """Everything ``integration`` may receive at ``at`` (now by default).

    Answers from the process's release cache when no lever has moved since it was built
    (one indexed query; see ``release_cache``), else builds it afresh: the integration's
    and vendor's status, the grant, the org scope, exclusions, overrides and the vendor
    key. Either way a suspension, an exclusion or a withdrawn approval acts on the next
    call. The querysets cost one query each.

    ``generations``: the release generations as this request already read them (its token
    lookup carries ``release_cache.GENERATIONS_COLUMN_SQL``), instead of reading them
    again; only ever values read during the same request.
    """
    at = at or timezone.now()
    current = release_cache.generations() if generations is _READ_NOW else generations
    if current is not None:
        hit = release_cache.cached(integration.pk, current, at)
        if hit is not None:
            return hit.at_instant(at)
    release = _build_release(integration.pk, at)
    if current is not None:
        release.org_array  # noqa: B018 - computed once here, inherited by every reuse
        window = release_cache.window_for(
            integration_id=integration.pk, vendor_id=release.vendor_id, at=at
        )
        release_cache.store(integration.pk, current, window, release)
    return release


def _build_release(integration_id: int, at: dt.datetime) -> Release:
    from apps.governance.classification import classification_map
    from apps.governance.models import Exclusion, Override
    from apps.governance.selectors.grant import effective_grant
    from apps.vendors.models import Integration

    integration = Integration.objects.select_related("vendor").get(pk=integration_id)
    if not integration.is_live:
        return Release(integration=integration, vendor_id=integration.vendor_id, live=False, at=at)
    grant = effective_grant(integration, at=at)
    classification = classification_map()
    exclusions = dict(
        Exclusion.objects.active(at).applying_to(integration)
        .order_by("id").values_list("id", "user_sourced_id")
    )
    overrides = tuple(
        OverrideRule(**row)
        for row in Override.objects.active(at).order_by("id").values(
            "id", "kind", "user_sourced_id", "class_sourced_id", "role", "given_name",
            "middle_name", "family_name",
        )
    )
    pseudonymiser = (
        pseudonymiser_for_vendor(integration.vendor_id) if integration.pseudonymised else IDENTITY
    )
    return Release(
        integration=integration,
        vendor_id=integration.vendor_id,
        live=True,
        at=at,
        scopes=frozenset(grant.scopes),
        services=frozenset(grant.services),
        claims=frozenset(grant.claims),
        projection=projection_for(
            field_classes=grant.field_classes, fields=grant.fields, classification=classification
        ),
        org_sourced_ids=_expand_orgs(grant.org_sourced_ids),
        excluded_user_sourced_ids=frozenset(exclusions.values()),
        exclusions=exclusions,
        overrides=overrides,
        pseudonymiser=pseudonymiser,
        column_classes=_column_classes(classification),
        approvals=tuple(grant.approvals),
    )
