"""Pages of OneRoster JSON built by PostgreSQL from the release's querysets.

A page is one statement: the release's queryset (already filtered, projected,
pseudonymised and overridden by ``release_for``), narrowed by the client's filter and the
endpoint's scope, ordered and sliced, is wrapped in a ``SELECT json_build_object(...)``
that renders each record exactly as the binding wants it (string booleans, dates,
``{href, sourcedId, type}`` references, a user's roles). Python joins the rows' JSON
texts; it never builds a dict per record.

``X-Total-Count`` and deep offsets come from :func:`page_stats`: one window query per
(release, roster version, endpoint scope, filter) computes the total and the sourcedId
found every ``ANCHOR_STEP`` records, cached. A page at offset K in the default order then
starts from the nearest anchor (an index range scan) instead of skipping K rows, and no
page runs a fresh ``COUNT(*)``. The roster version changes on every apply and rollback,
and the release's fingerprint changes with every governance change, so a cached figure is
never served for data it does not describe.

A pseudonymised release orders people by pseudonym, which is computed per record and has
no index: anchors would still have every page compute every pseudonym of the list. For
such a list the same query keeps, instead of anchors, the stored ids of each run of
``ANCHOR_STEP`` records (``PageRun``), and a page reads only the records of its runs.
"""

# SQL text here names only our own tables and columns; client values are always bound
# parameters (the tests feed hostile filters through HTTP to keep it so).
# ruff: noqa: S608, S611
from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass

from django.core.cache import cache
from django.db import connection
from django.db.models import BooleanField, F, QuerySet
from django.db.models.expressions import RawSQL
from django.db.models.functions import Collate
from django.db.models.lookups import GreaterThanOrEqual, LessThanOrEqual

from apps.oneroster_api import entities as E
from apps.oneroster_api.query import C

# A page at a random offset skips fewer than this many rows from its anchor (each skipped
# row of a filtered list is a heap visit); 250 took ~0.45 ms off such a page against 1000.
ANCHOR_STEP = 250
STATS_TTL_SECONDS = 3600

ROSTER_VERSION_SQL = "SELECT coalesce(max(number), 0) FROM roster_rosterversion"

STATS_SQL = """
SELECT k, n, total FROM (
    SELECT k, row_number() OVER (ORDER BY k COLLATE "C") - 1 AS n, count(*) OVER () AS total
    FROM ({ids}) AS s(k)
) AS t
WHERE n %% {step} = 0
ORDER BY n
"""

_ISO_DATETIME = """'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'"""


def roster_version() -> int:
    with connection.cursor() as cursor:
        cursor.execute(ROSTER_VERSION_SQL)
        return int(cursor.fetchone()[0])


def release_fingerprint(release) -> str:  # type: ignore[no-untyped-def]
    """Everything in a release that decides which rows and values it shows."""
    parts = (
        release.integration.pk, release.live, sorted(release.org_sourced_ids),
        sorted(release.excluded_user_sourced_ids),
        sorted((o.id, o.kind, o.user_sourced_id, o.class_sourced_id, o.role, o.given_name,
                o.middle_name, o.family_name) for o in release.overrides),
        sorted((k, tuple(v)) for k, v in release.projection.items()),
        release.pseudonymiser.enabled, release.vendor_id,
    )
    return hashlib.sha256(repr(parts).encode()).hexdigest()


def _q(column: str) -> str:
    return f'r."{column}"'


def _ref_sql(value_sql: str, ref_type: str, href: str) -> tuple[str, list]:
    return (
        f"json_build_object('href', %s || {value_sql}, 'sourcedId', {value_sql}, 'type', %s)",
        [href, ref_type],
    )


# Kinds whose SQL is already JSON (the others are scalars turned into JSON with to_json).
_JSON_KINDS = frozenset(
    {E.STRLIST, E.REF, E.REFS, E.USER_IDS, E.ROLES, E.USER_PROFILES, E.CHILDREN,
     E.SCALE_VALUES}
)


def field_sql(f: E.Field, *, release, base_url: str) -> tuple[str, list]:  # type: ignore[no-untyped-def]
    """SQL (and its parameters) for one JSON field of a record selected as ``r``."""
    col = _q(f.column) if f.column else ""
    href = f"{base_url}/{f.ref_collection}/"
    if f.kind == E.STR:
        return col, []
    if f.kind == E.STATUS:
        return "'active'::text", []
    if f.kind == E.DATETIME:
        if f.column == "date_last_modified":
            # The source's clock when it gave one, else when the version was applied.
            col = (f"coalesce({col}, (SELECT v.created_at FROM roster_rosterversion v "
                   "WHERE v.number = r._from))")
        return f"to_char({col} AT TIME ZONE 'UTC', {_ISO_DATETIME})", []
    if f.kind == E.DATE:
        return f"to_char({col}, 'YYYY-MM-DD')", []
    if f.kind == E.BOOL:
        return f"CASE WHEN {col} THEN 'true' WHEN NOT {col} THEN 'false' END", []
    if f.kind == E.YEAR:
        return f"{col}::text", []
    if f.kind == E.STRLIST:
        return f"to_json({col})", []
    if f.kind == E.REF:
        ref, params = _ref_sql(col, f.ref_type, href)
        return f"CASE WHEN {col} IS NULL THEN NULL ELSE {ref} END", params
    # Arrays are aggregated straight from unnest, which yields them in order; an ORDER BY
    # inside the aggregate would start a sort for every record of the page.
    if f.kind == E.REFS:
        ref, params = _ref_sql("e.v", f.ref_type, href)
        return (
            f"(SELECT json_agg({ref}) "
            f"FROM unnest({col}) AS e(v))",
            params,
        )
    if f.kind == E.USER_IDS:
        # "{type:identifier}" strings in the CSV binding; a bare value has no type.
        x = "trim(both '{}' from e.v)"
        return (
            "(SELECT json_agg(json_build_object("
            f"'type', CASE WHEN position(':' in {x}) > 0 THEN split_part({x}, ':', 1) "
            "ELSE '' END, "
            f"'identifier', CASE WHEN position(':' in {x}) > 0 "
            f"THEN substr({x}, position(':' in {x}) + 1) ELSE {x} END)) "
            f"FROM unnest({col}) AS e(v))",
            [],
        )
    if f.kind == E.ROLES:
        # Rendered as text, member by member (a NULL member drops out of concat_ws): no
        # json_strip_nulls re-parse per role. The order comes from the (user, org, roleType,
        # role) index through an ordered subquery, not from a sort per user: an aggregate's
        # own ORDER BY starts a sort for every record of the page.
        role_columns = set(release.columns("roles"))
        members = [
            f"'\"{name}\":' || "
            + (f"to_json(to_char(ro.{column}, 'YYYY-MM-DD'))::text" if kind == E.DATE
               else f"to_json(ro.{column})::text")
            for name, column, kind in E.ROLE_FIELDS if column in role_columns
        ]
        org_ref, params = _ref_sql("ro.org_sourced_id", "org", f"{base_url}/orgs/")
        members.append(f"'\"org\":' || ({org_ref})::text")
        if "user_profile_sourced_id" in role_columns:
            # the profile's sourcedId as the release shows it (a pseudonym when it is one)
            profile, pads = release.pseudonymiser.sql_text("ro.user_profile_sourced_id")
            members.append(f"'\"userProfile\":' || to_json({profile})::text")
            params = [*params, *pads]
        return (
            f"coalesce((SELECT '[' || string_agg('{{' || concat_ws(',', {', '.join(members)})"
            " || '}', ',') || ']' FROM (SELECT * FROM roster_role ro "
            "WHERE ro.valid_to_version IS NULL AND ro.user_sourced_id = r._rid "
            "AND ro.org_sourced_id = ANY(%s::text[]) "
            "ORDER BY ro.org_sourced_id COLLATE \"C\", ro.role_type COLLATE \"C\", "
            "ro.role COLLATE \"C\") AS ro), '[]')",
            [*params, release.org_array],
        )
    if f.kind == E.USER_PROFILES:
        return _user_profiles_sql(release)
    if f.kind == E.NUMBER:
        return f"{col}::float8", []
    if f.kind == E.SCALE_VALUES:
        x = "trim(both '{}' from e.v)"
        return (
            "(SELECT json_agg(json_build_object("
            f"'itemValueLHS', split_part({x}, ':', 1), "
            f"'itemValueRHS', substr({x}, position(':' in {x}) + 1))) "
            f"FROM unnest({col}) AS e(v))",
            [],
        )
    if f.kind == E.CHILDREN:
        ref, params = _ref_sql("c.sourced_id", f.ref_type, href)
        if f.ref_type == "org":
            return (
                f"(SELECT json_agg({ref} ORDER BY c.sourced_id COLLATE \"C\") FROM roster_org c "
                "WHERE c.valid_to_version IS NULL AND c.parent_sourced_id = r._rid "
                "AND c.sourced_id = ANY(%s::text[]))",
                [*params, release.org_array],
            )
        return (
            f"(SELECT json_agg({ref} ORDER BY c.sourced_id COLLATE \"C\") "
            "FROM roster_academicsession c "
            "WHERE c.valid_to_version IS NULL AND c.parent_sourced_id = r._rid)",
            params,
        )
    raise ValueError(f.kind)  # pragma: no cover - every kind is handled above


def _user_profiles_sql(release) -> tuple[str, list]:  # type: ignore[no-untyped-def]
    """A user's profiles from the release's own userProfiles queryset (visibility,
    exclusions and pseudonymised ids and usernames exactly as for the collection), joined
    to the record by the stored person id."""
    columns = set(release.columns("userProfiles"))
    profiles = release.user_profiles().extra(
        where=['"roster_userprofile"."user_sourced_id" = r._rid']
    ).order_by()
    sql, params = profiles.query.sql_with_params()
    members = [f"'{name}', p.{column}" for name, column in E.PROFILE_FIELDS if column in columns]
    credential = [f"'{name}', p.{column}" for name, column in
                  (("type", "credential_type"), ("username", "username")) if column in columns]
    if credential:
        members.append(
            f"'credentials', json_build_array(json_strip_nulls(json_build_object("
            f"{', '.join(credential)})))"
        )
    return (
        f"(SELECT json_agg(json_strip_nulls(json_build_object({', '.join(members)})) "
        f"ORDER BY p.sourced_id COLLATE \"C\") FROM ({sql}) AS p)",
        list(params),
    )


def with_raw_ids(qs: QuerySet, entity: E.Entity) -> QuerySet:
    """Add the stored (never pseudonymised) sourcedId and person id, for joins and the
    disclosure ledger; they are not rendered."""
    extra = {
        "_rid": RawSQL(f'"{entity.table}"."sourced_id"', ()),
        "_from": RawSQL(f'"{entity.table}"."valid_from_version"', ()),
    }
    if entity.person_column:
        extra["_pid"] = RawSQL(f'"{entity.table}"."{entity.person_column}"', ())
    return qs.annotate(**extra)


def page_sql(inner: QuerySet, fields: Sequence[E.Field], entity: E.Entity, *, release,  # type: ignore[no-untyped-def]
             base_url: str) -> tuple[str, list]:
    """The statement rendering each record of ``inner`` (ordered and sliced) as JSON text."""
    parts, params = [], []
    for f in fields:
        sql, p = field_sql(f, release=release, base_url=base_url)
        value = f"({sql})::text" if f.kind in _JSON_KINDS else f"to_json({sql})::text"
        # A NULL value makes its whole "key":value part NULL, and concat_ws skips it: the
        # record has no null members, as the binding's schemas want, without the cost of
        # json_strip_nulls re-parsing every record.
        parts.append(f"'\"{f.name}\":' || {value}")
        params.extend(p)
    inner_sql, inner_params = inner.query.sql_with_params()
    person = 'r."_pid"' if entity.person_column else "NULL"
    sql = (
        f"SELECT '{{' || concat_ws(',', {', '.join(parts) or 'NULL'}) || '}}', {person} "
        f"FROM ({inner_sql}) AS r"
    )
    return sql, [*params, *inner_params]


@dataclass(frozen=True)
class Rows:
    json_rows: list[str]
    person_ids: list[str]


def fetch(sql: str, params: list) -> Rows:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    return Rows([r[0] for r in rows], [r[1] for r in rows if r[1]])


@dataclass(frozen=True)
class Stats:
    total: int
    anchors: tuple[str, ...]  # sourcedId at positions 0, STEP, 2*STEP, ... in C order
    cache_key: str = ""  # where these figures are cached
    # A list ordered by a computed sourcedId (a pseudonym): its runs of STEP stored ids
    # are in PageRun under ``runs_key``, and there are no anchors.
    runs: bool = False

    @property
    def runs_key(self) -> str:
        return hashlib.sha256(self.cache_key.encode()).hexdigest()


def _order_is_computed(release, entity: E.Entity) -> bool:  # type: ignore[no-untyped-def]
    """Whether the release computes the sourcedIds a list is ordered by (pseudonyms)."""
    from apps.governance.release import PSEUDONYMISED_COLUMNS

    return release.pseudonymised and "sourced_id" in PSEUDONYMISED_COLUMNS.get(entity.name, ())


def page_stats(ids_qs: QuerySet, key: str, *, release, entity: E.Entity,  # type: ignore[no-untyped-def]
               version: int) -> Stats:
    """Total and anchors of a filtered release queryset, cached under ``key`` (which holds
    the roster ``version``).

    When the release computes the list's sourcedIds (pseudonyms), the stored ids of each
    run of ANCHOR_STEP records in that order are kept instead of anchors (``PageRun``,
    read by ``positioned``), so that no page computes more than its runs' sourcedIds.
    """
    cached = cache.get(key)
    if cached is not None:
        return Stats(cached[0], tuple(cached[1]), key, len(cached) > 2 and cached[2])
    if _order_is_computed(release, entity):
        stats = _computed_order_stats(ids_qs, key, entity, version)
    else:
        ids_sql, params = ids_qs.values("sourced_id").order_by().query.sql_with_params()
        with connection.cursor() as cursor:
            cursor.execute(STATS_SQL.format(ids=ids_sql, step=ANCHOR_STEP), params)
            rows = cursor.fetchall()
        stats = Stats(int(rows[0][2]) if rows else 0, tuple(r[0] for r in rows), key)
    cache.set(key, (stats.total, list(stats.anchors), stats.runs), STATS_TTL_SECONDS)
    return stats


RUNS_SQL = """
WITH s AS MATERIALIZED (
    SELECT q."_rid" AS r, row_number() OVER (ORDER BY q."sourced_id" COLLATE "C") - 1 AS n
    FROM ({ids}) AS q
), runs AS (
    INSERT INTO oneroster_api_pagerun (key, number, roster_version, sourced_ids, created_at)
    SELECT %s, n / {step}, %s, array_agg(r ORDER BY n), now() FROM s GROUP BY n / {step}
    ON CONFLICT (key, number) DO NOTHING
)
SELECT count(*) FROM s
"""


def _computed_order_stats(ids_qs: QuerySet, key: str, entity: E.Entity,
                          version: int) -> Stats:
    stats = Stats(0, (), key, runs=True)
    ids_sql, params = (
        with_raw_ids(ids_qs, entity).values("sourced_id", "_rid").order_by()
        .query.sql_with_params()
    )
    with connection.cursor() as cursor:
        # an older version's runs serve no new page (the key holds the version)
        cursor.execute("DELETE FROM oneroster_api_pagerun WHERE roster_version < %s "
                       "OR created_at < now() - make_interval(secs => %s)",
                       [version, STATS_TTL_SECONDS])
        cursor.execute(RUNS_SQL.format(ids=ids_sql, step=ANCHOR_STEP),
                       [*params, stats.runs_key, version])
        total = int(cursor.fetchone()[0])
    return Stats(total, (), key, runs=True)


def positioned(qs: QuerySet, stats: Stats, entity: E.Entity, *, offset: int, limit: int,
               descending: bool) -> tuple[QuerySet, int]:
    """Start a page in sourcedId order where it lies: from the runs of a computed order,
    or from the nearest anchor. Returns the narrowed queryset and the offset left to skip."""
    if stats.runs:
        narrowed = _in_runs(qs, stats, entity, offset=offset, limit=limit,
                            descending=descending)
        # runs gone: the whole list this once (its figures are computed again next time)
        return narrowed if narrowed is not None else (qs, offset)
    return anchored(qs, stats, offset=offset, descending=descending)


def _in_runs(qs: QuerySet, stats: Stats, entity: E.Entity, *, offset: int, limit: int,
             descending: bool) -> tuple[QuerySet, int] | None:
    """Narrow a page of a computed order to the stored ids of the runs it falls in: returns
    the narrowed queryset and the offset left to skip within it, or None when the runs are
    gone (then the list's figures are dropped from the cache, to be computed again)."""
    if descending:
        low, high = max(stats.total - offset - limit, 0), stats.total - 1 - offset
    else:
        low, high = offset, min(offset + limit, stats.total) - 1
    first, last = low // ANCHOR_STEP, high // ANCHOR_STEP
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT sourced_ids FROM oneroster_api_pagerun WHERE key = %s "
            "AND number BETWEEN %s AND %s ORDER BY number",
            [stats.runs_key, first, last],
        )
        runs = [row[0] for row in cursor.fetchall()]
    if len(runs) != last - first + 1:
        cache.delete(stats.cache_key)
        return None
    stored = [sid for run in runs for sid in run]
    narrowed = qs.filter(RawSQL(f'"{entity.table}"."sourced_id" = ANY(%s::text[])', (stored,),
                                output_field=BooleanField()))
    if descending:
        top = min((last + 1) * ANCHOR_STEP, stats.total) - 1  # the first record fetched
        return narrowed, top - high
    return narrowed, offset - first * ANCHOR_STEP


def stats_key(*parts: object) -> str:
    """The cache key of a list's statistics; the anchor step is part of it, so anchors
    cached under another step are never read as these."""
    keyed = json.dumps([ANCHOR_STEP, *parts], default=str).encode()
    return "oneroster:stats:" + hashlib.sha256(keyed).hexdigest()


def anchored(qs: QuerySet, stats: Stats, *, offset: int, descending: bool) -> tuple[QuerySet, int]:
    """Start a page in sourcedId order from the nearest cached anchor: returns the narrowed
    queryset and the offset left to skip within it (less than ``ANCHOR_STEP``)."""
    key = Collate(F("sourced_id"), C)
    if not descending:
        idx = offset // ANCHOR_STEP
        if 0 < idx < len(stats.anchors):
            start = GreaterThanOrEqual(key, stats.anchors[idx])
            return qs.filter(start), offset - idx * ANCHOR_STEP
        return qs, offset
    first = stats.total - 1 - offset  # ascending position of the page's first record
    if first < 0:
        return qs, offset
    idx = -(-first // ANCHOR_STEP)
    if idx < len(stats.anchors):
        return qs.filter(LessThanOrEqual(key, stats.anchors[idx])), idx * ANCHOR_STEP - first
    return qs, offset
