"""A small, real world for the release-policy tests: canonical roster rows written straight
into the current state, vendors and integrations, and approvals on record.

Rows are inserted with the ORM in bulk (the import pipeline has its own tests); every row is
current (``valid_to_version`` NULL) unless ``closed=True``.
"""

from __future__ import annotations

import datetime as dt
import itertools
from typing import Any

from django.contrib.auth import get_user_model
from django.utils import timezone

from apps.governance.models import ScopeRequest, ScopeRequestStatus
from apps.roster.models import CANONICAL_MODELS, Source
from apps.vendors.models import Integration, IntegrationKind, Vendor

_names = itertools.count()

ROSTER_CLASSES = ("identifier", "directory")


def source() -> Source:
    return Source.objects.get_or_create(name="sis-test")[0]


def rows(entity: str, *items: dict, closed: bool = False) -> list:
    """Insert canonical rows of ``entity`` (dicts of model field values)."""
    model = CANONICAL_MODELS[entity]
    src = source()
    objs = [
        model(source=src, content_hash=b"t", valid_from_version=1,
              valid_to_version=2 if closed else None, **item)
        for item in items
    ]
    return model.objects.bulk_create(objs)


def org(sourced_id: str, parent: str | None = None, *, type: str = "school",
        closed: bool = False) -> None:
    rows("orgs", {"sourced_id": sourced_id, "name": f"Org {sourced_id}", "type": type,
                  "parent_sourced_id": parent}, closed=closed)


def user(sourced_id: str, *, role: str = "student", org: str | None = None,
         primary_org: str | None = None, agents: list[str] | None = None,
         email: str | None = None, **extra: Any) -> None:
    rows("users", {
        "sourced_id": sourced_id, "enabled_user": True, "username": f"user.{sourced_id}",
        "given_name": f"Given{sourced_id}", "family_name": f"Family{sourced_id}",
        "email": email if email is not None else f"{sourced_id}@pupils.example",
        "identifier": f"ID-{sourced_id}", "agent_sourced_ids": agents,
        "primary_org_sourced_id": primary_org, **extra,
    })
    if org is not None:
        rows("roles", {"sourced_id": f"role-{sourced_id}-{org}", "user_sourced_id": sourced_id,
                       "role_type": "primary", "role": role, "org_sourced_id": org})


def klass(sourced_id: str, school: str, course: str = "course-1") -> None:
    rows("classes", {"sourced_id": sourced_id, "title": f"Class {sourced_id}",
                     "course_sourced_id": course, "class_type": "scheduled",
                     "school_sourced_id": school, "term_sourced_ids": ["term-1"]})


def enrol(user_id: str, class_id: str, school: str, role: str = "student") -> None:
    rows("enrollments", {"sourced_id": f"enr-{user_id}-{class_id}", "class_sourced_id": class_id,
                         "school_sourced_id": school, "user_sourced_id": user_id, "role": role})


def demographic(user_id: str, sex: str = "female") -> None:
    rows("demographics", {"sourced_id": user_id, "sex": sex,
                          "birth_date": dt.date(2012, 5, 1)})


def line_item(sourced_id: str, class_id: str) -> None:
    rows("lineItems", {"sourced_id": sourced_id, "title": f"Task {sourced_id}",
                       "assign_date": dt.date(2025, 1, 1), "due_date": dt.date(2025, 2, 1),
                       "class_sourced_id": class_id, "category_sourced_id": "cat-1",
                       "academic_session_sourced_id": "term-1"})


def result(sourced_id: str, item: str, student: str, class_id: str | None = None) -> None:
    rows("results", {"sourced_id": sourced_id, "line_item_sourced_id": item,
                     "student_sourced_id": student, "score_status": "fully graded",
                     "score": 7, "score_date": dt.date(2025, 1, 20), "class_sourced_id": class_id})


def vendor(name: str | None = None, **kwargs: Any) -> Vendor:
    return Vendor.objects.create(name=name or f"Vendor {next(_names)}", **kwargs)


def integration(vendor_: Vendor | None = None, *, kind: str = IntegrationKind.ONEROSTER_REST,
                pseudonymised: bool = False, status: str = "active",
                name: str | None = None) -> Integration:
    return Integration.objects.create(
        vendor=vendor_ or vendor(), name=name or f"Integration {next(_names)}", kind=kind,
        pseudonymised=pseudonymised, status=status,
    )


def requester():  # type: ignore[no-untyped-def]
    return get_user_model().objects.get_or_create(
        username="engineer.requester", defaults={"is_staff": True}
    )[0]


def approve(
    integration_: Integration, *, orgs: tuple[str, ...] | list[str] = (),
    field_classes: tuple[str, ...] | list[str] = ROSTER_CLASSES,
    fields: tuple[str, ...] | list[str] = (),
    services: tuple[str, ...] = ("oneroster.rostering",),
    scopes: tuple[str, ...] = (
        "https://purl.imsglobal.org/spec/or/v1p2/scope/roster-core.readonly",
    ),
    claims: tuple[str, ...] = (),
    approved_at: dt.datetime | None = None, days: int = 365,
) -> ScopeRequest:
    """An approved, live scope request on record (the workflow has its own tests)."""
    approved_at = approved_at or timezone.now() - dt.timedelta(hours=1)
    return ScopeRequest.objects.create(
        integration=integration_, status=ScopeRequestStatus.APPROVED,
        requested_by=requester(), services=list(services), scopes=list(scopes),
        field_classes=list(field_classes), fields=list(fields), claims=list(claims),
        org_sourced_ids=list(orgs), justification="test", duration_days=days,
        decided_at=approved_at, approved_at=approved_at,
        expires_at=approved_at + dt.timedelta(days=days),
    )


def ids(qs, column: str = "sourced_id") -> set:  # type: ignore[no-untyped-def]
    return {row[column] for row in qs}
