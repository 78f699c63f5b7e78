"""A bulk file of entities the source already has is checked through the diff.

Once a source has rows, only what a bulk file changes is checked against the state it
would produce, and rows it keeps as they are only against what it removes; repeated
sourcedIds show in the diff's counts (validate_sql.py). These tests hold that short
road to the same answers the whole check gives: each problem a re-sync can carry is
reported with its file, line and column, and nothing is applied.
"""

from __future__ import annotations

import pytest

from apps.roster.ingest import errors as E
from apps.roster.ingest import validate_sql as V
from apps.roster.models import Enrollment, ImportState, RosterVersion
from apps.roster.services import roster_import_run
from tests.roster import corpus
from tests.roster.corpus import base_files, set_field, write_zip

pytestmark = pytest.mark.django_db


@pytest.fixture
def resync(tmp_path):
    """Apply the base feed, then import ``files`` as the same source; return the run."""
    first = roster_import_run(path=write_zip(tmp_path / "first.zip", base_files()), source="sis")
    assert first.state == ImportState.APPLIED

    def run(files: corpus.Files):  # type: ignore[no-untyped-def]
        return roster_import_run(path=write_zip(tmp_path / "again.zip", files), source="sis")

    return run


def _appended(files: corpus.Files, name: str, *lines: str) -> corpus.Files:
    return {**files, name: files[name] + "".join(f"{line}\n" for line in lines).encode()}


def _without(files: corpus.Files, name: str, *sourced_ids: str) -> corpus.Files:
    rows = corpus.read_rows(files[name])
    return {**files, name: corpus.write_rows([r for r in rows if r[0] not in sourced_ids])}


def _rejected_with(run, *expected: tuple) -> None:  # type: ignore[no-untyped-def]
    assert run.state == ImportState.REJECTED
    found = set(run.errors.values_list("code", "file", "line", "column"))
    assert set(expected) <= found, found
    assert RosterVersion.objects.count() == 1


def test_an_unchanged_resync_passes_every_check(resync):
    assert resync(base_files()).state == ImportState.NO_CHANGES


@pytest.mark.parametrize(("lines", "line"), [
    # enr-2 is unchanged, so neither copy shows as a change: only the counts tell
    pytest.param(["enr-2,,,class-math-7a,org-school-2,user-s1,student,false,,"], 6,
                 id="a line repeated word for word"),
    pytest.param(["enr-3,,,class-eng-7a,org-school-2,user-s2,student,,,"], 6,
                 id="a record repeated with other content"),
    pytest.param(["enr-9,,,class-eng-7a,org-school-2,user-s2,student,,,"] * 2, 7,
                 id="a new record given twice"),
])
def test_a_repeated_sourced_id_is_a_duplicate(resync, lines, line):
    files = _appended(base_files(), "enrollments.csv", *lines)

    _rejected_with(resync(files),
                   (E.DUPLICATE_SOURCED_ID, "enrollments.csv", line, "sourcedId"))


def test_a_changed_row_pointing_nowhere_is_reported_on_its_line(resync):
    files = set_field(base_files(), "enrollments.csv", 3, "classSourcedId", "class-nope")

    _rejected_with(resync(files),
                   (E.REFERENCE_MISSING, "enrollments.csv", 3, "classSourcedId"))


def test_an_unchanged_row_pointing_at_a_removed_record_is_reported_on_its_line(resync):
    # class-eng-7a leaves classes.csv; enr-4 (unchanged) still names it
    files = _without(base_files(), "classes.csv", "class-eng-7a")

    _rejected_with(resync(files),
                   (E.REFERENCE_MISSING, "enrollments.csv", 5, "classSourcedId"))


def test_an_unchanged_list_pointing_at_a_removed_record_is_reported(resync):
    # the guardian leaves users.csv (and the files naming them); user-s1's agents still do
    files = _without(_without(base_files(), "users.csv", "user-g1"), "roles.csv", "role-g1")

    _rejected_with(resync(files),
                   (E.REFERENCE_MISSING, "users.csv", 3, "agentSourcedIds"))


def test_a_role_made_primary_beside_an_unchanged_primary_conflicts(resync):
    files = _appended(base_files(), "roles.csv",
                      "role-t1b,,,user-t1,primary,teacher,,,org-school-2,")

    _rejected_with(resync(files),
                   (V.PRIMARY_ROLE_CONFLICT, "roles.csv", 6, "roleType"))


def test_removing_a_record_and_what_points_at_it_applies(resync):
    files = _without(_without(base_files(), "classes.csv", "class-eng-7a"),
                     "enrollments.csv", "enr-4")

    run = resync(files)

    assert run.state == ImportState.APPLIED, list(run.errors.values_list("message", flat=True))
    assert not Enrollment.objects.filter(sourced_id="enr-4", valid_to_version=None).exists()


def test_a_first_import_repeating_a_record_is_rejected_naming_both_lines(tmp_path):
    # a first load leaves repeats to the canonical unique index; the run still names them
    files = _appended(base_files(), "enrollments.csv",
                      "enr-1,,,class-math-7a,org-school-2,user-t1,teacher,true,,")

    run = roster_import_run(path=write_zip(tmp_path / "dup.zip", files), source="sis")

    assert run.state == ImportState.REJECTED
    assert list(run.errors.values_list("code", "file", "line", "column", "message")) == [
        (E.DUPLICATE_SOURCED_ID, "enrollments.csv", 6, "sourcedId",
         "enr-1: sourcedId appears more than once in enrollments.csv (first on line 2).")]
    assert not RosterVersion.objects.exists()
    assert not Enrollment.objects.exists()


def test_a_dry_run_of_a_first_import_still_finds_repeats(tmp_path):
    files = _appended(base_files(), "enrollments.csv",
                      "enr-1,,,class-math-7a,org-school-2,user-t1,teacher,true,,")

    run = roster_import_run(path=write_zip(tmp_path / "dup.zip", files), source="sis",
                            dry_run=True)

    assert run.state == ImportState.REJECTED
    assert list(run.errors.values_list("code", flat=True)) == [E.DUPLICATE_SOURCED_ID]


def test_the_references_checked_by_probe_lead_an_index_of_current_rows():
    # a probe without its index would read the whole table once per removed record
    from django.db import connection

    from apps.roster.ingest.staging import TABLES

    with connection.cursor() as cursor:
        for entity, column in V.INDEXED_REFERENCES:
            cursor.execute(
                "SELECT count(*) FROM pg_index x JOIN pg_attribute a ON a.attrelid = x.indrelid "
                "AND a.attnum = x.indkey[0] WHERE x.indrelid = %s::regclass "
                "AND a.attname = %s AND pg_get_expr(x.indpred, x.indrelid) LIKE "
                "'%%valid_to_version IS NULL%%'",
                [TABLES[entity].table, column],
            )
            assert cursor.fetchone()[0] >= 1, (entity, column)
