"""Names and Roles Provisioning Service: the members of a launch's class, as the release
policy lets this tool see them.

One query per page, composed from the release's own querysets (DESIGN: release compiles to
SQL): the released users (exclusions, org scope, overrides and the approved columns already
applied), kept when a released enrollment puts them in the class, with their released roles
in it as an array. Joins run on the school's identifiers, which are indexed; the member id
is computed in the SELECT list with the vendor's pseudonymiser, the same value a launch
sends as ``sub`` (``claims.subject``), so the tool can join what it learns from both.

Attributes beyond ``user_id`` and ``roles`` (the specification's minimum) need both the LTI
claim approval (as in a launch) and the column in the release's projection.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from django.db import connection

from apps.governance import release_launch
from apps.governance.pseudonyms import IDENTITY, pseudonymiser_for_vendor
from apps.governance.release import Release
from apps.lti import claims as claims_
from apps.lti.roles import ENROLLMENT_ROLES, MEMBERSHIP, lis_roles
from portal.db import prepared

MEDIA_TYPE = "application/vnd.ims.lti-nrps.v2.membershipcontainer+json"
DEFAULT_LIMIT = 100
MAX_LIMIT = 1000

# role filter (any case: a client may lowercase the next-page URL) -> enrollment roles
_ROLE_FILTER: dict[str, tuple[str, ...]] = {}
for _role, _uris in ENROLLMENT_ROLES.items():
    for _uri in _uris:
        _ROLE_FILTER.setdefault(_uri.lower(), ())
        _ROLE_FILTER[_uri.lower()] += (_role,)
        _short = _uri[len(MEMBERSHIP):].lower()
        _ROLE_FILTER.setdefault(_short, ())
        _ROLE_FILTER[_short] += (_role,)


def enrollment_roles_for(role: str) -> tuple[str, ...]:
    """The enrollment roles a ``role`` filter means (empty: a role no one here has)."""
    return _ROLE_FILTER.get(role.strip().lower(), ())


@dataclass(frozen=True)
class MembersPage:
    context: dict[str, Any] | None  # None: the class is not released to this tool
    members: list[dict[str, Any]]
    user_sourced_ids: list[str]  # the school's ids of the members shown (for the ledger)
    field_classes: list[str]
    has_more: bool


def member_pseudonymiser(release: Release):  # type: ignore[no-untyped-def]
    # As claims.subject: the vendor's pseudonym even when the integration is not
    # pseudonymised, so user_id always equals the launch's sub.
    return release.pseudonymiser if release.pseudonymised else pseudonymiser_for_vendor(
        release.vendor_id
    )


def _personal(release: Release) -> dict[str, tuple[str, ...]]:
    """Member attributes this release may carry -> the user columns they are read from."""
    columns = set(release.columns("users"))
    wanted = {
        "given_name": ("given_name", "preferred_given_name"),
        "family_name": ("family_name", "preferred_family_name"),
        "name": ("given_name", "family_name", "preferred_given_name", "preferred_family_name"),
        "email": ("email",),
    }
    out = {}
    for claim, sources in wanted.items():
        if claim not in release.claims:
            continue
        base = sources[:2] if claim == "name" else sources[:1]
        if all(column in columns for column in base):
            out[claim] = tuple(c for c in sources if c in columns)
    return out


def _disclosed(release: Release, carried: set[str]) -> list[str]:
    """Identifiers, the classes of the personal attributes carried, and the class of the
    enrollment role (each member's roles are read from it)."""
    classes = set(claims_.disclosed_field_classes(dict.fromkeys(carried, True),
                                                  column_classes=release.column_classes))
    role_class = release.column_classes.get("enrollments", {}).get("role")
    if role_class:
        classes.add(role_class)
    return sorted(classes)


def class_context(release: Release, class_sourced_id: str) -> dict[str, Any] | None:
    row = release.classes().filter(sourced_id=class_sourced_id).values(
        "sourced_id", "title", "class_code").first()
    if row is None:
        return None
    return {"id": row["sourced_id"], "label": row.get("class_code") or row["title"],
            "title": row["title"]}


# The members of a class: the released users joined to their released enrollments in the
# class, aggregated per person (each enrollment set read once, not once per member); with a
# role filter, only people holding one of its roles there (all their roles still listed).
MEMBERS_SQL = """
SELECT u.*, e.member_roles
FROM ({users}) u
JOIN (
    SELECT e0.user_sourced_id, array_agg(e0.role) AS member_roles
    FROM ({enrolled}) e0 (user_sourced_id, role)
    GROUP BY e0.user_sourced_id
    {having}
) e ON e.user_sourced_id = u.sourced_id
ORDER BY u.sourced_id
"""


def members_statement(release: Release, class_sourced_id: str, *,
                      roles: tuple[str, ...] | None = None) -> tuple[str, list[Any]]:
    """The members of a class as released to ``release``'s tool, as one statement (``roles``:
    the enrollment roles an NRPS role filter means). Composed from the release's own
    querysets, so exclusions, org scope, role corrections and projection apply as in REST."""
    # The same release without pseudonyms in its values: joins on the school's ids (indexed),
    # pseudonyms computed once per member in the SELECT list.
    raw = dataclasses.replace(release, pseudonymiser=IDENTITY)
    personal = _personal(release)
    columns = sorted({c for sources in personal.values() for c in sources})
    annotations: dict[str, Any] = {"member_id": member_pseudonymiser(release).sql("sourced_id")}
    if "sourced_id" in release.columns("users"):
        annotations["lis_person_sourcedid"] = release.pseudonymiser.sql("sourced_id")
    users_sql, users_params = release_launch.compiled(
        raw.users().annotate(**annotations).values("sourced_id", *columns, *annotations)
        .order_by())
    enrolled_sql, enrolled_params = release_launch.compiled(
        raw.enrollments().filter(class_sourced_id=class_sourced_id)
        .values("user_sourced_id", "role").order_by())
    having, having_params = "", []
    if roles is not None:
        having, having_params = "HAVING bool_or(e0.role = ANY(%s::text[]))", [list(roles)]
    sql = MEMBERS_SQL.format(users=users_sql, enrolled=enrolled_sql, having=having)
    return sql, [*users_params, *enrolled_params, *having_params]


# A page in one statement: the class as released (no row: not released to this tool) and,
# beside it, a page of its members (NULLs: no members on this page).
PAGE_SQL = """
SELECT c.sourced_id, c.title, c.class_code, m.*
FROM ({context}) c
LEFT JOIN LATERAL ({members} LIMIT %s OFFSET %s) m ON true
"""
_CLASS = "\x00nrps:class\x00"
_LIMIT = "\x00nrps:limit\x00"
_OFFSET = "\x00nrps:offset\x00"


def _page_statement(release: Release, roles: tuple[str, ...] | None) -> tuple[str, list[Any]]:
    context_sql, context_params = release_launch.compiled(
        release.classes().filter(sourced_id=_CLASS).values("sourced_id", "title", "class_code"))
    members_sql, members_params = members_statement(release, _CLASS, roles=roles)
    return (PAGE_SQL.format(context=context_sql, members=members_sql),
            [*context_params, *members_params, _LIMIT, _OFFSET])


def memberships(release: Release, class_sourced_id: str, *, role: str | None = None,
                limit: int = DEFAULT_LIMIT, offset: int = 0) -> MembersPage:
    """A page of a class's members (``limit`` rows from ``offset``) and its context, in one
    statement compiled once per release content and role filter (``release_launch``): a
    page costs its SQL, not the building of the release's querysets."""
    empty = MembersPage(context=None, members=[], user_sourced_ids=[], field_classes=[],
                        has_more=False)
    if not release.live:
        return empty
    roles = enrollment_roles_for(role) if role is not None else None
    if roles == ():  # a role no one here has: the context, and nobody in it
        context = class_context(release, class_sourced_id)
        return empty if context is None else dataclasses.replace(
            empty, context=context, field_classes=_disclosed(release, set()))
    member_ids = member_pseudonymiser(release)
    bound = release_launch.compiled_for(
        release, ("nrps.page", roles, member_ids._ipad), lambda: _page_statement(release, roles),
        {_CLASS: ("%s", ("class",)), _LIMIT: ("%s", ("limit",)), _OFFSET: ("%s", ("offset",))})
    with connection.cursor() as cursor:
        prepared.execute(cursor, prepared.statement(bound.sql), bound.bind(
            limit=limit + 1, offset=offset, **{"class": class_sourced_id}))
        names = [column.name for column in cursor.description][3:]
        found = cursor.fetchall()
    if not found:
        return empty
    first = found[0]
    context = {"id": first[0], "label": first[2] or first[1], "title": first[1]}
    rows = [dict(zip(names, row[3:], strict=True)) for row in found]
    rows = [row for row in rows if row["member_id"] is not None]
    return _page(release, context, rows, limit=limit)


def _page(release: Release, context: dict[str, Any], rows: list[dict[str, Any]], *,
          limit: int) -> MembersPage:
    personal = _personal(release)
    has_more = len(rows) > limit
    rows = rows[:limit]
    members, carried = [], set()
    for row in rows:
        member: dict[str, Any] = {
            "status": "Active",
            "user_id": row["member_id"],
            "roles": lis_roles(enrollment_roles=row["member_roles"] or (), org_roles=()),
        }
        given = row.get("preferred_given_name") or row.get("given_name")
        family = row.get("preferred_family_name") or row.get("family_name")
        values = {"given_name": given, "family_name": family,
                  "name": " ".join(p for p in (given, family) if p) or None,
                  "email": row.get("email")}
        for claim in personal:
            if values[claim]:
                member[claim] = values[claim]
                carried.add(claim)
        if "lis_person_sourcedid" in row:
            member["lis_person_sourcedid"] = row["lis_person_sourcedid"]
        members.append(member)
    return MembersPage(
        context=context, members=members,
        user_sourced_ids=[row["sourced_id"] for row in rows],
        field_classes=_disclosed(release, carried),
        has_more=has_more,
    )
