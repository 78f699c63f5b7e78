"""Reads with rules for launches: who a portal user is in the roster, their current classes,
which tools each class may launch, and whether one launch may happen now.

``launch_context`` is the one gate every launch passes, at initiation and again at
``/lti/auth`` (and again when a Deep Linking response comes back): nothing a launch decided
earlier is trusted later, so an exclusion, a disabled account, a pupil who left, a
suspension or a withdrawn approval acts on the very next step.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from django.db import connection
from django.utils import timezone

from apps.governance.release import Release, release_for
from apps.lti.models import Deployment, MessageType, ToolRegistration
from apps.lti.roles import CONTENT_EDITOR_ROLES
from apps.roster.models import Class, Enrollment, Role, User
from apps.vendors.models import IntegrationKind, IntegrationStatus, VendorStatus

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


def org_roles(sourced_id: str) -> list[str]:
    return sorted(set(
        Role.objects.filter(valid_to_version__isnull=True, user_sourced_id=sourced_id)
        .values_list("role", flat=True)
    ))


@dataclass(frozen=True)
class LaunchContext:
    """Everything one allowed launch needs, read afresh."""

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


# One statement for the person side of a launch (it runs twice per launch): the linked,
# current, enabled roster user; the class, only while current; their enrollment roles in it;
# their roles at orgs; and the tool's deployment serving the class's school (the school's
# own, else the tool-wide one). No row: the account may not launch from this class.
LAUNCH_PERSON_SQL = """
SELECT u.sourced_id, u.given_name, u.family_name, u.preferred_given_name,
       u.preferred_family_name, u.email,
       c.sourced_id, c.title, c.class_code, c.school_sourced_id, c.course_sourced_id,
       ARRAY(SELECT DISTINCT e.role FROM roster_enrollment e
             WHERE e.valid_to_version IS NULL AND e.user_sourced_id = u.sourced_id
               AND e.class_sourced_id = c.sourced_id ORDER BY 1),
       ARRAY(SELECT DISTINCT r.role FROM roster_role r
             WHERE r.valid_to_version IS NULL AND r.user_sourced_id = u.sourced_id ORDER BY 1),
       (SELECT ARRAY[d.id::text, d.deployment_id, d.org_sourced_id] FROM lti_deployment d
        WHERE d.registration_id = %s AND d.org_sourced_id IN (c.school_sourced_id, '')
        ORDER BY d.org_sourced_id = '' LIMIT 1)
FROM accounts_rosterlink l
JOIN roster_user u ON u.sourced_id = l.roster_user_sourced_id
 AND u.valid_to_version IS NULL AND u.enabled_user
JOIN roster_class c ON c.sourced_id = %s AND c.valid_to_version IS NULL
WHERE l.user_id = %s
LIMIT 1
"""


@dataclass(frozen=True)
class _LaunchPerson:
    person: dict[str, Any]
    klass: dict[str, Any]
    enrollment_roles: list[str]
    org_roles: list[str]
    deployment: Deployment | None


def _launch_person(user: Any, class_sourced_id: str,
                   registration: ToolRegistration) -> _LaunchPerson | None:
    if not user.is_authenticated or user.is_staff or user.is_superuser:
        return None
    with connection.cursor() as cursor:
        cursor.execute(LAUNCH_PERSON_SQL, [registration.pk, class_sourced_id, user.pk])
        row = cursor.fetchone()
    if row is None or not row[11]:  # not linked, not current, disabled, or not enrolled
        return None
    person = dict(zip(_PERSON_FIELDS[:1] + _PERSON_FIELDS[2:], row[:6], strict=True))
    person["enabled_user"] = True
    klass = dict(zip(_CLASS_FIELDS, row[6:11], strict=True))
    klass["roles"] = list(row[11])
    deployment = None
    if row[13]:
        pk, deployment_id, org = row[13]
        deployment = Deployment(pk=int(pk), registration=registration,
                                deployment_id=deployment_id, org_sourced_id=org)
    return _LaunchPerson(person=person, klass=klass, enrollment_roles=list(row[11]),
                         org_roles=list(row[12]), deployment=deployment)


def _corrected(release: Release, person_id: str, class_id: str, roles: list[str]) -> list[str]:
    """Enrollment roles after the release's role corrections (as ``release.enrollments()``
    applies them), so a launch carries the corrected role too."""
    for rule in release.overrides:
        if (rule.kind == "role_correction" and rule.user_sourced_id == person_id
                and rule.class_sourced_id == class_id and rule.role):
            return [rule.role]
    return roles


def launch_context(
    *, user: Any, registration: ToolRegistration, class_sourced_id: str, message_type: str,
    at: dt.datetime | None = None,
) -> LaunchContext | None:
    """The launch, if ``user`` may launch ``registration`` from the class now; else None.

    None covers every reason (not linked, disabled, left, excluded, not enrolled, tool not
    live or not approved, class out of the approved orgs): callers show one plain message
    that reveals none of them.
    """
    at = at or timezone.now()
    found = _launch_person(user, class_sourced_id, registration)
    if found is None:
        return None
    person, klass, roles_at_orgs = found.person, found.klass, found.org_roles
    enrollment_roles = found.enrollment_roles
    service = SERVICE_LAUNCH
    if message_type == MessageType.DEEP_LINKING:
        service = SERVICE_DEEP_LINKING
        if not CONTENT_EDITOR_ROLES & set(enrollment_roles):
            return None
    if registration.integration.kind != IntegrationKind.LTI_TOOL:
        return None
    release = release_for(registration.integration, at=at)
    if not _allowed(release, person["sourced_id"], klass, service):
        return None
    deployment = found.deployment
    if deployment is None:
        return None
    enrollment_roles = _corrected(release, person["sourced_id"], klass["sourced_id"],
                                  enrollment_roles)
    if service == SERVICE_DEEP_LINKING and not CONTENT_EDITOR_ROLES & set(enrollment_roles):
        return None
    return LaunchContext(
        registration=registration, deployment=deployment, release=release, person=person,
        klass=klass, enrollment_roles=tuple(enrollment_roles), org_roles=tuple(roles_at_orgs),
    )


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
