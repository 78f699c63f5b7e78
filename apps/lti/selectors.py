"""Reads with rules for launches: who a portal user is in the roster, their current classes,
which tools each class may launch, and whether one launch may happen now.

``launch_context`` is the one gate every launch passes, at initiation and again at
``/lti/auth`` (and again when a Deep Linking response comes back): nothing a launch decided
earlier is trusted later, so an exclusion, a disabled account, a pupil who left, a
suspension or a withdrawn approval acts on the very next step. What it reads about the person
and the class comes through the release policy (``apps.governance.release_launch``), so an
excluded or out-of-scope pupil is refused exactly as REST withholds them, and overrides and
pseudonyms reach the launch as they reach every other channel.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from django.db import connection
from django.utils import timezone

from apps.governance import release_cache, release_launch
from apps.governance.release import Release, release_for
from apps.lti.models import Deployment, LtiContext, MessageType, ServiceToken, ToolRegistration
from apps.lti.roles import CONTENT_EDITOR_ROLES
from apps.roster.models import Class, Enrollment, User
from apps.vendors.models import IntegrationKind, IntegrationStatus, VendorStatus
from portal.db import prepared

SERVICE_LAUNCH = "lti.launch"
SERVICE_DEEP_LINKING = "lti.deep_linking"

_PERSON_FIELDS = ("sourced_id", "enabled_user", "given_name", "family_name",
                  "preferred_given_name", "preferred_family_name", "email")
_CLASS_FIELDS = ("sourced_id", "title", "class_code", "school_sourced_id", "course_sourced_id")


def roster_sourced_id(user: Any) -> str | None:
    """The roster person a portal account is linked to (None: not linked, or staff)."""
    if not user.is_authenticated or user.is_staff or user.is_superuser:
        return None
    from apps.accounts.models import RosterLink

    return (
        RosterLink.objects.filter(user_id=user.pk)
        .values_list("roster_user_sourced_id", flat=True).first()
    )


def current_person(sourced_id: str) -> dict[str, Any] | None:
    """The person's current roster row, only while enabled (None: left, tobedeleted or
    disabled; the three look the same from here on)."""
    return (
        User.objects.filter(valid_to_version__isnull=True, sourced_id=sourced_id,
                            enabled_user=True)
        .values(*_PERSON_FIELDS).first()
    )


def current_classes(sourced_id: str) -> list[dict[str, Any]]:
    """The person's current classes with their enrollment roles in each, by title."""
    roles: dict[str, set[str]] = {}
    for class_id, role in (
        Enrollment.objects.filter(valid_to_version__isnull=True, user_sourced_id=sourced_id)
        .values_list("class_sourced_id", "role")
    ):
        roles.setdefault(class_id, set()).add(role)
    if not roles:
        return []
    classes = list(
        Class.objects.filter(valid_to_version__isnull=True, sourced_id__in=sorted(roles))
        .order_by("title", "sourced_id").values(*_CLASS_FIELDS)
    )
    for row in classes:
        row["roles"] = sorted(roles[row["sourced_id"]])
    return classes


def _columns(model: type, alias: str) -> list[str]:
    return [f"{alias}.{f.column}" for f in model._meta.concrete_fields]


def _instance(model: type, values: Any) -> Any:
    """A model instance from raw column values, through the fields' own converters (as the
    ORM would), without compiling a query."""
    fields = model._meta.concrete_fields
    converted = []
    for f, value in zip(fields, values, strict=True):
        for converter in f.get_db_converters(connection):
            value = converter(value, None, connection)
        converted.append(value)
    return model.from_db(connection.alias, [f.attname for f in fields], converted)


def _registration_sql(where: str, *, token: bool = False) -> str:
    from apps.vendors.models import Integration, Vendor

    columns = [*_columns(ToolRegistration, "r"), *_columns(Integration, "i"),
               *_columns(Vendor, "v")]
    source = "lti_toolregistration r"
    if token:
        # with the context the call names, only if it is the token's tool's
        # the release generations first: the release check needs them next (release_cache)
        columns = [release_cache.GENERATIONS_COLUMN_SQL,
                   *_columns(ServiceToken, "t"), *_columns(Deployment, "d"),
                   *_columns(LtiContext, "c"), *_columns(Deployment, "cd"), *columns]
        source = ("lti_servicetoken t JOIN lti_toolregistration r ON r.id = t.registration_id "
                  "LEFT JOIN lti_deployment d ON d.id = t.deployment_id "
                  "LEFT JOIN lti_lticontext c ON c.id = %s "
                  "AND c.registration_id = t.registration_id "
                  "LEFT JOIN lti_deployment cd ON cd.id = c.deployment_id")
    return (
        f"SELECT {', '.join(columns)} FROM {source} "  # noqa: S608 (constant fragments)
        "JOIN vendors_integration i ON i.id = r.integration_id "
        f"JOIN vendors_vendor v ON v.id = i.vendor_id WHERE {where}"
    )


_SQL: dict[str, str] = {}


def _registration_from(row: Any) -> ToolRegistration:
    from apps.vendors.models import Integration, Vendor

    n_reg = len(ToolRegistration._meta.concrete_fields)
    n_int = len(Integration._meta.concrete_fields)
    registration = _instance(ToolRegistration, row[:n_reg])
    integration = _instance(Integration, row[n_reg:n_reg + n_int])
    integration.vendor = _instance(Vendor, row[n_reg + n_int:])
    registration.integration = integration
    return registration


def registration_by_client_id(client_id: str) -> ToolRegistration | None:
    """The registration with its integration and vendor, in one statement (no ORM query
    to compile: it runs on both requests of every launch)."""
    if not client_id:
        return None
    if "client_id" not in _SQL:
        _SQL["client_id"] = _registration_sql("r.client_id = %s")
    with connection.cursor() as cursor:
        prepared.execute(cursor, prepared.statement(_SQL["client_id"]), [client_id])
        row = cursor.fetchone()
    return None if row is None else _registration_from(row)


def service_token_by_hash(
    token_hash: str, *, now: dt.datetime, context_id: Any = None
) -> tuple[Any, LtiContext | None, release_cache.Generations | None] | None:
    """The unexpired, unrevoked service token with its deployment, registration,
    integration and vendor, the context ``context_id`` if it belongs to the token's tool
    (with its deployment), and the release generations, in one statement: it runs on every
    service call."""
    if "token" not in _SQL:
        _SQL["token"] = _registration_sql(
            "t.token_hash = %s AND t.expires_at > %s AND t.revoked_at IS NULL", token=True)
    with connection.cursor() as cursor:
        prepared.execute(cursor, prepared.statement(_SQL["token"]),
                         [context_id, token_hash, now])
        row = cursor.fetchone()
    if row is None:
        return None
    generations, row = release_cache.generations_of(row[0]), row[1:]
    sizes = [len(model._meta.concrete_fields)
             for model in (ServiceToken, Deployment, LtiContext, Deployment)]
    bounds = [sum(sizes[:i]) for i in range(len(sizes) + 1)]
    token_row, deployment_row, context_row, context_deployment_row = (
        row[bounds[i]:bounds[i + 1]] for i in range(len(sizes)))
    token = _instance(ServiceToken, token_row)
    registration = _registration_from(row[bounds[-1]:])
    token.registration = registration
    if token.deployment_id is not None:
        token.deployment = _instance(Deployment, deployment_row)
        token.deployment.registration = registration
    context = None
    if context_row[0] is not None:
        context = _instance(LtiContext, context_row)
        context.deployment = _instance(Deployment, context_deployment_row)
    return token, context, generations


def lti_context_of(context_id: Any, registration_id: int) -> LtiContext | None:
    """The context with its deployment if it belongs to the registration (one raw read:
    it runs on every service call)."""
    if "context" not in _SQL:
        _SQL["context"] = (
            f"SELECT {', '.join([*_columns(LtiContext, 'c'), *_columns(Deployment, 'd')])} "  # noqa: S608
            "FROM lti_lticontext c JOIN lti_deployment d ON d.id = c.deployment_id "
            "WHERE c.id = %s AND c.registration_id = %s"
        )
    with connection.cursor() as cursor:
        cursor.execute(_SQL["context"], [context_id, registration_id])
        row = cursor.fetchone()
    if row is None:
        return None
    n_context = len(LtiContext._meta.concrete_fields)
    context = _instance(LtiContext, row[:n_context])
    context.deployment = _instance(Deployment, row[n_context:])
    return context


def live_tools() -> list[ToolRegistration]:
    """Registrations of active LTI integrations of active vendors (approval checked later)."""
    return list(
        ToolRegistration.objects.select_related("integration__vendor")
        .filter(integration__kind=IntegrationKind.LTI_TOOL,
                integration__status=IntegrationStatus.ACTIVE,
                integration__vendor__status=VendorStatus.ACTIVE)
        .order_by("integration__name")
    )


def deployment_for(registration: ToolRegistration, school_sourced_id: str) -> Deployment | None:
    """The deployment serving a class's school: the school's own, else the tool-wide one."""
    rows = {d.org_sourced_id: d for d in registration.deployments.all()}
    return rows.get(school_sourced_id) or rows.get("")


@dataclass(frozen=True)
class LaunchContext:
    """Everything one allowed launch needs, read afresh. ``person`` and ``klass`` are the
    rows the release shows (``release_launch``): ``person["sourced_id"]`` is the school's id
    (for the ledger and the hub's own checks), ``person["released_sourced_id"]`` the id the
    vendor sees in every channel."""

    registration: ToolRegistration
    deployment: Deployment
    release: Release
    person: dict[str, Any]
    klass: dict[str, Any]
    enrollment_roles: tuple[str, ...]
    org_roles: tuple[str, ...] = field(default=())


def _allowed(release: Release, person_id: str, klass: dict[str, Any], service: str) -> bool:
    return (
        release.live
        and release.allows_service(SERVICE_LAUNCH)
        and release.allows_service(service)
        and klass["school_sourced_id"] in release.org_sourced_ids
        and person_id not in release.excluded_user_sourced_ids
    )


def _may_launch_account(user: Any) -> bool:
    return bool(user.is_authenticated and not user.is_staff and not user.is_superuser)


# The roster person of the signed-in account, as a fragment the launch statements embed.
ACCOUNT_PERSON_SQL = (
    "(SELECT l.roster_user_sourced_id FROM accounts_rosterlink l WHERE l.user_id = %s)"
)
# The tool's deployment serving the launched class's school (the school's own, else the
# tool-wide one), from the released class row ``rows.klass``.
DEPLOYMENT_SQL = """(SELECT ARRAY[d.id::text, d.deployment_id, d.org_sourced_id]
 FROM lti_deployment d
 WHERE d.registration_id = %s AND d.org_sourced_id IN (rows.klass->>'school_sourced_id', '')
 ORDER BY d.org_sourced_id = '' LIMIT 1)"""

# One statement for a launch's person side: the account's roster id, the released person,
# class and roles (``release_launch``), and the deployment.
LAUNCH_SQL = (
    f"SELECT {ACCOUNT_PERSON_SQL}, rows.person, rows.klass, rows.enrollment_roles, "  # noqa: S608
    f"rows.org_roles, {DEPLOYMENT_SQL} FROM ({{rows}}) rows"
)


def launch_statement(release: Release, *, user: Any, registration: ToolRegistration,
                     class_sql: str = "%s", class_sourced_id: str | None = None
                     ) -> tuple[str, list[Any]]:
    """The SQL and parameters of ``LAUNCH_SQL`` for ``release``: six columns (roster id,
    person, class, enrollment roles, org roles, deployment). ``class_sql`` may name the
    class by a fragment of an embedding statement instead of a value."""
    compiled = release_launch.launch_rows_sql(
        release, person_sql=ACCOUNT_PERSON_SQL, person_slots=("user",), class_sql=class_sql,
        class_slots=("class",) if class_sql == "%s" else ())
    sql = LAUNCH_SQL.format(rows=compiled.sql)
    params = [user.pk, registration.pk,
              *compiled.bind(user=user.pk, **{"class": class_sourced_id})]
    return sql, params


def launch_context_from(
    row: Any, *, registration: ToolRegistration, release: Release, message_type: str,
) -> LaunchContext | None:
    """The launch one result row of a launch statement allows (None: refused, for any
    reason: not linked, left, disabled, excluded, out of scope, not enrolled, tool not live
    or not approved, no deployment for the school)."""
    person_id, person, klass, enrollment_roles, org_roles_, deployment_row = row
    rows = release_launch.launch_rows_from((person, klass, enrollment_roles, org_roles_))
    if person_id is None or rows is None or not rows.person.get("enabled_user"):
        return None
    service = (SERVICE_DEEP_LINKING if message_type == MessageType.DEEP_LINKING
               else SERVICE_LAUNCH)
    if not rows.enrollment_roles or not _allowed(release, person_id, rows.klass, service):
        return None
    if service == SERVICE_DEEP_LINKING and not CONTENT_EDITOR_ROLES & set(rows.enrollment_roles):
        return None
    if not deployment_row:
        return None
    pk, deployment_id, org = deployment_row
    deployment = Deployment(pk=int(pk), registration=registration, deployment_id=deployment_id,
                            org_sourced_id=org)
    released = rows.person
    person_row = {**released, "sourced_id": person_id,
                  "released_sourced_id": released["sourced_id"]}
    klass_row = {**rows.klass, "roles": list(rows.enrollment_roles)}
    return LaunchContext(
        registration=registration, deployment=deployment, release=release, person=person_row,
        klass=klass_row, enrollment_roles=rows.enrollment_roles, org_roles=rows.org_roles,
    )


def launch_release(user: Any, registration: ToolRegistration,
                   at: dt.datetime | None = None) -> Release | None:
    """The release a launch of ``registration`` by ``user`` reads, or None when no launch
    can happen at all (staff account, not an LTI tool, tool not live)."""
    if not _may_launch_account(user):
        return None
    if registration.integration.kind != IntegrationKind.LTI_TOOL:
        return None
    release = release_for(registration.integration, at=at or timezone.now())
    if not release.live or not release.allows_service(SERVICE_LAUNCH):
        return None
    return release


def launch_context(
    *, user: Any, registration: ToolRegistration, class_sourced_id: str, message_type: str,
    at: dt.datetime | None = None,
) -> LaunchContext | None:
    """The launch, if ``user`` may launch ``registration`` from the class now; else None.

    None covers every reason (not linked, disabled, left, excluded, not enrolled, tool not
    live or not approved, class out of the approved orgs): callers show one plain message
    that reveals none of them. One statement after the release.
    """
    release = launch_release(user, registration, at)
    if release is None:
        return None
    sql, params = launch_statement(release, user=user, registration=registration,
                                   class_sourced_id=class_sourced_id)
    with connection.cursor() as cursor:
        prepared.execute(cursor, prepared.statement(sql), params)
        row = cursor.fetchone()
    return launch_context_from(row, registration=registration, release=release,
                               message_type=message_type)


@dataclass(frozen=True)
class ClassTools:
    klass: dict[str, Any]
    tools: list[dict[str, Any]]  # {"registration", "links", "can_deep_link"}


def launch_page(user: Any) -> list[ClassTools] | None:
    """The launch page's content: each current class and the tools approved for it (None:
    the account may not launch anything, for a reason the page does not reveal)."""
    from apps.lti.models import ResourceLink, ResourceLinkOrigin

    person_id = roster_sourced_id(user)
    if person_id is None or current_person(person_id) is None:
        return None
    classes = current_classes(person_id)
    if not classes:
        return []
    tools = live_tools()
    releases = {tool.pk: release_for(tool.integration) for tool in tools}
    links: dict[tuple[int, str], list[ResourceLink]] = {}
    for link in ResourceLink.objects.filter(
        class_sourced_id__in=[c["sourced_id"] for c in classes],
        registration__in=[t.pk for t in tools], origin=ResourceLinkOrigin.DEEP_LINK,
    ).order_by("created_at"):
        links.setdefault((link.registration_id, link.class_sourced_id), []).append(link)
    out = []
    for klass in classes:
        entries = []
        for tool in tools:
            release = releases[tool.pk]
            if not _allowed(release, person_id, klass, SERVICE_LAUNCH):
                continue
            if deployment_for(tool, klass["school_sourced_id"]) is None:
                continue
            entries.append({
                "registration": tool,
                "links": links.get((tool.pk, klass["sourced_id"]), []),
                "can_deep_link": bool(CONTENT_EDITOR_ROLES & set(klass["roles"]))
                and release.allows_service(SERVICE_DEEP_LINKING),
            })
        out.append(ClassTools(klass=klass, tools=entries))
    return out
