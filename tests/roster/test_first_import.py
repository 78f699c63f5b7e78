"""A first import's work beside the index builds that use one core (first_import.py):
the gates' baseline counted from the staged files (see test_gate_baseline.py) and the
primary-role check, left until after the writes. A conflict it finds there still rejects
the import with the conflict named on its line and nothing applied, and every other
problem of the feed is reported with it, as when the check runs in its usual place.

Real imports on committed staging (transactional tests), every file staged where a
second connection can read it.
"""

from __future__ import annotations

import pytest
from django.db import OperationalError, connection

from apps.roster.ingest import errors as codes
from apps.roster.ingest import validate_sql
from apps.roster.ingest.first_import import BesideIndexBuilds
from apps.roster.models import CANONICAL_MODELS, ImportState, RosterVersion
from tests.roster.builders import small_district

pytestmark = [pytest.mark.django_db(transaction=True),
              pytest.mark.usefixtures("every_file_readable_beside")]


@pytest.fixture
def found_beside(monkeypatch):  # type: ignore[no-untyped-def]
    """What the work beside found, each time it ran."""
    results: list = []
    real = BesideIndexBuilds.__call__

    def spy(self):  # type: ignore[no-untyped-def]
        results.append(real(self))
        return results[-1]

    monkeypatch.setattr(BesideIndexBuilds, "__call__", spy)
    return results


def one_process_gin() -> bool:
    """PostgreSQL builds the users' GIN index on one process before version 18: only then
    is there a stretch for the work beside (later versions check in the usual place)."""
    return connection.pg_version < 180000


def with_a_second_primary_role(feed: dict, prefix: str = "") -> dict:
    """Student s2 gets a second primary role at the school, on line 5 of roles.csv."""
    feed["roles"].insert(3, {"sourcedId": f"{prefix}r-s2-again", "userSourcedId": f"{prefix}s2",
                             "roleType": "primary", "role": "aide",
                             "orgSourcedId": f"{prefix}sch1"})
    return feed


def errors_of(run) -> list[tuple]:  # type: ignore[no-untyped-def]
    return sorted(run.errors.values_list("code", "file", "line", "column"))


def nothing_applied() -> bool:
    return not RosterVersion.objects.exists() and not any(
        model.objects.exists() for model in CANONICAL_MODELS.values())


def test_a_first_import_without_conflicts_is_checked_beside_and_applied(
    import_feed, found_beside
):
    run = import_feed(small_district(students=30))

    assert run.state == ImportState.APPLIED
    if one_process_gin():
        assert [f.primary_conflict for f in found_beside] == [False]
    else:
        assert found_beside == []


def test_a_primary_role_conflict_found_after_the_writes_rejects_and_applies_nothing(
    import_feed, found_beside
):
    run = import_feed(with_a_second_primary_role(small_district(students=30)))

    assert run.state == ImportState.REJECTED
    assert errors_of(run) == [
        (validate_sql.PRIMARY_ROLE_CONFLICT, "roles.csv", 5, "roleType")]
    assert nothing_applied()
    if one_process_gin():
        assert [f.primary_conflict for f in found_beside] == [True]


def test_a_first_delta_is_checked_beside_from_its_staged_rows_alone(import_feed, found_beside):
    """A delta's check also reads the source's current roles, which this import holds
    locked until it commits: beside, the staged rows (the same state) are read instead."""
    feed = with_a_second_primary_role(small_district(students=30))
    for rows in feed.values():
        for row in rows:
            row["status"], row["dateLastModified"] = "active", "2024-09-01T00:00:00Z"

    run = import_feed(feed, mode="delta")

    assert run.state == ImportState.REJECTED
    assert errors_of(run) == [
        (validate_sql.PRIMARY_ROLE_CONFLICT, "roles.csv", 5, "roleType")]
    if one_process_gin():
        assert [f.primary_conflict for f in found_beside] == [True]


def test_the_conflict_is_reported_with_the_problems_found_before_the_writes(import_feed):
    feed = with_a_second_primary_role(small_district(students=30))
    feed["enrollments"][2]["classSourcedId"] = "no-such-class"  # line 4

    run = import_feed(feed)

    assert run.state == ImportState.REJECTED
    assert errors_of(run) == sorted([
        (validate_sql.PRIMARY_ROLE_CONFLICT, "roles.csv", 5, "roleType"),
        (codes.REFERENCE_MISSING, "enrollments.csv", 4, "classSourcedId"),
    ])
    assert nothing_applied()


def test_the_conflict_is_reported_with_a_repeated_sourced_id_the_writes_found(import_feed):
    feed = with_a_second_primary_role(small_district(students=30))
    feed["users"].append(dict(feed["users"][5]))  # repeated on the last line

    run = import_feed(feed)

    assert run.state == ImportState.REJECTED
    assert {code for code, *_ in errors_of(run)} == {
        validate_sql.PRIMARY_ROLE_CONFLICT, codes.DUPLICATE_SOURCED_ID}
    assert nothing_applied()


def test_when_the_second_connection_fails_the_import_checks_on_its_own(
    monkeypatch, import_feed
):
    def broken(self):  # type: ignore[no-untyped-def]
        raise OperationalError("no second connection")

    monkeypatch.setattr(BesideIndexBuilds, "__call__", broken)

    # each into an empty hub: the rejected one leaves it empty
    conflicting = import_feed(with_a_second_primary_role(small_district(students=30)))
    clean = import_feed(small_district(students=30))

    assert conflicting.state == ImportState.REJECTED
    assert [c for c, *_ in errors_of(conflicting)] == [validate_sql.PRIMARY_ROLE_CONFLICT]
    assert clean.state == ImportState.APPLIED
