"""The synthetic district is valid OneRoster, consistent across files, realistic and repeatable."""
from collections import Counter, defaultdict

import pytest

from apps.roster import schema as S
from apps.roster.ingest import open_feed
from benchmarks.generate_district import generate_delta, generate_district

STUDENTS = 300

# (entity, canonical column) -> referenced entity, for every reference the generator writes.
REFERENCES = {
    ("orgs", "parent_sourced_id"): "orgs",
    ("academicSessions", "parent_sourced_id"): "academicSessions",
    ("courses", "school_year_sourced_id"): "academicSessions",
    ("courses", "org_sourced_id"): "orgs",
    ("classes", "course_sourced_id"): "courses",
    ("classes", "school_sourced_id"): "orgs",
    ("classes", "term_sourced_ids"): "academicSessions",
    ("users", "agent_sourced_ids"): "users",
    ("users", "primary_org_sourced_id"): "orgs",
    ("roles", "user_sourced_id"): "users",
    ("roles", "org_sourced_id"): "orgs",
    ("roles", "user_profile_sourced_id"): "userProfiles",
    ("userProfiles", "user_sourced_id"): "users",
    ("enrollments", "class_sourced_id"): "classes",
    ("enrollments", "school_sourced_id"): "orgs",
    ("enrollments", "user_sourced_id"): "users",
    ("demographics", "sourced_id"): "users",
    ("lineItems", "class_sourced_id"): "classes",
    ("lineItems", "category_sourced_id"): "categories",
    ("lineItems", "academic_session_sourced_id"): "academicSessions",
    ("lineItems", "school_sourced_id"): "orgs",
    ("results", "line_item_sourced_id"): "lineItems",
    ("results", "student_sourced_id"): "users",
    ("results", "class_sourced_id"): "classes",
    ("scoreScales", "org_sourced_id"): "orgs",
    ("scoreScales", "course_sourced_id"): "courses",
    ("scoreScales", "class_sourced_id"): "classes",
}


def _load(path):
    """{entity: {sourcedId: row dict}} of a feed that must parse without a single error."""
    with open_feed(path) as feed:
        data = {
            entity: {row[0]: dict(zip(S.SCHEMAS[entity].column_names, row, strict=True))
                     for _, row in feed.rows(entity)}
            for entity in feed.supplied_entities()
        }
        assert feed.errors == []
        return feed.version, data


def _dangling(data):
    missing = []
    for (entity, column), target in REFERENCES.items():
        for sid, row in data.get(entity, {}).items():
            refs = row[column] or []
            for ref in refs if isinstance(refs, list) else [refs]:
                if ref not in data.get(target, {}):
                    missing.append((entity, sid, column, ref))
    return missing


@pytest.mark.parametrize("version", ["1.2", "1.1"])
def test_generated_district_parses_with_zero_errors_and_no_dangling_reference(tmp_path,
                                                                              version):
    path = tmp_path / "district.zip"
    counts = generate_district(path, students=STUDENTS, seed=7, version=version)
    found, data = _load(path)
    assert found == version
    assert {e: len(rows) for e, rows in data.items() if e != "roles"} == {
        e: n for e, n in counts.items() if e != "roles"}
    assert _dangling(data) == []


def test_generated_district_is_shaped_like_a_real_one(tmp_path):
    path = tmp_path / "district.zip"
    generate_district(path, students=1800, seed=3)
    _, data = _load(path)
    roles = Counter(row["role"] for row in data["roles"].values())
    schools = [o for o in data["orgs"].values() if o["type"] == "school"]
    assert len(schools) == 3 and sum(o["type"] == "district" for o in data["orgs"].values()) == 1
    assert roles["student"] == 1800
    assert 1800 / 17 <= roles["teacher"] <= 1800 / 13
    assert roles["guardian"] >= 1800
    per_student = Counter(e["user_sourced_id"] for e in data["enrollments"].values()
                          if e["role"] == "student")
    assert len(per_student) == 1800
    assert set(per_student.values()) <= {6, 7, 8} and len(set(per_student.values())) == 3
    classes_per_teacher = Counter(e["user_sourced_id"] for e in data["enrollments"].values()
                                  if e["role"] == "teacher")
    assert min(classes_per_teacher.values()) >= 2
    session_types = Counter(s["type"] for s in data["academicSessions"].values())
    assert session_types == {"schoolYear": 1, "term": 3, "gradingPeriod": 6}
    grades = {c["grades"][0] for c in data["classes"].values()}
    assert "KG" in grades and "12" in grades  # primary and secondary schools
    assert len(data["demographics"]) == 1800
    assert data["lineItems"] and data["results"] and data["categories"]
    # guardians link both ways
    student = data["users"]["stu-0"]
    for guardian in student["agent_sourced_ids"]:
        assert data["users"][guardian]["agent_sourced_ids"] == ["stu-0"]


def test_generation_is_deterministic_and_seeded(tmp_path):
    a, b, c = tmp_path / "a.zip", tmp_path / "b.zip", tmp_path / "c.zip"
    generate_district(a, students=200, seed=1)
    generate_district(b, students=200, seed=1)
    generate_district(c, students=200, seed=2)
    assert a.read_bytes() == b.read_bytes()
    assert a.read_bytes() != c.read_bytes()


@pytest.mark.parametrize("version", ["1.2", "1.1"])
def test_delta_is_valid_and_consistent_with_its_bulk_feed(tmp_path, version):
    bulk, delta = tmp_path / "bulk.zip", tmp_path / "delta.zip"
    generate_district(bulk, students=STUDENTS, seed=5, version=version)
    counts = generate_delta(delta, students=STUDENTS, seed=5, fraction=0.05, version=version)
    _, before = _load(bulk)
    _, changes = _load(delta)
    with open_feed(delta) as feed:
        assert {feed.mode(e) for e in feed.supplied_entities()} == {"delta"}
    assert counts["users"] >= STUDENTS * 0.05 / 2
    statuses = Counter(row["status"] for rows in changes.values() for row in rows.values())
    assert set(statuses) == {"active", "tobedeleted"}
    # applying the delta to the bulk state leaves no dangling reference
    after = {entity: dict(rows) for entity, rows in before.items()}
    for entity, rows in changes.items():
        for sid, row in rows.items():
            if row["status"] == "tobedeleted":
                assert sid in after[entity], (entity, sid)
                del after[entity][sid]
            else:
                after.setdefault(entity, {})[sid] = row
    assert _dangling(after) == []
    new_students = [sid for sid in changes["users"] if sid not in before["users"]]
    assert new_students and all(sid.startswith("stu-") for sid in new_students)
    assert sum(1 for e in after["enrollments"].values()
               if e["user_sourced_id"] in new_students) >= 6 * len(new_students)


def test_roles_of_a_v11_district_are_derived_from_users(tmp_path):
    path = tmp_path / "district.zip"
    generate_district(path, students=STUDENTS, seed=7, version="1.1")
    _, data = _load(path)
    by_user = defaultdict(list)
    for row in data["roles"].values():
        by_user[row["user_sourced_id"]].append(row["role"])
    assert by_user["adm-0"] == ["siteAdministrator"]  # 1.1 "administrator" by default rules
    assert by_user["stu-0"] == ["student"] and by_user["gdn-0"] == ["parent"]
    assert len(by_user) == len(data["users"])
