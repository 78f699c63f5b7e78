"""Applying feeds to the versioned canonical roster (PostgreSQL, through the real pipeline)."""

from __future__ import annotations

from pathlib import Path

import pytest

from apps.roster.models import (
    CANONICAL_MODELS,
    Enrollment,
    ImportRun,
    ImportState,
    RosterOutbox,
    RosterVersion,
    Source,
    User,
)
from apps.roster.selectors import roster_as_of, roster_changes, roster_current
from tests.roster.builders import delta, small_district
from tests.roster.conftest import current_count, state_now

pytestmark = pytest.mark.django_db


def test_first_import_creates_version_one_with_counts_and_an_outbox_row(import_feed):
    run = import_feed(small_district(students=3))

    assert run.state == ImportState.APPLIED
    version = run.version
    assert version.number == RosterVersion.objects.order_by("-number").first().number
    assert version.added == 2 + 2 + 1 + 1 + 4 + 4 + 4 + 3
    assert version.by_entity["users"]["added"] == 4
    assert (version.updated, version.deleted) == (0, 0)
    outbox = RosterOutbox.objects.get(version=version)
    assert outbox.payload["version"] == version.number
    assert outbox.payload["changes"]["added"] == version.added
    assert current_count("users") == 4
    user = User.objects.get(sourced_id="s1")
    assert user.valid_from_version == version.number and user.valid_to_version is None
    assert user.source.name == "sis" and len(bytes(user.content_hash)) == 8


def test_replaying_the_same_snapshot_creates_no_version(import_feed):
    import_feed(small_district())
    versions = RosterVersion.objects.count()

    replay = import_feed(small_district())

    assert replay.state == ImportState.NO_CHANGES
    assert replay.version is None
    assert RosterVersion.objects.count() == versions


def test_a_change_closes_the_old_row_and_inserts_the_new_one_keeping_history(import_feed):
    first = import_feed(small_district()).version.number
    feed = small_district()
    feed["users"][1]["familyName"] = "Renamed"

    second = import_feed(feed)

    assert second.changes["updated"] == 1 and second.changes["by_entity"]["users"]["updated"] == 1
    rows = User.objects.filter(sourced_id="s1").order_by("valid_from_version")
    assert [(r.family_name, r.valid_from_version, r.valid_to_version) for r in rows] == [
        ("Pupil", first, second.version.number),
        ("Renamed", second.version.number, None),
    ]
    assert roster_as_of(User, version=first).get(sourced_id="s1").family_name == "Pupil"
    assert roster_current(User).get(sourced_id="s1").family_name == "Renamed"
    changed = roster_changes(User, since=first, until=second.version.number)
    assert {(r.sourced_id, r.valid_to_version is None) for r in changed} == {
        ("s1", True), ("s1", False)
    }


def test_a_record_missing_from_a_bulk_file_is_closed_and_reappears_active(import_feed):
    import_feed(small_district(students=4))
    feed = small_district(students=4)
    feed["enrollments"] = [e for e in feed["enrollments"] if e["sourcedId"] != "e-s4"]

    removed = import_feed(feed)
    assert removed.changes["deleted"] == 1
    assert not roster_current(Enrollment).filter(sourced_id="e-s4").exists()

    back = import_feed(small_district(students=4))
    assert back.changes["added"] == 1
    assert roster_current(Enrollment).filter(sourced_id="e-s4").exists()
    assert Enrollment.objects.filter(sourced_id="e-s4").count() == 2  # history kept


def test_a_bulk_feed_only_replaces_the_files_it_supplies(import_feed):
    import_feed(small_district(students=4))
    only_users = {"users": small_district(students=2)["users"]}

    # removing users that enrollments still point at is refused ...
    refused = import_feed(only_users)
    assert refused.state == ImportState.REJECTED
    # ... while a users file on its own replaces users and nothing else
    feed = small_district(students=4)
    feed["users"][1]["givenName"] = "Changed"
    run = import_feed({"users": feed["users"]})
    assert run.state == ImportState.APPLIED
    assert set(run.changes["by_entity"]) == {"users"}
    assert current_count("enrollments") == 5


def test_one_sources_bulk_never_touches_another_sources_rows(import_feed):
    import_feed(small_district(students=3), source="sis")
    import_feed(small_district(students=3), source="other")
    other = Source.objects.get(name="other")
    before = state_now(other)

    feed = small_district(students=1)  # sis drops two students
    run = import_feed(feed, source="sis")

    assert run.state == ImportState.APPLIED and run.changes["deleted"] > 0
    assert state_now(other) == before
    assert roster_current(User).filter(sourced_id="s3").count() == 1  # other's copy


def test_a_delta_adds_updates_and_deletes(import_feed):
    import_feed(small_district(students=3))
    users = small_district(students=4)["users"]
    renamed = {**users[1], "familyName": "Delta"}
    enrollment_gone = small_district(students=3)["enrollments"][3]  # e-s3
    feed = {
        "users": delta([renamed]) + delta([users[4]]),
        "enrollments": delta([enrollment_gone], status="tobedeleted"),
    }

    run = import_feed(feed, mode="delta")

    assert run.state == ImportState.APPLIED, list(run.errors.values_list("message", flat=True))
    assert run.changes["by_entity"]["users"] == {"added": 1, "updated": 1, "deleted": 0, "stale": 0}
    assert run.changes["by_entity"]["enrollments"]["deleted"] == 1
    assert roster_current(User).get(sourced_id="s1").family_name == "Delta"
    assert not roster_current(Enrollment).filter(sourced_id="e-s3").exists()
    assert current_count("enrollments") == 3  # the delta deletes only what it names


def test_a_delta_never_lets_an_older_change_overwrite_a_newer_one(import_feed):
    import_feed(small_district(students=2))
    user = small_district(students=2)["users"][1]
    import_feed({"users": delta([{**user, "familyName": "Newer"}],
                                when="2030-06-01T00:00:00.000Z")}, mode="delta")

    late = import_feed({"users": delta([{**user, "familyName": "Older"}],
                                       when="2030-01-01T00:00:00.000Z")}, mode="delta")

    assert late.state == ImportState.NO_CHANGES
    assert late.changes["by_entity"]["users"]["stale"] == 1
    assert roster_current(User).get(sourced_id="s1").family_name == "Newer"


def test_a_delta_reference_resolves_against_the_current_roster(import_feed):
    import_feed(small_district(students=2))
    new_enrollment = {"sourcedId": "e-new", "classSourcedId": "cls1", "schoolSourcedId": "sch1",
                      "userSourcedId": "s2", "role": "student"}
    ok = import_feed({"enrollments": delta([new_enrollment])}, mode="delta")
    assert ok.state == ImportState.APPLIED

    dangling = {**new_enrollment, "sourcedId": "e-bad", "userSourcedId": "nobody"}
    bad = import_feed({"enrollments": delta([dangling])}, mode="delta")
    assert bad.state == ImportState.REJECTED
    assert list(bad.errors.values_list("code", "file", "line", "column")) == [
        ("REFERENCE_MISSING", "enrollments.csv", 2, "userSourcedId")
    ]


def test_a_dry_run_reports_changes_but_applies_nothing(import_feed):
    import_feed(small_district(students=2))
    versions = RosterVersion.objects.count()
    feed = small_district(students=3)

    run = import_feed(feed, dry_run=True)

    assert run.state == ImportState.APPLIED and run.dry_run and run.version is None
    assert run.changes["added"] > 0
    assert RosterVersion.objects.count() == versions
    assert current_count("users") == 3


def test_every_canonical_table_is_empty_after_a_rejected_first_import(import_feed):
    feed = small_district()
    feed["classes"][0]["courseSourcedId"] = "missing"

    run = import_feed(feed)

    assert run.state == ImportState.REJECTED
    assert all(m.objects.count() == 0 for m in CANONICAL_MODELS.values())
    assert not RosterVersion.objects.exists()


def test_the_staged_file_is_encrypted_at_rest(import_feed, tmp_path):
    feed = small_district()
    feed["users"][1]["familyName"] = "Distinctive-Surname"

    run = import_feed(feed)

    staged = Path(run.staged_path).read_bytes()
    assert not staged.startswith(b"PK")
    assert b"Distinctive" not in staged and b"users.csv" not in staged


def test_staged_files_are_purged_after_the_retention_window(import_feed):
    from datetime import timedelta

    from django.utils import timezone

    from apps.roster.services import staged_files_purge

    run = import_feed(small_district())
    path = Path(run.staged_path)
    assert staged_files_purge() == 0 and path.exists()

    purged = staged_files_purge(now=timezone.now() + timedelta(days=8))

    run.refresh_from_db()
    assert purged == 1 and not path.exists()
    assert run.staged_path == "" and run.staged_purged_at is not None


def test_version_numbers_are_hub_wide_and_monotonic(import_feed):
    a = import_feed(small_district(), source="a").version.number
    b = import_feed(small_district(), source="b").version.number
    feed = small_district()
    feed["users"][1]["givenName"] = "X"
    c = import_feed(feed, source="a").version.number
    assert a < b < c


def test_run_records_timings_counts_and_rule_set_version(import_feed):
    run = import_feed(small_district(students=2))
    run = ImportRun.objects.get(pk=run.pk)
    assert run.counts["rows"]["users"] == 3
    assert run.counts["modes"]["users"] == "bulk"
    assert {"parse_copy", "diff", "apply", "total"} <= set(run.timings)
    assert run.rule_set.version == 1
    assert run.oneroster_version == "1.2"


def test_a_large_change_refreshes_the_planner_statistics_after_commit(
    import_feed, monkeypatch, django_capture_on_commit_callbacks
):
    """Autovacuum may be off: a first load must not leave the planner thinking tables are
    empty (it then picks nested loops that never finish on the next diff or rollback)."""
    from django.db import connection

    from apps.roster.ingest import apply as apply_sql

    monkeypatch.setattr(apply_sql, "STATISTICS_MIN_ROWS", 1)
    def planner_believes() -> float:
        with connection.cursor() as cursor:
            cursor.execute("SELECT reltuples FROM pg_class WHERE relname = 'roster_user'")
            return cursor.fetchone()[0]

    with connection.cursor() as cursor:
        cursor.execute("ANALYZE roster_user")  # the empty table, as a fresh hub has it
    assert planner_believes() == 0

    with django_capture_on_commit_callbacks(execute=True):
        import_feed(small_district(students=6))

    assert planner_believes() == current_count("users") > 6
