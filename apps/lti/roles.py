"""Roster roles as LIS role URIs (LTI 1.3 core, appendix A).

Context roles come from the person's enrollment in the launched class; institution roles from
their roles at orgs. Roles we cannot map are left out rather than guessed: a tool must never
see more authority than the roster gives.
"""

from __future__ import annotations

from collections.abc import Iterable

MEMBERSHIP = "http://purl.imsglobal.org/vocab/lis/v2/membership#"
INSTITUTION = "http://purl.imsglobal.org/vocab/lis/v2/institution/person#"

# enrollments.role -> context (membership) roles
ENROLLMENT_ROLES: dict[str, tuple[str, ...]] = {
    "student": (MEMBERSHIP + "Learner",),
    "teacher": (MEMBERSHIP + "Instructor",),
    "administrator": (MEMBERSHIP + "Administrator",),
    "proctor": (MEMBERSHIP + "Mentor",),
}

# roles.role (and 1.1 users.role) -> institution roles
INSTITUTION_ROLES: dict[str, tuple[str, ...]] = {
    "student": (INSTITUTION + "Student",),
    "teacher": (INSTITUTION + "Instructor",),
    "aide": (INSTITUTION + "Staff",),
    "counselor": (INSTITUTION + "Staff",),
    "proctor": (INSTITUTION + "Staff",),
    "principal": (INSTITUTION + "Administrator",),
    "siteAdministrator": (INSTITUTION + "Administrator",),
    "districtAdministrator": (INSTITUTION + "Administrator",),
    "systemAdministrator": (INSTITUTION + "Administrator",),
    "guardian": (INSTITUTION + "Mentor",),
    "parent": (INSTITUTION + "Mentor",),
    "relative": (INSTITUTION + "Mentor",),
}

# Enrollment roles that may add content to a class through Deep Linking.
CONTENT_EDITOR_ROLES = frozenset({"teacher", "administrator"})


def lis_roles(*, enrollment_roles: Iterable[str], org_roles: Iterable[str]) -> list[str]:
    """Context roles first, then institution roles; each URI once, in a stable order."""
    out: list[str] = []
    for source, table in ((enrollment_roles, ENROLLMENT_ROLES), (org_roles, INSTITUTION_ROLES)):
        for role in sorted(set(source)):
            for uri in table.get(role, ()):
                if uri not in out:
                    out.append(uri)
    return out
