"""``manage.py roster_import``: exit codes and the pinned ``--json`` shape."""

from __future__ import annotations

import json

import pytest
from django.core.management import call_command

from apps.roster.models import ImportState, Source
from tests.roster.builders import small_district, write_feed

pytestmark = pytest.mark.django_db

ERROR_KEYS = {"file", "line", "column", "code", "message"}


def run_command(capsys, *args) -> tuple[int, dict]:  # type: ignore[no-untyped-def]
    code = 0
    try:
        call_command("roster_import", *args, "--json")
    except SystemExit as exit_:
        code = exit_.code
    return code, json.loads(capsys.readouterr().out)


def assert_shape(report: dict) -> None:
    assert set(report) == {"status", "version", "counts", "changes", "errors"}
    assert set(report["changes"]) == {"added", "updated", "deleted", "by_entity"}
    assert report["status"] in {"applied", "no_changes", "rejected", "held", "failed"}
    for figures in report["changes"]["by_entity"].values():
        assert set(figures) == {"added", "updated", "deleted"}
    for error in report["errors"]:
        assert set(error) == ERROR_KEYS


def test_applied_then_no_changes_exit_zero(capsys, tmp_path):
    path = write_feed(tmp_path / "a.zip", small_district(students=2))

    code, report = run_command(capsys, str(path))
    assert code == 0
    assert_shape(report)
    assert report["status"] == "applied" and isinstance(report["version"], int)
    assert report["counts"]["users"] == 3
    assert report["changes"]["added"] == sum(report["counts"].values())
    assert report["changes"]["by_entity"]["users"] == {"added": 3, "updated": 0, "deleted": 0}
    assert report["errors"] == []

    code, report = run_command(capsys, str(path))
    assert (code, report["status"], report["version"]) == (0, "no_changes", None)
    assert report["changes"] == {"added": 0, "updated": 0, "deleted": 0, "by_entity": {}}


def test_rejected_exits_two_with_row_errors(capsys, tmp_path):
    feed = small_district()
    feed["enrollments"][1]["userSourcedId"] = "ghost"
    code, report = run_command(capsys, str(write_feed(tmp_path / "bad.zip", feed)))

    assert code == 2
    assert_shape(report)
    assert report["status"] == "rejected" and report["version"] is None
    assert report["errors"] == [{
        "file": "enrollments.csv", "line": 3, "column": "userSourcedId",
        "code": "REFERENCE_MISSING",
        "message": "e-s1: userSourcedId 'ghost' does not match any user in this feed or the "
                   "current roster.",
    }]


def test_held_exits_three(capsys, tmp_path):
    run_command(capsys, str(write_feed(tmp_path / "a.zip", small_district(students=10))))
    code, report = run_command(
        capsys, str(write_feed(tmp_path / "b.zip", small_district(students=20)))
    )
    assert (code, report["status"], report["version"]) == (3, "held", None)
    assert_shape(report)


def test_failed_exits_one(capsys, tmp_path):
    # the database refuses the apply: another session holds the users table locked
    import psycopg
    from django.db import connection

    path = write_feed(tmp_path / "a.zip", small_district())
    params = connection.get_connection_params()
    params.pop("cursor_factory", None)
    params.pop("context", None)
    with psycopg.connect(**params) as other:
        other.execute("LOCK TABLE roster_user IN ACCESS EXCLUSIVE MODE")
        with connection.cursor() as cursor:
            cursor.execute("SET lock_timeout = '200ms'")
        try:
            code, report = run_command(capsys, str(path))
        finally:
            with connection.cursor() as cursor:
                cursor.execute("SET lock_timeout = 0")

    assert (code, report["status"], report["version"]) == (1, "failed", None)
    assert_shape(report)
    assert report["errors"][0]["code"] == "INTERNAL_ERROR"


def test_dry_run_and_source_options(capsys, tmp_path):
    path = write_feed(tmp_path / "a.zip", small_district())
    code, report = run_command(capsys, str(path), "--source", "trust-sis", "--dry-run")
    assert (code, report["status"], report["version"]) == (0, "applied", None)
    assert Source.objects.get(name="trust-sis").versions.count() == 0
    assert Source.objects.get(name="trust-sis").import_runs.get().state == ImportState.APPLIED
