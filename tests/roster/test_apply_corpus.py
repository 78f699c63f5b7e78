"""The bad-input corpus through the whole pipeline: each case is rejected with its error
(code, file, line, column) and nothing is applied.

PARSE's cases (tests/roster/corpus.py) are re-run here end to end; the reference-level
cases that only the SQL validation can find are added below in the same style.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from apps.roster.ingest import errors as E
from apps.roster.ingest import validate_sql as V
from apps.roster.models import CANONICAL_MODELS, ImportState, RosterVersion
from apps.roster.services import roster_import_run
from tests.roster import corpus
from tests.roster.corpus import base_files, set_field, write_zip

pytestmark = pytest.mark.django_db


@dataclass
class RefCase:
    name: str
    build: Callable[[], corpus.Files]
    code: str
    file: str
    line: int | None
    column: str | None


def _rows_appended(files: corpus.Files, name: str, *lines: str) -> corpus.Files:
    return {**files, name: files[name] + "".join(f"{line}\n" for line in lines).encode()}


B = base_files
REF_CASES = [
    RefCase("class course missing", lambda: set_field(B(), "classes.csv", 2, "courseSourcedId",
            "course-nope"), E.REFERENCE_MISSING, "classes.csv", 2, "courseSourcedId"),
    RefCase("class school missing", lambda: set_field(B(), "classes.csv", 3, "schoolSourcedId",
            "org-nope"), E.REFERENCE_MISSING, "classes.csv", 3, "schoolSourcedId"),
    RefCase("class term missing", lambda: set_field(B(), "classes.csv", 2, "termSourcedIds",
            "as-2025-t1,as-nope"), E.REFERENCE_MISSING, "classes.csv", 2, "termSourcedIds"),
    RefCase("enrollment user missing", lambda: set_field(B(), "enrollments.csv", 4,
            "userSourcedId", "user-nope"), E.REFERENCE_MISSING, "enrollments.csv", 4,
            "userSourcedId"),
    RefCase("enrollment class missing", lambda: set_field(B(), "enrollments.csv", 2,
            "classSourcedId", "class-nope"), E.REFERENCE_MISSING, "enrollments.csv", 2,
            "classSourcedId"),
    RefCase("enrollment school missing", lambda: set_field(B(), "enrollments.csv", 5,
            "schoolSourcedId", "org-nope"), E.REFERENCE_MISSING, "enrollments.csv", 5,
            "schoolSourcedId"),
    RefCase("role org missing", lambda: set_field(B(), "roles.csv", 3, "orgSourcedId",
            "org-nope"), E.REFERENCE_MISSING, "roles.csv", 3, "orgSourcedId"),
    RefCase("role user missing", lambda: set_field(B(), "roles.csv", 2, "userSourcedId",
            "user-nope"), E.REFERENCE_MISSING, "roles.csv", 2, "userSourcedId"),
    RefCase("role profile missing", lambda: set_field(B(), "roles.csv", 3,
            "userProfileSourcedId", "profile-nope"), E.REFERENCE_MISSING, "roles.csv", 3,
            "userProfileSourcedId"),
    RefCase("second primary role at the same org", lambda: _rows_appended(
            B(), "roles.csv", "role-s1-b,,,user-s1,primary,aide,,,org-school-2,"),
            V.PRIMARY_ROLE_CONFLICT, "roles.csv", 6, "roleType"),
    RefCase("demographics of no user", lambda: set_field(B(), "demographics.csv", 3,
            "sourcedId", "user-nope"), E.REFERENCE_MISSING, "demographics.csv", 3, "sourcedId"),
    RefCase("org parent cycle", lambda: set_field(B(), "orgs.csv", 2, "parentSourcedId",
            "org-school-1"), V.PARENT_CYCLE, "orgs.csv", 2, "parentSourcedId"),
    RefCase("org is its own parent", lambda: set_field(B(), "orgs.csv", 3, "parentSourcedId",
            "org-school-1"), V.PARENT_CYCLE, "orgs.csv", 3, "parentSourcedId"),
    RefCase("org parent missing", lambda: set_field(B(), "orgs.csv", 3, "parentSourcedId",
            "org-nope"), E.REFERENCE_MISSING, "orgs.csv", 3, "parentSourcedId"),
    RefCase("session parent cycle", lambda: set_field(B(), "academicSessions.csv", 2,
            "parentSourcedId", "as-2025-t1"), V.PARENT_CYCLE, "academicSessions.csv", 2,
            "parentSourcedId"),
    RefCase("course org missing", lambda: set_field(B(), "courses.csv", 2, "orgSourcedId",
            "org-nope"), E.REFERENCE_MISSING, "courses.csv", 2, "orgSourcedId"),
    RefCase("course school year missing", lambda: set_field(B(), "courses.csv", 3,
            "schoolYearSourcedId", "as-nope"), E.REFERENCE_MISSING, "courses.csv", 3,
            "schoolYearSourcedId"),
    RefCase("user agent missing", lambda: set_field(B(), "users.csv", 3, "agentSourcedIds",
            "user-nope"), E.REFERENCE_MISSING, "users.csv", 3, "agentSourcedIds"),
    RefCase("user primary org missing", lambda: set_field(B(), "users.csv", 4,
            "primaryOrgSourcedId", "org-nope"), E.REFERENCE_MISSING, "users.csv", 4,
            "primaryOrgSourcedId"),
    RefCase("user profile of no user", lambda: set_field(B(), "userProfiles.csv", 2,
            "userSourcedId", "user-nope"), E.REFERENCE_MISSING, "userProfiles.csv", 2,
            "userSourcedId"),
    RefCase("line item category missing", lambda: set_field(B(), "lineItems.csv", 2,
            "categorySourcedId", "cat-nope"), E.REFERENCE_MISSING, "lineItems.csv", 2,
            "categorySourcedId"),
    RefCase("result line item missing", lambda: set_field(B(), "results.csv", 3,
            "lineItemSourcedId", "li-nope"), E.REFERENCE_MISSING, "results.csv", 3,
            "lineItemSourcedId"),
    RefCase("result student missing", lambda: set_field(B(), "results.csv", 2,
            "studentSourcedId", "user-nope"), E.REFERENCE_MISSING, "results.csv", 2,
            "studentSourcedId"),
    RefCase("score scale class missing", lambda: set_field(B(), "scoreScales.csv", 2,
            "classSourcedId", "class-nope"), E.REFERENCE_MISSING, "scoreScales.csv", 2,
            "classSourcedId"),
    RefCase("duplicate user sourcedId", lambda: set_field(B(), "users.csv", 4, "sourcedId",
            "user-s1"), E.DUPLICATE_SOURCED_ID, "users.csv", 4, "sourcedId"),
    RefCase("duplicate enrollment sourcedId", lambda: set_field(B(), "enrollments.csv", 5,
            "sourcedId", "enr-2"), E.DUPLICATE_SOURCED_ID, "enrollments.csv", 5, "sourcedId"),
]


def _nothing_applied() -> None:
    assert not RosterVersion.objects.exists()
    assert all(m.objects.count() == 0 for m in CANONICAL_MODELS.values())


def test_the_base_feeds_apply_cleanly(tmp_path):
    for version in ("1.2", "1.1"):
        run = roster_import_run(path=write_zip(tmp_path / f"{version}.zip", base_files(version)),
                                source=f"base-{version}")
        assert run.state == ImportState.APPLIED, list(run.errors.values_list("message", flat=True))


@pytest.mark.parametrize("case", REF_CASES, ids=[c.name for c in REF_CASES])
def test_reference_level_bad_input_is_rejected_and_nothing_applied(case, tmp_path):
    run = roster_import_run(path=write_zip(tmp_path / "bad.zip", case.build()), source="sis")

    assert run.state == ImportState.REJECTED
    found = list(run.errors.values_list("code", "file", "line", "column"))
    assert (case.code, case.file, case.line, case.column) in found, found
    _nothing_applied()


PARSE_CASES = [c for c in corpus.CASES if c.limits is None]


@pytest.mark.parametrize("case", PARSE_CASES, ids=[c.name for c in PARSE_CASES])
def test_parse_level_bad_input_is_rejected_and_nothing_applied(case, tmp_path):
    path: Path = case.make(tmp_path)

    run = roster_import_run(path=path, source="sis")

    assert run.state == ImportState.REJECTED
    found = list(run.errors.values_list("code", "file", "line"))
    assert (case.code, case.file, case.line) in found, found
    _nothing_applied()


def test_removing_records_still_referenced_by_kept_rows_is_rejected(tmp_path):
    roster_import_run(path=write_zip(tmp_path / "a.zip", base_files()), source="sis")
    versions = RosterVersion.objects.count()
    files = corpus.drop(base_files(), "enrollments.csv")
    files["manifest.csv"] = corpus.manifest(
        "1.2", {n[:-4]: "bulk" for n in files if n != "manifest.csv"})
    files = set_field(files, "users.csv", 4, "sourcedId", "user-s9")  # drop user-s2

    run = roster_import_run(path=write_zip(tmp_path / "b.zip", files), source="sis")

    assert run.state == ImportState.REJECTED
    found = list(run.errors.values_list("code", "file", "column"))
    assert (V.REFERENCE_ORPHANED, "enrollments.csv", "userSourcedId") in found, found
    assert RosterVersion.objects.count() == versions


def test_a_delta_deleting_a_guardian_a_kept_pupil_names_as_agent_is_rejected(tmp_path):
    roster_import_run(path=write_zip(tmp_path / "a.zip", base_files()), source="sis")
    versions = RosterVersion.objects.count()
    users = corpus.read_rows(base_files(mode="delta")["users.csv"])
    guardian = next(row for row in users if row[0] == "user-g1")
    guardian[1] = "tobedeleted"
    files = {"users.csv": corpus.write_rows([users[0], guardian]),
             "manifest.csv": corpus.manifest("1.2", {"users": "delta"})}

    run = roster_import_run(path=write_zip(tmp_path / "b.zip", files), source="sis")

    assert run.state == ImportState.REJECTED
    found = list(run.errors.values_list("code", "file", "column", "message"))
    assert any(code == V.REFERENCE_ORPHANED and file == "users.csv"
               and column == "agentSourcedIds" and "user-s1" in message
               for code, file, column, message in found), found
    assert RosterVersion.objects.count() == versions
