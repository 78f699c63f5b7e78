"""The COPY fast path stages exactly what the row-by-row parser stages, or declines.

A 1.2 file goes to PostgreSQL as its own CSV bytes and is checked in SQL (fastcopy.py);
any file the fast path cannot prove clean goes through the parser, which reports each
problem. These tests hold the two paths to the same staged rows, value for value.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest
from django.db import connection

from apps.roster import schema
from apps.roster.ingest import fastcopy, staging
from apps.roster.ingest.parse import open_feed
from apps.roster.models import ImportState
from benchmarks.generate_district import generate_delta, generate_district
from tests.roster.builders import delta, small_district, write_feed

pytestmark = pytest.mark.django_db(transaction=True)


def _staged(entity: str) -> list[tuple]:
    tables = staging.TABLES[entity]
    columns = ", ".join(
        ["n", "line", "sourced_id", "status", "date_last_modified"]
        + [tables.staged("s", c) for c in tables.content]
    )
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {columns} FROM {tables.staging} s ORDER BY n")  # noqa: S608
        return cursor.fetchall()


def _both_paths(path: Path) -> dict[str, tuple[list, list, bool]]:
    """Per entity: (rows staged by the fast path, rows staged by the parser, fast taken)."""
    out = {}
    with open_feed(path) as feed:
        assert not feed.fatal, feed.errors
        for entity in feed.supplied_entities():
            plan = feed.plain_plan(entity)
            staging.staging_create([entity])
            taken = True
            try:
                fastcopy._copy_plain(entity, feed, plan.fields, plan.mode, plan.width)
            except fastcopy._Declined:
                taken = False
            fast = _staged(entity)
            staging.staging_create([entity])
            staging.staging_copy(entity, feed.rows(entity))
            out[entity] = (fast, _staged(entity), taken)
        assert feed.errors == []
    staging.staging_drop()
    return out


def _rewrite(path: Path, name: str, edit) -> Path:  # type: ignore[no-untyped-def]
    """A copy of the zip at ``path`` with one entry's bytes passed through ``edit``."""
    out = path.with_name(f"edited-{path.name}")
    with zipfile.ZipFile(path) as zin, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zout:
        for info in zin.infolist():
            data = zin.read(info.filename)
            zout.writestr(info.filename, edit(data) if info.filename == name else data)
    return out


def test_a_generated_district_stages_identically_through_the_fast_path(tmp_path):
    path = tmp_path / "district.zip"
    generate_district(path, students=60, seed=3)

    for entity, (fast, parsed, taken) in _both_paths(path).items():
        assert taken, entity
        assert fast == parsed, entity
        assert fast, entity


def test_a_delta_stages_identically_through_the_fast_path(tmp_path):
    generate_district(tmp_path / "district.zip", students=60, seed=3)
    path = tmp_path / "delta.zip"
    generate_delta(path, students=60, seed=3, fraction=0.2)

    for entity, (fast, parsed, taken) in _both_paths(path).items():
        assert taken, entity
        assert fast == parsed, entity


def test_quoting_lists_extensions_and_optional_values_read_alike(tmp_path):
    # given awkward but valid values: quoted commas and quotes, lists with spaces, ext:
    # enumerations, quoted empty fields, non-ASCII text, CRLF line ends and a BOM
    feed = small_district(students=3)
    feed["users"][1].update({"givenName": 'Zoë "Z", Jr', "grades": "07, 08", "userIds": " a ,b",
                             "agentSourcedIds": "s2 , s3", "middleName": ""})
    feed["orgs"][1]["type"] = "ext:academy"
    feed["classes"][0].update({"periods": "1,2", "subjects": "Maths, Further maths"})
    feed["academicSessions"][1]["title"] = "Autumn, first half"
    path = write_feed(tmp_path / "feed.zip", feed)
    path = _rewrite(path, "users.csv",
                    lambda data: b"\xef\xbb\xbf" + data.replace(b"\n", b"\r\n")
                    .replace(b",Pupil,", b',"Pupil",'))

    results = _both_paths(path)

    for entity, (fast, parsed, taken) in results.items():
        assert taken, entity
        assert fast == parsed, entity
    users = {row[2]: row for row in results["users"][0]}
    assert users["s1"][5 + staging.TABLES["users"].content.index("grades")] == ["07", "08"]


@pytest.mark.parametrize(
    "edit",
    [
        pytest.param(lambda d: d + b"\n", id="trailing blank line"),
        pytest.param(lambda d: d.replace(b"Tess", b'"Te\nss"'), id="quoted line break"),
        pytest.param(lambda d: d.replace(b"Tess", b'Te"ss'), id="quote inside a bare field"),
        pytest.param(lambda d: d.replace(b"teacher1", b'"teacher"1'), id="text after a quote"),
    ],
)
def test_what_the_fast_path_cannot_prove_goes_through_the_parser(tmp_path, edit):
    path = write_feed(tmp_path / "feed.zip", small_district(students=2))
    path = _rewrite(path, "users.csv", edit)

    with open_feed(path) as feed:
        staging.staging_create(["users"])
        with pytest.raises(fastcopy._DECLINED + (fastcopy._Declined,)):
            plan = feed.plain_plan("users")
            fastcopy._copy_plain("users", feed, plan.fields, plan.mode, plan.width)
    staging.staging_drop()


@pytest.mark.parametrize(
    ("column", "value", "code"),
    [
        ("dateLastModified", "2030-01-01T24:00:00Z", "BAD_DATETIME"),  # PostgreSQL reads it
        ("dateLastModified", "2030-01-01T10:00:60Z", "BAD_DATETIME"),
        ("dateLastModified", "2030-02-30T10:00:00Z", "BAD_DATETIME"),
    ],
)
def test_values_postgresql_would_accept_are_still_rejected(import_feed, column, value, code):
    feed = small_district(students=2)
    import_feed(feed)
    users = delta(feed["users"][:1])
    users[0][column] = value

    run = import_feed({"users": users}, mode="delta")

    assert run.state == ImportState.REJECTED
    errors = list(run.errors.values_list("file", "line", "column", "code"))
    assert errors == [("users.csv", 2, column, code)]


def test_a_long_guid_is_rejected_by_both_paths(import_feed):
    feed = small_district(students=2)
    feed["orgs"][0]["sourcedId"] = "d" * 256
    feed["orgs"][1]["parentSourcedId"] = "d" * 256

    run = import_feed({"orgs": feed["orgs"]})

    assert run.state == ImportState.REJECTED
    assert ("orgs.csv", 2, "sourcedId", "BAD_GUID") in set(
        run.errors.values_list("file", "line", "column", "code"))


def test_every_entity_of_the_schema_has_sql_checks():
    # a column type without a SQL check would make the fast path decline every such file
    kinds = {c.type for s in schema.SCHEMAS.values() for c in s.columns}
    assert kinds <= {schema.GUID, schema.GUID_LIST, schema.STRING, schema.STRING_LIST,
                     schema.DATE, schema.DATETIME, schema.YEAR, schema.BOOLEAN, schema.ENUM,
                     schema.DECIMAL, schema.INTEGER}


def test_the_rehash_migrations_hash_stored_rows_as_ingest_does(import_feed):
    # given an applied district whose stored hashes are then recomputed by migration 0004
    # (128 bits) and cut by migration 0008 (64 bits)
    import importlib

    full = importlib.import_module("apps.roster.migrations.0004_content_hash_record_hash")
    cut = importlib.import_module("apps.roster.migrations.0008_content_hash_64_bits")
    feed = small_district(students=3)
    first = import_feed(feed)
    with connection.cursor() as cursor:
        cursor.execute(full._rehash_sql())
        cursor.execute("SELECT DISTINCT length(content_hash) FROM roster_user")
        assert cursor.fetchall() == [(16,)]
        cursor.execute(cut._cut_sql())

    # when the same snapshot is imported again
    again = import_feed(feed)

    # then nothing changed: the migrations' hash is ingest's hash, column for column
    assert first.state == ImportState.APPLIED
    assert again.state == ImportState.NO_CHANGES
    assert set(full.CONTENT) == {t.table for t in staging.TABLES.values()}
    assert all(list(full.CONTENT[t.table]) == list(t.content)
               for t in staging.TABLES.values())


def test_a_date_that_matches_the_pattern_but_does_not_exist_is_reported_by_line(
    import_feed, tmp_path
):
    # given a bulk file whose second pupil was born on 30 February
    feed = small_district(students=2)
    feed["demographics"][1]["birthDate"] = "2012-02-30"

    # then the fast path declines it (the cast is computed while checking, not later)
    path = write_feed(tmp_path / "feed.zip", feed)
    with open_feed(path) as opened:
        staging.staging_create(["demographics"])
        plan = opened.plain_plan("demographics")
        with pytest.raises(fastcopy._DECLINED + (fastcopy._Declined,)):
            fastcopy._copy_plain("demographics", opened, plan.fields, plan.mode, plan.width)
    staging.staging_drop()

    # and the import reports the line and column
    run = import_feed(feed)
    assert run.state == ImportState.REJECTED
    assert list(run.errors.values_list("file", "line", "column", "code")) == [
        ("demographics.csv", 3, "birthDate", "BAD_DATE")]


@pytest.mark.parametrize(("begin", "end", "fast"), [
    ("2024-09-01", "2024-08-31", False),  # ends before it begins: left to the parser
    ("2024-09-01", "2024-09-01", True),
    ("2024-09-01", "", True),
])
def test_date_order_is_checked_on_the_fast_path(tmp_path, begin, end, fast):
    feed = small_district(students=2)
    feed["enrollments"][0]["beginDate"], feed["enrollments"][0]["endDate"] = begin, end
    path = write_feed(tmp_path / "feed.zip", feed)

    with open_feed(path) as opened:
        staging.staging_create(["enrollments"])
        plan = opened.plain_plan("enrollments")
        try:
            fastcopy._copy_plain("enrollments", opened, plan.fields, plan.mode, plan.width)
            taken = True
        except fastcopy._Declined:
            taken = False
    staging.staging_drop()

    assert taken is fast


def test_the_staging_view_declares_each_text_column_with_its_canonical_collation(
    tmp_path, monkeypatch
):
    # a stored column in another collation (a byte-wise sourcedId, say) gets staged values
    # of that collation, so comparing the two can still use the stored column's indexes
    field = staging.TABLES["orgs"].model._meta.get_field("sourced_id")
    monkeypatch.setattr(field, "db_collation", "C")

    columns = _staged_columns(tmp_path, "orgs")

    assert columns["sourced_id"].endswith('COLLATE "C"')
    assert columns["name"].endswith('COLLATE "default"')


def test_a_list_of_sourced_ids_is_staged_in_its_items_collation(tmp_path):
    # users' agents are stored byte-wise (their GIN index compares items that way): staged
    # lists declare the same, while other lists keep the database's collation
    columns = _staged_columns(tmp_path, "users")

    assert columns["agent_sourced_ids"].endswith('::text[] COLLATE "C"')
    assert columns["grades"].endswith('::text[] COLLATE "default"')


def _staged_columns(tmp_path, entity: str) -> dict[str, str]:  # type: ignore[no-untyped-def]
    """The staging view's typed value of each column of ``entity`` in a small district."""
    path = write_feed(tmp_path / "feed.zip", small_district(students=1))
    with open_feed(path) as opened:
        plan = opened.plain_plan(entity)
        columns, _ = fastcopy._typed_sql(entity, plan.fields, plan.mode)
    return columns


# Values of each kind the byte scan may meet: valid, invalid, empty, and the near misses
# PostgreSQL's own input functions would take.
SCAN_SAMPLES = {
    schema.DATE: ["2024-09-02", "2024-9-2", "2024-02-30", "20240902", " 2024-09-02",
                  "2024-09-02T00:00:00Z", ""],
    schema.DATETIME: ["2024-09-02T10:00:00Z", "2024-09-02T10:00:00.123456Z",
                      "2024-09-02T24:00:00Z", "2024-09-02T10:00:60Z",
                      "2024-09-02T10:00:00.1234567Z", "2024-09-02 10:00:00", ""],
    schema.YEAR: ["2025", "25", "20255", "２０２５", ""],
    schema.DECIMAL: ["1", "-1.5", ".5", "-.5", "1.", "1e3", "1234567890123456", "+1", ""],
    schema.INTEGER: ["12", "-3", "1.0", "1234567890123456789", "+3", ""],
    schema.BOOLEAN: ["true", "false", "TRUE", "yes", "1", ""],
    schema.ENUM: ["student", "Student", "ext:tutor", "ext:", "ext:x y", "guardian", ""],
    schema.GUID: ["abc-1", "a b", "x" * 256, "é", ""],
    schema.STRING: ["Ann", " ", ""],
}


@pytest.mark.parametrize("required", [True, False])
@pytest.mark.parametrize("kind", sorted(SCAN_SAMPLES))
def test_what_the_byte_scan_accepts_the_sql_check_accepts(kind, required):
    # the scan stands in for a SQL check only where it is at least as strict: a value it
    # lets through, bare or quoted, must pass the check it replaces
    from apps.roster.ingest.linescan import block_matcher
    from apps.roster.ingest.parse import scan_pattern
    from apps.roster.ingest.rowplan import Field

    column = schema.Column("x", kind, required,
                           enum=schema.ENROLLMENT_ROLES if kind == schema.ENUM else None,
                           allow_ext=kind == schema.ENUM)
    field = Field(0, 3, column, "x", required)
    pattern = scan_pattern(field)
    if pattern is None:
        return  # only SQL checks this kind (an optional string has no check at all)
    scans = block_matcher(pattern)  # the engine the scan uses
    _, check = fastcopy._column_sql(field)
    accepted = []
    for value in SCAN_SAMPLES[kind]:
        for written, stored in ((value, value or None), (f'"{value}"', value)):
            if scans(written.encode()):
                accepted.append(written)
                with connection.cursor() as cursor:
                    cursor.execute(f"SELECT coalesce(({check}), false) "  # noqa: S608
                                   f"FROM (SELECT %s::text AS c0) r", [stored])
                    assert cursor.fetchone()[0], (kind, required, written)
    assert accepted  # the scan does accept the kind's valid values


def _raw_types(entity: str) -> dict[str, str]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute "
            "WHERE attrelid = %s::regclass AND attnum > 0", [staging.TABLES[entity].raw_table])
        return dict(cursor.fetchall())


def test_dates_and_numbers_are_read_into_their_types_by_the_copy(tmp_path):
    # every line passes its fields' patterns: COPY itself types the dates (once, where each
    # read of the staging view cast them again), the rest stays the file's text
    path = write_feed(tmp_path / "feed.zip", small_district(students=2))
    with open_feed(path) as opened:
        staging.staging_create(["enrollments"])
        fastcopy.staging_load("enrollments", opened)
        types = _raw_types("enrollments")
        staged = _staged("enrollments")
    staging.staging_drop()

    plan_columns = {f.column.name: f"c{f.csv_index}" for f in plan_fields(path, "enrollments")}
    assert types[plan_columns["begin_date"]] == types[plan_columns["end_date"]] == "date"
    assert types[plan_columns["user_sourced_id"]] == "text"
    assert types[plan_columns["primary"]] == "text"  # booleans: only 'true' and 'false'
    assert staged and all(row[-2] is None or str(row[-2]) == "2024-09-02" for row in staged)


def plan_fields(path: Path, entity: str):  # type: ignore[no-untyped-def]
    with open_feed(path) as opened:
        return opened.plain_plan(entity).fields


@pytest.mark.parametrize("value", ["2024-9-2", "09/02/2024", " 2024-09-02"])
def test_a_date_copy_would_read_but_its_pattern_refuses_is_reported_by_line(import_feed,
                                                                            value):
    # PostgreSQL reads each of these as a date; the binding allows only YYYY-MM-DD. The
    # scan misses the line, so the file is staged again as text and checked there
    feed = small_district(students=2)
    feed["enrollments"][1]["beginDate"] = value

    run = import_feed(feed)

    assert run.state == ImportState.REJECTED
    assert list(run.errors.values_list("file", "line", "column", "code")) == [
        ("enrollments.csv", 3, "beginDate", "BAD_DATE")]
