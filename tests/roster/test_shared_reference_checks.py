"""A first load's reference checks, shared between the import's connection and a second
one (validate_sql._WholeChecks): every missing reference is still found and reported on
its line, in the order one connection reports them, and a share the second connection
cannot check is checked on the import's own.

Real imports on committed staging (transactional tests), each compared with the same feed
checked on one connection.
"""

from __future__ import annotations

from contextlib import contextmanager

import pytest
from django.db import OperationalError

from apps.roster.ingest import errors as codes
from apps.roster.ingest import validate_sql
from apps.roster.ingest.apply import ChangeSet, EntityChange
from apps.roster.models import ImportState, RosterVersion
from tests.roster.builders import small_district

pytestmark = [pytest.mark.django_db(transaction=True),
              pytest.mark.usefixtures("every_file_readable_beside")]


@pytest.fixture
def shares(monkeypatch):  # type: ignore[no-untyped-def]
    """The references each connection checked, per import: (here, there, left)."""
    seen: list[tuple] = []
    real = validate_sql._WholeChecks.run

    def spy(self, cursor, refs):  # type: ignore[no-untyped-def]
        if not seen or seen[-1][3] is not self:
            seen.append(([], [], [], self))
        where = 2 if refs is self.left and refs else 1 if refs is self.there else 0
        seen[-1][where].extend((r.entity, r.column) for r in refs)
        return real(self, cursor, refs)

    monkeypatch.setattr(validate_sql._WholeChecks, "run", spy)
    return seen


@pytest.fixture
def on_one_connection(monkeypatch):  # type: ignore[no-untyped-def]
    @contextmanager
    def one():  # type: ignore[no-untyped-def]
        with monkeypatch.context() as m:
            m.setattr(validate_sql._WholeChecks, "_share", lambda self, changes: None)
            yield

    return one


def broken_everywhere() -> dict:
    """A district whose files miss references to users, classes and orgs alike."""
    feed = small_district(students=12)
    feed["users"][3]["agentSourcedIds"] = "nobody"  # users -> users
    feed["users"][4]["primaryOrgSourcedId"] = "no-school"  # users -> orgs
    feed["roles"][5]["orgSourcedId"] = "no-school"  # roles -> orgs
    feed["enrollments"][6]["classSourcedId"] = "no-class"  # enrollments -> classes
    feed["enrollments"][7]["userSourcedId"] = "no-pupil"  # enrollments -> users
    feed["demographics"][2]["sourcedId"] = "no-pupil-either"  # demographics -> users
    return feed


def report(run) -> list[tuple]:  # type: ignore[no-untyped-def]
    return list(run.errors.order_by("id").values_list("code", "file", "line", "column",
                                                      "message"))


def test_missing_references_found_on_two_connections_are_reported_as_on_one(
    import_feed, shares, on_one_connection
):
    two = import_feed(broken_everywhere(), source="two")
    with on_one_connection():
        one = import_feed(broken_everywhere(), source="one")

    assert two.state == one.state == ImportState.REJECTED
    assert report(two) == report(one)
    assert [(code, file, line) for code, file, line, *_ in report(two)] == [
        (codes.REFERENCE_MISSING, "users.csv", 5),
        (codes.REFERENCE_MISSING, "users.csv", 6),
        (codes.REFERENCE_MISSING, "roles.csv", 7),
        (codes.REFERENCE_MISSING, "enrollments.csv", 8),
        (codes.REFERENCE_MISSING, "enrollments.csv", 9),
        (codes.REFERENCE_MISSING, "demographics.csv", 4),
    ]
    here, there, left, _ = shares[0]
    # both connections checked a share; every reference of a first load exactly once
    assert here and there and not left
    assert ("enrollments", "user_sourced_id") in here + there
    assert sorted(here + there) == sorted(shares[1][0])
    assert not RosterVersion.objects.exists()


def test_a_clean_first_load_checked_on_two_connections_is_applied(import_feed, shares):
    run = import_feed(small_district(students=12))

    assert run.state == ImportState.APPLIED, report(run)
    assert shares[0][0] and shares[0][1]


def test_a_share_the_second_connection_cannot_check_is_checked_here(
    import_feed, shares, on_one_connection, monkeypatch
):
    @contextmanager
    def refused(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise OperationalError("too many connections")
        yield  # pragma: no cover

    with monkeypatch.context() as m:
        m.setattr(validate_sql, "reading_beside", refused)
        fallen_back = import_feed(broken_everywhere(), source="two")
    with on_one_connection():
        one = import_feed(broken_everywhere(), source="one")

    assert fallen_back.state == ImportState.REJECTED
    assert report(fallen_back) == report(one)
    here, there, left, checks = shares[0]
    # the second connection's share, checked here after all
    assert not there and left == [(r.entity, r.column) for r in checks.there] != []


def test_a_later_import_checks_what_changed_on_its_own_connection(import_feed, shares):
    assert import_feed(small_district(students=12)).state == ImportState.APPLIED
    feed = small_district(students=12)
    feed["enrollments"][6]["classSourcedId"] = "no-class"

    run = import_feed(feed)

    assert run.state == ImportState.REJECTED
    assert [(c, f, line) for c, f, line, *_ in report(run)] == [
        (codes.REFERENCE_MISSING, "enrollments.csv", 8)]
    assert not any(shares[-1][:3])  # no first load: nothing checked whole, nothing shared


def test_the_checks_are_shared_by_the_rows_they_read_and_only_where_readable(monkeypatch):
    # given a large enrolments file and users file a second connection can read, and an
    # orgs file (the parser's temporary table) it cannot
    readable = {"users", "enrollments"}
    monkeypatch.setattr(validate_sql, "view_definition",
                        lambda entity: f"SELECT 1 /* {entity} */" if entity in readable else None)
    staged = {"orgs": 10, "users": 1000, "enrollments": 5000}
    changes = ChangeSet({e: EntityChange(first_load=True, staged=n) for e, n in staged.items()})
    refs = [r for r in validate_sql.REFERENCES if r.entity in staged]

    checks = validate_sql._WholeChecks(refs, changes, source_id=1, concurrent=True,
                                       modes=dict.fromkeys(staged, "bulk"))

    there = {(r.entity, r.column) for r in checks.there}
    here = {(r.entity, r.column) for r in checks.here}
    # the references to users from readable files (the largest share) go to the second
    # connection; those to orgs, whose staged file it cannot read, stay here
    assert there == {("users", "agent_sourced_ids"), ("enrollments", "user_sourced_id")}
    assert here == {(r.entity, r.column) for r in refs} - there
    # and nothing is shared when the staged rows are not committed
    alone = validate_sql._WholeChecks(refs, changes, source_id=1, concurrent=False,
                                      modes=dict.fromkeys(staged, "bulk"))
    assert alone.there == [] and len(alone.here) == len(refs)
