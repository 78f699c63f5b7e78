"""Valid feeds parse into typed canonical rows; mapping rules translate 1.1 and SIS terms."""
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

from apps.roster import schema as S
from apps.roster.ingest import DEFAULT_RULES, FatalFeedError, MappingRules, open_feed
from apps.roster.ingest import errors as E
from tests.roster.corpus import (
    base_files,
    read_rows,
    set_field,
    set_header,
    write_rows,
    write_zip,
)


def _rows(feed, entity):
    return {row[0]: row for _, row in feed.rows(entity)}


def _as_dict(entity, row):
    return dict(zip(S.SCHEMAS[entity].column_names, row, strict=True))


def test_valid_v12_bulk_feed_parses_without_errors(tmp_path):
    path = write_zip(tmp_path / "feed.zip", base_files("1.2"))
    with open_feed(path) as feed:
        assert feed.version == "1.2"
        assert not feed.fatal
        assert feed.supplied_entities() == S.ENTITIES
        assert all(feed.mode(entity) == "bulk" for entity in S.ENTITIES)
        assert feed.mode("resources") == "absent"
        assert feed.source_system == ("TestSIS", "tsis")
        assert feed.validate() == []
        counts = {entity: sum(1 for _ in feed.rows(entity)) for entity in S.ENTITIES}
    assert counts["users"] == 4 and counts["enrollments"] == 4 and counts["roles"] == 4


def test_rows_are_typed_in_canonical_column_order(tmp_path):
    path = write_zip(tmp_path / "feed.zip", base_files("1.2"))
    with open_feed(path) as feed:
        users = _rows(feed, "users")
        sessions = _rows(feed, "academicSessions")
        classes = _rows(feed, "classes")
        results = _rows(feed, "results")
        demographics = _rows(feed, "demographics")
        categories = _rows(feed, "categories")
        lines = [line for line, _ in feed.rows("enrollments")]
    sam = _as_dict("users", users["user-s1"])
    assert sam["status"] is None and sam["date_last_modified"] is None
    assert sam["enabled_user"] is True
    assert sam["user_ids"] == ["{LDAP:ssmith}", "{LTI:abc}"]
    assert sam["agent_sourced_ids"] == ["user-g1"]
    assert sam["grades"] == ["07"]
    assert sam["middle_name"] == "Lee" and sam["password"] is None
    assert sam["primary_org_sourced_id"] == "org-school-2"
    assert _as_dict("users", users["user-g1"])["enabled_user"] is False
    term = _as_dict("academicSessions", sessions["as-2025-t1"])
    assert term["start_date"] == date(2024, 9, 1) and term["school_year"] == 2025
    assert _as_dict("classes", classes["class-math-7a"])["term_sourced_ids"] == [
        "as-2025-t1", "as-2025-t2"]
    assert _as_dict("classes", classes["class-math-7a"])["periods"] == ["1", "3"]
    graded = _as_dict("results", results["res-1"])
    assert graded["score"] == Decimal("8.5") and graded["late"] is False
    assert _as_dict("results", results["res-2"])["score"] is None
    assert _as_dict("demographics", demographics["user-s1"])["white"] is True
    assert _as_dict("categories", categories["cat-hw"])["weight"] == Decimal(30)
    assert lines == [2, 3, 4, 5]


def test_delta_rows_carry_status_and_a_utc_timestamp(tmp_path):
    path = write_zip(tmp_path / "delta.zip", base_files("1.2", mode="delta"))
    with open_feed(path) as feed:
        assert feed.mode("users") == "delta"
        org = _as_dict("orgs", _rows(feed, "orgs")["org-district"])
        assert feed.validate() == []
    assert org["status"] == "active"
    assert org["date_last_modified"] == datetime(2025, 3, 1, 8, 0, tzinfo=UTC)


def test_v11_users_become_canonical_users_and_roles(tmp_path):
    path = write_zip(tmp_path / "v11.zip", base_files("1.1"))
    with open_feed(path) as feed:
        assert feed.version == "1.1"
        assert "roles" in feed.supplied_entities()
        assert feed.derived_entities() == ["roles"]
        assert feed.mode("roles") == "bulk"
        users = _rows(feed, "users")
        roles = [(line, _as_dict("roles", row)) for line, row in feed.rows("roles")]
        line_items = _rows(feed, "lineItems")
        assert feed.validate() == []
    head = _as_dict("users", users["user-a1"])
    assert head["primary_org_sourced_id"] == "org-school-1"
    assert head["pronouns"] is None and head["preferred_given_name"] is None
    head_roles = [r for _, r in roles if r["user_sourced_id"] == "user-a1"]
    assert [(r["org_sourced_id"], r["role_type"], r["role"]) for r in head_roles] == [
        ("org-school-1", "primary", "siteAdministrator"),
        ("org-school-2", "secondary", "siteAdministrator"),
    ]
    parent = next(r for _, r in roles if r["user_sourced_id"] == "user-g1")
    assert parent["role"] == "parent"
    assert len(roles) == 6 and all(r["sourced_id"].startswith("v11role-") for _, r in roles)
    assert [line for line, r in roles if r["user_sourced_id"] == "user-a1"] == [3, 3]
    item = _as_dict("lineItems", line_items["li-1"])
    assert item["academic_session_sourced_id"] == "as-2025-t1"
    assert item["school_sourced_id"] is None


def test_v11_derived_role_ids_are_stable_across_imports(tmp_path):
    first = write_zip(tmp_path / "a.zip", base_files("1.1"))
    second = write_zip(tmp_path / "b.zip", base_files("1.1"))
    with open_feed(first) as a, open_feed(second) as b:
        assert [r for _, r in a.rows("roles")] == [r for _, r in b.rows("roles")]


def test_v11_legacy_inactive_status_reads_as_tobedeleted(tmp_path):
    files = set_field(base_files("1.1", mode="delta"), "users.csv", 2, "status", "inactive")
    path = write_zip(tmp_path / "v11.zip", files)
    with open_feed(path) as feed:
        teacher = _as_dict("users", _rows(feed, "users")["user-t1"])
        roles = [_as_dict("roles", r) for _, r in feed.rows("roles")]
        assert feed.errors == []
    assert teacher["status"] == "tobedeleted"
    assert {r["status"] for r in roles if r["user_sourced_id"] == "user-t1"} == {"tobedeleted"}


def test_ext_terms_are_accepted_where_the_binding_allows_them(tmp_path):
    files = set_field(base_files(), "classes.csv", 2, "classType", "ext:online")
    files = set_field(files, "roles.csv", 2, "role", "ext:HeadOfYear")
    path = write_zip(tmp_path / "feed.zip", files)
    with open_feed(path) as feed:
        assert feed.validate() == []
        assert _as_dict("roles", _rows(feed, "roles")["role-t1"])["role"] == "ext:HeadOfYear"


def test_mapping_rules_translate_sis_roles_before_validation(tmp_path):
    files = set_field(base_files(), "roles.csv", 2, "role", "ext:HeadOfYear")
    files = set_field(files, "roles.csv", 3, "role", "Learner")
    files = set_field(files, "enrollments.csv", 2, "role", "Lehrer")
    path = write_zip(tmp_path / "feed.zip", files)
    rules = MappingRules.from_dict({
        "role_map": {"ext:HeadOfYear": "teacher", "Learner": "student"},
        "enrollment_role_map": {"Lehrer": "teacher"},
    })
    with open_feed(path, rules=rules) as feed:
        roles = _rows(feed, "roles")
        enrollment = _as_dict("enrollments", _rows(feed, "enrollments")["enr-1"])
        assert feed.errors == []
    assert _as_dict("roles", roles["role-t1"])["role"] == "teacher"
    assert _as_dict("roles", roles["role-s1"])["role"] == "student"
    assert enrollment["role"] == "teacher"


def test_a_rule_cannot_map_into_an_invalid_term(tmp_path):
    files = set_field(base_files(), "roles.csv", 2, "role", "Learner")
    path = write_zip(tmp_path / "feed.zip", files)
    rules = MappingRules.from_dict({"role_map": {"Learner": "pupil"}})
    with open_feed(path, rules=rules) as feed:
        assert "role-t1" not in _rows(feed, "roles")
    assert [(e.code, e.line, e.column) for e in feed.errors] == [(E.BAD_ENUM, 2, "role")]


def test_v11_administrator_can_be_mapped_to_district_administrator(tmp_path):
    path = write_zip(tmp_path / "v11.zip", base_files("1.1"))
    rules = MappingRules.from_dict(
        {**DEFAULT_RULES.to_dict(), "role_map_v11": {"administrator": "districtAdministrator"}})
    with open_feed(path, rules=rules) as feed:
        roles = {_as_dict("roles", r)["role"] for _, r in feed.rows("roles")}
    assert "districtAdministrator" in roles and "siteAdministrator" not in roles


def test_mapping_rules_round_trip_and_refuse_unknown_keys():
    assert MappingRules.from_dict(DEFAULT_RULES.to_dict()) == DEFAULT_RULES
    with pytest.raises(ValueError):
        MappingRules.from_dict({"role_mapp": {}})
    with pytest.raises(ValueError):
        MappingRules.from_dict({"role_map": {"a": 1}})


def test_bom_crlf_quoted_newlines_and_metadata_columns_are_handled(tmp_path):
    files = base_files()
    rows = read_rows(files["orgs.csv"])
    rows[0].append("metadata.region")
    for row in rows[1:]:
        row.append("North")
    rows[2][3] = "Riverside\nPrimary, Annexe"  # a quoted field spanning two lines
    content = write_rows(rows).replace(b"\n", b"\r\n").replace(b"Riverside\r\nPrimary",
                                                                b"Riverside\nPrimary")
    files["orgs.csv"] = b"\xef\xbb\xbf" + content
    files = set_field(files, "users.csv", 3, "enabledUser", "maybe")  # an error after it
    path = write_zip(tmp_path / "feed.zip", files)
    with open_feed(path) as feed:
        assert feed.extension_headers("orgs") == ["metadata.region"]
        orgs = [(line, row[0], row[3]) for line, row in feed.rows("orgs")]
        assert feed.validate() == [
            e for e in feed.errors if e.file == "users.csv"
        ]
    assert orgs == [
        (2, "org-district", "Riverside District"),
        (3, "org-school-1", "Riverside\nPrimary, Annexe"),
        (5, "org-school-2", "Riverside High"),
    ]


def test_only_a_manifest_means_no_updates(tmp_path):
    path = write_zip(tmp_path / "empty.zip", {"manifest.csv": base_files()["manifest.csv"]
                     .replace(b",bulk", b",absent")})
    with open_feed(path) as feed:
        assert feed.no_updates
        assert feed.supplied_entities() == []
        assert feed.errors == []


def test_every_bad_row_is_reported_and_good_rows_still_stream(tmp_path):
    files = set_field(base_files(), "enrollments.csv", 2, "role", "pupil")
    files = set_field(files, "enrollments.csv", 4, "beginDate", "yesterday")
    files = set_field(files, "enrollments.csv", 4, "primary", "no")
    path = write_zip(tmp_path / "feed.zip", files)
    with open_feed(path) as feed:
        good = [row[0] for _, row in feed.rows("enrollments")]
    assert good == ["enr-2", "enr-4"]
    assert [(e.code, e.line, e.column) for e in feed.errors] == [
        (E.BAD_ENUM, 2, "role"), (E.BAD_BOOLEAN, 4, "primary"), (E.BAD_DATE, 4, "beginDate"),
    ]
    assert all(e.file == "enrollments.csv" and not feed.fatal for e in feed.errors)


def test_reading_a_file_twice_does_not_repeat_its_errors(tmp_path):
    files = set_field(base_files("1.1"), "users.csv", 2, "enabledUser", "nope")
    path = write_zip(tmp_path / "feed.zip", files)
    with open_feed(path) as feed:
        list(feed.rows("users"))
        list(feed.rows("roles"))  # 1.1 roles re-read users.csv
        list(feed.rows("users"))
    assert [(e.code, e.line) for e in feed.errors] == [(E.BAD_BOOLEAN, 2)]


def test_messages_never_echo_personal_values(tmp_path):
    files = set_field(base_files(), "demographics.csv", 2, "birthDate", "1990-02-30")
    files = set_field(files, "users.csv", 3, "enabledUser", "Sam Smith")
    path = write_zip(tmp_path / "feed.zip", files)
    with open_feed(path) as feed:
        errors = feed.validate()
    assert {e.code for e in errors} == {E.BAD_DATE, E.BAD_BOOLEAN}
    for error in errors:
        assert "1990" not in error.message and "Sam" not in error.message
        assert "user-s" in error.message  # the sourcedId identifies the record


def test_rows_of_a_fatal_feed_are_refused(tmp_path):
    files = set_header(base_files(), "orgs.csv", ["sourcedId", "name"])
    path = write_zip(tmp_path / "feed.zip", files)
    with open_feed(path) as feed:
        assert feed.fatal
        with pytest.raises(FatalFeedError):
            feed.rows("users")


def test_a_zip_bomb_found_mid_stream_stops_the_feed_without_raising(tmp_path):
    files = base_files()
    files["enrollments.csv"] += b"\n" * (16 * 1024 * 1024)
    path = write_zip(tmp_path / "bomb.zip", files)
    with open_feed(path) as feed:
        assert not feed.fatal  # nothing is inflated past the first block when opening
        assert len(list(feed.rows("orgs"))) == 3
        list(feed.rows("enrollments"))
        assert feed.fatal
        assert [(e.code, e.file) for e in feed.errors] == [(E.ZIP_BOMB, "enrollments.csv")]
        assert list(feed.rows("users")) == []

