"""Properties of the release policy over random worlds (hypothesis, modest examples).

For any org forest, roster, approval, set of exclusions and overrides, and pseudonymisation:

* the released users are exactly the in-scope, not-excluded ones;
* no released row refers to anyone else (enrollments, roles, user profiles, demographics,
  results, guardians' agent links), and no org outside the scope is released;
* no row carries a column that was not approved;
* an exclusion withholds up to the last instant before its end and not at its end.

The expected answers are computed here, in plain Python, from the generated world.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import pytest
from django.db import transaction
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from apps.governance.classification import classification_map
from apps.governance.models import Exclusion, ExclusionReason, ExclusionScope, Override
from apps.governance.release import release_for
from tests.governance import release_world as world

pytestmark = pytest.mark.django_db

PROPERTY_SETTINGS = settings(
    max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
CLASSES = ("identifier", "directory", "contact", "demographic", "special_category",
           "assessment", "credential")
SINGLE_FIELDS = ("users.email", "users.pronouns", "demographics.sex", "results.score",
                 "users.agent_sourced_ids", "enrollments.role")
# Where an exclusion may point: everyone, this integration's vendor, this integration, a
# sibling integration of the same vendor, or another vendor altogether.
TARGETS = ("all", "vendor", "integration", "sibling", "other_vendor")
MAX_ORGS, MAX_USERS, MAX_CLASSES = 6, 7, 3
ENTITY_PERSON_REFS = {
    "enrollments": "user_sourced_id",
    "roles": "user_sourced_id",
    "userProfiles": "user_sourced_id",
    "demographics": "sourced_id",
    "results": "student_sourced_id",
}


@dataclass
class World:
    parents: list[int | None]
    closed_org: int | None
    roles: list[list[int]]
    primary: list[int | None]
    agents: list[list[int]]
    classes: list[int]
    enrollments: list[tuple[int, int]]
    demographics: list[int]
    results: list[tuple[int, int]]
    chosen: list[int]
    field_classes: list[str]
    fields: list[str]
    exclusions: list[tuple[int, str, int, int, int | None]]  # user (-1 ghost), target, hours
    overrides: list[tuple[str, int, int]]
    pseudonymised: bool


@st.composite
def worlds(draw) -> World:  # type: ignore[no-untyped-def]
    n_orgs = draw(st.integers(1, MAX_ORGS))
    parents = [None] + [draw(st.one_of(st.none(), st.integers(0, i - 1)))
                        for i in range(1, n_orgs)]
    n_users = draw(st.integers(1, MAX_USERS))
    org = st.integers(0, n_orgs - 1)
    user = st.integers(0, n_users - 1)
    n_classes = draw(st.integers(1, MAX_CLASSES))
    klass = st.integers(0, n_classes - 1)
    return World(
        parents=parents,
        closed_org=draw(st.one_of(st.none(), org)),
        roles=[draw(st.lists(org, max_size=2, unique=True)) for _ in range(n_users)],
        primary=[draw(st.one_of(st.none(), org)) for _ in range(n_users)],
        agents=[draw(st.lists(user, max_size=2, unique=True)) for _ in range(n_users)],
        classes=[draw(org) for _ in range(n_classes)],
        enrollments=draw(st.lists(st.tuples(user, klass), max_size=8, unique=True)),
        demographics=draw(st.lists(user, max_size=4, unique=True)),
        results=draw(st.lists(st.tuples(user, klass), max_size=6, unique=True)),
        chosen=draw(st.lists(org, max_size=2, unique=True)),
        field_classes=draw(st.lists(st.sampled_from(CLASSES), max_size=4, unique=True)),
        fields=draw(st.lists(st.sampled_from(SINGLE_FIELDS), max_size=2, unique=True)),
        exclusions=draw(st.lists(
            st.tuples(st.integers(-1, n_users - 1), st.sampled_from(TARGETS),
                      st.integers(-72, 0), st.integers(1, 120),
                      st.one_of(st.none(), st.integers(-48, 48))),
            max_size=4,
        )),
        overrides=draw(st.lists(
            st.tuples(st.sampled_from(["preferred_name", "role_correction", "hide_directory"]),
                      user, klass),
            max_size=2,
        )),
        pseudonymised=draw(st.booleans()),
    )


def _org_id(i: int) -> str:
    return f"o{i}"


def _user_id(i: int) -> str:
    return f"u{i}" if i >= 0 else "ghost-not-imported"


def _build(w: World, officer, now: dt.datetime):  # type: ignore[no-untyped-def]
    for i, parent in enumerate(w.parents):
        world.org(_org_id(i), None if parent is None else _org_id(parent),
                  closed=i == w.closed_org)
    for i in range(len(w.roles)):
        world.user(_user_id(i), org=None, primary_org=(
            None if w.primary[i] is None else _org_id(w.primary[i])),
            agents=[_user_id(a) for a in w.agents[i] if a != i] or None)
        for o in w.roles[i]:
            world.rows("roles", {"sourced_id": f"r-{i}-{o}", "user_sourced_id": _user_id(i),
                                 "role_type": "primary", "role": "student",
                                 "org_sourced_id": _org_id(o)})
        world.rows("userProfiles", {"sourced_id": f"prof-{i}", "user_sourced_id": _user_id(i),
                                    "profile_type": "lms", "vendor_id": "v",
                                    "credential_type": "pw", "username": f"lms{i}"})
    for c, o in enumerate(w.classes):
        world.klass(f"c{c}", _org_id(o))
        world.line_item(f"li{c}", f"c{c}")
    for u, c in w.enrollments:
        world.enrol(_user_id(u), f"c{c}", _org_id(w.classes[c]))
    for u in w.demographics:
        world.demographic(_user_id(u))
    for u, c in w.results:
        world.result(f"res-{u}-{c}", f"li{c}", _user_id(u), f"c{c}")

    vendor, other_vendor = world.vendor(), world.vendor()
    integration = world.integration(vendor, pseudonymised=w.pseudonymised)
    sibling = world.integration(vendor)
    world.approve(integration, orgs=[_org_id(o) for o in w.chosen],
                  field_classes=w.field_classes, fields=w.fields,
                  approved_at=now - dt.timedelta(days=10))
    targets = {
        "all": {"scope": ExclusionScope.ALL_VENDORS},
        "vendor": {"scope": ExclusionScope.VENDOR, "vendor": vendor},
        "integration": {"scope": ExclusionScope.INTEGRATION, "integration": integration},
        "sibling": {"scope": ExclusionScope.INTEGRATION, "integration": sibling},
        "other_vendor": {"scope": ExclusionScope.VENDOR, "vendor": other_vendor},
    }
    exclusions = []
    for u, target, start_h, length_h, lifted_h in w.exclusions:
        starts = now + dt.timedelta(hours=start_h)
        exclusions.append(Exclusion.objects.create(
            user_sourced_id=_user_id(u), reason_code=ExclusionReason.OTHER, created_by=officer,
            starts_at=starts, ends_at=starts + dt.timedelta(hours=length_h),
            lifted_at=None if lifted_h is None else now + dt.timedelta(hours=lifted_h),
            lift_reason="" if lifted_h is None else "lifted", **targets[target],
        ))
    for kind, u, c in w.overrides:
        Override.objects.create(
            kind=kind, user_sourced_id=_user_id(u), class_sourced_id=f"c{c}", role="aide",
            given_name="Safe", family_name="Name", reason="r", owner=officer, created_by=officer,
            starts_at=now - dt.timedelta(hours=1), ends_at=now + dt.timedelta(days=3),
        )
    return integration, exclusions


def _scope(w: World) -> set[str]:
    current = {i for i in range(len(w.parents)) if i != w.closed_org}
    scope = {o for o in w.chosen if o in current}
    changed = True
    while changed:
        children = {i for i in current if w.parents[i] in scope} - scope
        changed = bool(children)
        scope |= children
    return {_org_id(o) for o in scope}


def _applies(w: World, e: tuple, exclusion: Exclusion, at: dt.datetime) -> bool:
    _u, target, *_ = e
    active = exclusion.starts_at <= at < exclusion.ends_at and (
        exclusion.lifted_at is None or exclusion.lifted_at > at)
    return active and target in ("all", "vendor", "integration")


def _expected_visible(w: World, exclusions, at: dt.datetime) -> set[str]:  # type: ignore[no-untyped-def]
    scope = _scope(w)
    in_scope = {
        _user_id(i) for i in range(len(w.roles))
        if any(_org_id(o) in scope for o in w.roles[i])
        or (w.primary[i] is not None and _org_id(w.primary[i]) in scope)
    }
    excluded = {
        ex.user_sourced_id for e, ex in zip(w.exclusions, exclusions, strict=True)
        if _applies(w, e, ex, at)
    }
    return in_scope - excluded


def _allowed_columns(w: World, classification: dict[str, str], entity: str) -> set[str]:
    return {
        key.split(".", 1)[1] for key, cls in classification.items()
        if key.startswith(f"{entity}.")
        and (cls in w.field_classes or cls == "identifier" or key in w.fields)
    }


def _check(w: World, integration, exclusions, at: dt.datetime) -> None:  # type: ignore[no-untyped-def]
    release = release_for(integration, at=at)
    vendor_id = release.pseudonymiser.pseudonym
    visible = {vendor_id(u) for u in _expected_visible(w, exclusions, at)}
    classification = classification_map()

    released_users = {row["sourced_id"] for row in release.users()}
    if release.columns("users"):
        assert released_users == visible
    else:
        assert released_users == set()

    for entity, ref in ENTITY_PERSON_REFS.items():
        for row in release.queryset(entity):
            assert row[ref] in visible, (entity, row)
    if "agent_sourced_ids" in release.columns("users"):
        for row in release.users():
            assert set(row["agent_sourced_ids"] or ()) <= visible
    scope = _scope(w)
    assert {row["sourced_id"] for row in release.orgs()} <= scope
    assert {row["school_sourced_id"] for row in release.classes()} <= scope

    for entity in release.projection:
        allowed = _allowed_columns(w, classification, entity)
        assert set(release.columns(entity)) <= allowed, entity
        for row in release.queryset(entity)[:3]:
            assert tuple(row) == release.columns(entity)


@PROPERTY_SETTINGS
@given(w=worlds())
def test_release_shows_exactly_the_visible_and_nothing_that_refers_to_anyone_else(
    w, master_key, officer
):
    now = timezone.now()
    with transaction.atomic():
        integration, exclusions = _build(w, officer, now)

        _check(w, integration, exclusions, now)
        for exclusion in exclusions:  # the edges of each exclusion's life
            for at in (exclusion.ends_at - dt.timedelta(microseconds=1), exclusion.ends_at,
                       exclusion.starts_at):
                _check(w, integration, exclusions, at)
        transaction.set_rollback(True)
