"""The largest file's diff on a second connection gives the same answer as on this one,
and staging tables a dead session left behind are dropped by the next import.

The diff of a large district's re-sync is mostly one hash join per big file; with the
staged rows committed (imports stage outside any transaction) the biggest one runs on a
second connection (apply.diff_compute). These tests run real imports with the threshold
lowered so that a small district takes that road, and compare every count and every
stored row with an import that did not.
"""

from __future__ import annotations

import threading

import pytest
from django.db import connection

from apps.roster.ingest import apply as apply_sql
from apps.roster.ingest import fastcopy, staging
from apps.roster.models import Enrollment, ImportState, User
from apps.roster.services import roster_import_run
from benchmarks.generate_district import generate_delta, generate_district
from tests.roster.builders import delta, small_district

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def sides(monkeypatch):  # type: ignore[no-untyped-def]
    """The entities diffed on the second connection, in order."""
    taken: list[str] = []
    real = apply_sql._side_diff
    monkeypatch.setattr(apply_sql, "_side_diff", lambda *a: taken.append(a[0]) or real(*a))
    return taken


def _current_rows(source: str) -> list[tuple]:
    rows = []
    for model in (User, Enrollment):
        rows += sorted(model.objects.filter(valid_to_version=None, source__name=source)
                       .values_list("sourced_id", "content_hash"))
    return [(sid, bytes(h)) for sid, h in rows]


def test_a_resync_and_a_delta_give_the_same_changes_on_either_connection(
    tmp_path, monkeypatch, sides
):
    # given a district and a delta changing a fifth of it
    monkeypatch.setattr(fastcopy, "UNLOGGED_FROM_BYTES", 0)  # every file as a large one's
    bulk = tmp_path / "d.zip"
    generate_district(bulk, students=60, seed=3)
    changed = tmp_path / "delta.zip"
    generate_delta(changed, students=60, seed=3, fraction=0.2)
    outcomes = {}
    # when one source imports them with the largest file diffed on a second connection,
    # and another source with every file diffed on this one
    for source, threshold in (("two", 1), ("one", 10**9)):
        monkeypatch.setattr(apply_sql, "CONCURRENT_DIFF_ROWS", threshold)
        runs = [roster_import_run(path=p, source=source) for p in (bulk, bulk, changed)]
        outcomes[source] = ([r.state for r in runs], runs[1].changes, runs[2].changes)

    # then both took their road, and both ended with the same changes and rows
    assert sides and set(sides) == {"enrollments"}
    assert outcomes["two"][0] == [ImportState.APPLIED, ImportState.NO_CHANGES,
                                  ImportState.APPLIED]
    assert outcomes["two"] == outcomes["one"]
    assert outcomes["two"][2]["updated"] + outcomes["two"][2]["deleted"] > 0
    assert _current_rows("two") == _current_rows("one")


def test_a_bulk_change_diffed_on_the_second_connection_is_applied(monkeypatch, import_feed,
                                                                 sides):
    monkeypatch.setattr(apply_sql, "CONCURRENT_DIFF_ROWS", 1)
    monkeypatch.setattr(fastcopy, "UNLOGGED_FROM_BYTES", 0)
    feed = small_district(students=4)
    import_feed(feed)
    feed["enrollments"] = feed["enrollments"][1:]  # one enrollment leaves the file

    run = import_feed(feed)

    assert sides  # the largest file went to the second connection
    assert run.state == ImportState.APPLIED
    assert run.changes["deleted"] == 1
    assert Enrollment.objects.filter(valid_to_version=None).count() == len(feed["enrollments"])


def test_staging_tables_of_a_session_that_died_are_dropped():
    with connection.cursor() as cursor:
        cursor.execute("CREATE UNLOGGED TABLE ingest_raw_999999999_user (c0 text)")
        cursor.execute("CREATE UNLOGGED TABLE ingest_chg_999999999_user (op char(1))")
        mine = f"ingest_raw_{staging.session_key()}_user"
        cursor.execute(f"CREATE UNLOGGED TABLE {mine} (c0 text)")

    dropped = staging.drop_orphaned_tables()

    assert {"ingest_chg_999999999_user", "ingest_raw_999999999_user"} <= set(dropped)
    assert mine not in dropped
    with connection.cursor() as cursor:
        cursor.execute("SELECT to_regclass(%s) IS NOT NULL", [mine])
        assert cursor.fetchone()[0]  # a live session's tables stay
        cursor.execute(f"DROP TABLE {mine}")


def test_an_import_leaves_no_staging_or_change_tables(import_feed):
    import_feed(small_district(students=3))
    import_feed({"users": delta(small_district(students=3)["users"][:1])}, mode="delta")

    with connection.cursor() as cursor:
        cursor.execute("SELECT relname FROM pg_class WHERE relname ~ '^ingest_(raw|chg|ids)_'")
        assert cursor.fetchall() == []


def test_statistics_after_a_large_import_are_refreshed_on_both_connections(
    monkeypatch, import_feed
):
    # given thresholds low enough that a small district counts as a large import
    monkeypatch.setattr(apply_sql, "CONCURRENT_DIFF_ROWS", 1)
    monkeypatch.setattr(apply_sql, "STATISTICS_MIN_ROWS", 1)
    here, elsewhere = [], []
    analyze, analyze_elsewhere = apply_sql._analyze, apply_sql._analyze_elsewhere
    monkeypatch.setattr(apply_sql, "_analyze", lambda t: (
        here.extend(t) if threading.current_thread() is threading.main_thread() else None
    ) or analyze(t))
    monkeypatch.setattr(apply_sql, "_analyze_elsewhere",
                        lambda t: elsewhere.extend(t) or analyze_elsewhere(t))

    # when it is imported
    import_feed(small_district(students=4))

    # then the tables it filled were analysed, some on the second connection, none twice
    assert elsewhere and here
    assert not set(here) & set(elsewhere)
    assert {"roster_user", "roster_enrollment", "roster_role"} <= set(here) | set(elsewhere)
    with connection.cursor() as cursor:
        cursor.execute("SELECT relname, reltuples FROM pg_class WHERE relname IN "
                       "('roster_user', 'roster_enrollment')")
        assert all(tuples > 0 for _, tuples in cursor.fetchall())


def test_statistics_are_kept_only_for_the_columns_queries_plan_on(import_feed):
    import_feed(small_district(students=4))

    with connection.cursor() as cursor:
        cursor.execute("ANALYZE roster_user")
        cursor.execute("SELECT attname FROM pg_stats WHERE tablename = 'roster_user'")
        analysed = {name for (name,) in cursor.fetchall()}
    assert {"sourced_id", "source_id", "valid_from_version", "primary_org_sourced_id",
            "agent_sourced_ids"} <= analysed
    assert not analysed & {"given_name", "family_name", "email", "content_hash"}


def test_statistics_lanes_share_tables_by_the_sample_analyze_reads_not_by_rows(monkeypatch):
    # given a large import: one huge file and three smaller ones, all new to the hub
    here, elsewhere = [], []
    monkeypatch.setattr(apply_sql, "_analyze", lambda t: here.extend(t))
    monkeypatch.setattr(apply_sql, "_analyze_elsewhere", lambda t: elsewhere.extend(t))
    changes = apply_sql.ChangeSet(by_entity={
        "enrollments": apply_sql.EntityChange(added=1_500_000),
        "users": apply_sql.EntityChange(added=400_000),
        "roles": apply_sql.EntityChange(added=400_000),
        "demographics": apply_sql.EntityChange(added=200_000),
    })

    apply_sql.statistics_refresh(changes)

    # then each connection analyses two tables (ANALYZE samples at most 30,000 rows of
    # each): weighed by rows, the enrolments alone took one connection
    assert len(here) == len(elsewhere) == 2
    assert set(here + elsewhere) == {"roster_enrollment", "roster_user", "roster_role",
                                     "roster_demographic"}
