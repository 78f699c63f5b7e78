"""Deterministic synthetic OneRoster feeds shaped like a real district or trust.

    python -m benchmarks.generate_district --students 200000 --seed 1 --out var/district.zip
    python -m benchmarks.generate_district --students 200000 --seed 1 --delta 0.01 \
        --out var/district-delta.zip

The shape: one district, about one school per 600 students (two primary schools for each
secondary one), a school year with three terms of two grading periods each, courses per school,
grade and subject, classes per section of about 25 pupils (a homeroom or tutor group and the
subjects), six to eight enrollments per student, about one teacher per 15 students with the
classes spread over them, a principal per school, one or two guardians per student linked both
ways through agentSourcedIds, demographics, roles, a few user profiles, categories, line items,
results and score scales.

Everything is a pure function of (students, seed, index): nothing is held per student, every
file is streamed into the zip as it is generated, so memory stays flat at any size, and the
same arguments always produce the same bytes. ``generate_delta`` derives a delta feed (updates,
leavers with everything that references them, joiners, dropped classes) from the same
functions, so it is consistent with the bulk feed of the same arguments.
"""
from __future__ import annotations

import argparse
import bisect
import csv
import io
import json
import math
import sys
import time
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from apps.roster import schema as S

SECTION_SIZE = 25
STUDENTS_PER_SCHOOL = 600
STUDENTS_PER_TEACHER = 15
YEAR = 2025  # the school year 2024-2025 (OneRoster names a school year by the year it ends)
DOMAIN = "example.org"
STAMP = "2025-03-03T07:30:00.000Z"

PRIMARY_GRADES = ("KG", "01", "02", "03", "04", "05")
SECONDARY_GRADES = ("06", "07", "08", "09", "10", "11", "12")
PRIMARY_SUBJECTS = (
    ("Homeroom", "HR"), ("English", "EN"), ("Mathematics", "MA"), ("Science", "SC"),
    ("History", "HI"), ("Geography", "GE"), ("Art", "AR"), ("Music", "MU"),
)
SECONDARY_SUBJECTS = (
    ("Tutor group", "TG"), ("English", "EN"), ("Mathematics", "MA"), ("Biology", "BI"),
    ("Chemistry", "CH"), ("Physics", "PH"), ("History", "HI"), ("Geography", "GE"),
    ("French", "FR"), ("Computing", "CO"),
)
GIVEN = (
    "Amelia", "Oliver", "Isla", "George", "Ava", "Noah", "Mia", "Arthur", "Ivy", "Leo",
    "Freya", "Oscar", "Lily", "Harry", "Sophia", "Jack", "Grace", "Muhammad", "Aisha", "Zara",
    "Yusuf", "Priya", "Arjun", "Chen", "Mei", "Kwame", "Ama", "Mateo", "Sofia", "Lucas",
)
FAMILY = (
    "Smith", "Jones", "Williams", "Taylor", "Brown", "Davies", "Evans", "Wilson", "Thomas",
    "Johnson", "Roberts", "Walker", "Wright", "Robinson", "Thompson", "Patel", "Khan", "Ali",
    "Begum", "Nguyen", "Okafor", "Mensah", "Kowalski", "Novak", "Garcia", "Rossi", "Murphy",
    "Kelly", "Hughes", "Edwards",
)
PRONOUNS = ("she/her", "he/him", "they/them", "", "", "")
SEXES = ("female", "male", "female", "male", "unspecified", "other")
CATEGORIES = (("cat-homework", "Homework", "30"), ("cat-classwork", "Classwork", "20"),
              ("cat-tests", "Tests", "50"))
TERMS = (("t1", "Autumn term", "2024-09-02", "2024-12-20"),
         ("t2", "Spring term", "2025-01-06", "2025-04-04"),
         ("t3", "Summer term", "2025-04-22", "2025-07-22"))


def _mix(seed: int, salt: int, i: int) -> int:
    """A cheap, well-spread deterministic integer for (seed, salt, index)."""
    x = (i * 0x9E3779B1 + seed * 0x85EBCA77 + salt * 0xC2B2AE3D) & 0xFFFFFFFF
    x ^= x >> 15
    x = (x * 0x2C1B3C6D) & 0xFFFFFFFF
    x ^= x >> 12
    x = (x * 0x297A2D39) & 0xFFFFFFFF
    return x ^ (x >> 15)


@dataclass(frozen=True)
class Cohort:
    grade: str
    start: int  # first student index
    end: int  # one past the last
    sections: int
    base: int  # ordinal of the cohort's first class within its school


@dataclass(frozen=True)
class School:
    index: int
    sourced_id: str
    secondary: bool
    start: int
    end: int
    cohorts: tuple[Cohort, ...]
    subjects: tuple[tuple[str, str], ...]
    teachers: int

    @property
    def classes(self) -> int:
        return sum(c.sections for c in self.cohorts) * len(self.subjects)


class District:
    """The synthetic district: sizes and per-index record builders."""

    def __init__(self, students: int, seed: int = 1):
        if students < 1:
            raise ValueError("at least one student")
        self.students = students
        self.seed = seed
        count = max(1, round(students / STUDENTS_PER_SCHOOL))
        schools = []
        for s in range(count):
            start, end = s * students // count, (s + 1) * students // count
            secondary = count > 1 and s % 3 == 2
            grades = SECONDARY_GRADES if secondary else PRIMARY_GRADES
            subjects = SECONDARY_SUBJECTS if secondary else PRIMARY_SUBJECTS
            size = end - start
            cohorts = []
            base = 0
            for k, grade in enumerate(grades):
                c_start = start + k * size // len(grades)
                c_end = start + (k + 1) * size // len(grades)
                sections = max(1, math.ceil((c_end - c_start) / SECTION_SIZE))
                cohorts.append(Cohort(grade, c_start, c_end, sections, base))
                base += sections * len(subjects)
            teachers = max(1, math.ceil(size / STUDENTS_PER_TEACHER))
            schools.append(School(s, f"sch-{s}", secondary, start, end, tuple(cohorts),
                                  subjects, teachers))
        self.schools = tuple(schools)
        self._starts = [school.start for school in schools]

    # --- lookups --------------------------------------------------------------------------
    def school_of(self, i: int) -> School:
        return self.schools[bisect.bisect_right(self._starts, i) - 1]

    def placement(self, i: int) -> tuple[School, Cohort, int]:
        """(school, cohort, section) of student i."""
        school = self.school_of(i)
        for cohort in school.cohorts:
            if cohort.start <= i < cohort.end:
                section = min((i - cohort.start) // SECTION_SIZE, cohort.sections - 1)
                return school, cohort, section
        raise AssertionError("student outside every cohort")

    def subjects_of(self, i: int, school: School) -> list[int]:
        """Subject indexes student i takes: the homeroom plus 5 to 7 academic subjects."""
        academic = len(school.subjects) - 1
        n = 5 + _mix(self.seed, 1, i) % 3
        offset = _mix(self.seed, 2, i) % academic
        return [0] + sorted(1 + (offset + j) % academic for j in range(min(n, academic)))

    @staticmethod
    def class_id(school: School, cohort: Cohort, section: int, subject: int) -> str:
        return f"cls-{school.index}-{cohort.grade}-{section}-{school.subjects[subject][1]}"

    @staticmethod
    def ordinal(school: School, cohort: Cohort, section: int, subject: int) -> int:
        return cohort.base + section * len(school.subjects) + subject

    @staticmethod
    def has_line_item(ordinal: int, subject: int) -> bool:
        return subject > 0 and ordinal % 20 == 7

    def guardians_of(self, i: int) -> list[str]:
        return [f"gdn-{i}", f"gdn2-{i}"] if i % 5 == 0 else [f"gdn-{i}"]

    # --- names --------------------------------------------------------------------------------
    def _family(self, i: int) -> str:
        return FAMILY[_mix(self.seed, 3, i) % len(FAMILY)]

    def _given(self, salt: int, i: int) -> str:
        return GIVEN[_mix(self.seed, salt, i) % len(GIVEN)]

    # --- rows (1.2 column order; the writers adapt them for 1.1) ------------------------------
    def org_rows(self) -> Iterator[list]:
        yield ["dist-1", "", "", "Riverside Learning Trust", "district", "D0001", ""]
        for school in self.schools:
            kind = "Secondary" if school.secondary else "Primary"
            yield [school.sourced_id, "", "", f"Riverside {kind} School {school.index + 1}",
                   "school", f"S{school.index + 1:04d}", "dist-1"]

    def session_rows(self) -> Iterator[list]:
        year = f"as-{YEAR}"
        yield [year, "", "", f"{YEAR - 1}-{YEAR}", "schoolYear", "2024-09-02", "2025-07-22",
               "", str(YEAR)]
        for code, title, start, end in TERMS:
            yield [f"{year}-{code}", "", "", title, "term", start, end, year, str(YEAR)]
        for code, title, start, end in TERMS:
            middle = _midpoint(start, end)
            yield [f"{year}-{code}-gp1", "", "", f"{title} (first half)", "gradingPeriod",
                   start, middle, f"{year}-{code}", str(YEAR)]
            yield [f"{year}-{code}-gp2", "", "", f"{title} (second half)", "gradingPeriod",
                   middle, end, f"{year}-{code}", str(YEAR)]

    def course_rows(self) -> Iterator[list]:
        for school in self.schools:
            for cohort in school.cohorts:
                for name, code in school.subjects:
                    yield [f"crs-{school.index}-{cohort.grade}-{code}", "", "", f"as-{YEAR}",
                           f"{name} {cohort.grade}", f"{code}{cohort.grade}", cohort.grade,
                           school.sourced_id, name, code]

    def classes(self) -> Iterator[tuple[School, Cohort, int, int]]:
        for school in self.schools:
            for cohort in school.cohorts:
                for section in range(cohort.sections):
                    for subject in range(len(school.subjects)):
                        yield school, cohort, section, subject

    def class_rows(self) -> Iterator[list]:
        for school, cohort, section, subject in self.classes():
            name, code = school.subjects[subject]
            label = f"{cohort.grade}{chr(65 + section % 26)}{section // 26 or ''}"
            terms = (f"as-{YEAR}-t1,as-{YEAR}-t2,as-{YEAR}-t3" if subject % 2 == 0
                     else f"as-{YEAR}-t1,as-{YEAR}-t2")
            yield [self.class_id(school, cohort, section, subject), "", "",
                   f"{name} {label}", cohort.grade,
                   f"crs-{school.index}-{cohort.grade}-{code}", f"{label}/{code}",
                   "homeroom" if subject == 0 else "scheduled",
                   f"Room {1 + self.ordinal(school, cohort, section, subject) % 40}",
                   school.sourced_id, terms, name, code,
                   "" if subject == 0 else str(1 + subject % 6)]

    def student_row(self, i: int, *, changed: bool = False) -> list:
        school, cohort, _ = self.placement(i)
        given, family = self._given(4, i), self._family(i)
        username = f"{given.lower()}.{family.lower()}{i}"
        preferred = self._given(5, i) if changed or _mix(self.seed, 6, i) % 10 == 0 else ""
        return [f"stu-{i}", "", "", "true", username, f"{{MIS:{100000 + i}}}", given, family,
                "", f"P{i:07d}", f"{username}@pupils.{DOMAIN}", "", "",
                ",".join(self.guardians_of(i)), cohort.grade, "", f"UPN{i:09d}", preferred,
                "", "", school.sourced_id, PRONOUNS[_mix(self.seed, 7, i) % len(PRONOUNS)]]

    def guardian_row(self, sourced_id: str, i: int) -> list:
        school = self.school_of(i)
        second = sourced_id.startswith("gdn2-")
        given = self._given(8 if second else 9, i)
        family = self._family(i) if not second or i % 2 else self._family(i + 7)
        username = f"{given.lower()}.{family.lower()}.{sourced_id}"
        return [sourced_id, "", "", "true", username, "", given, family, "", "",
                f"{username}@home.{DOMAIN}", "", f"+44 7700 {i % 1000000:06d}", f"stu-{i}",
                "", "", "", "", "", "", school.sourced_id, ""]

    def teacher_row(self, school: School, t: int) -> list:
        n = school.index * 10_000 + t
        given, family = self._given(10, n), self._family(n + 3)
        username = f"{given[0].lower()}{family.lower()}{n}"
        return [f"tch-{school.index}-{t}", "", "", "true", username, f"{{LDAP:{username}}}",
                given, family, "", f"T{n:07d}", f"{username}@{DOMAIN}", "", "", "", "", "", "",
                "", "", "", school.sourced_id, ""]

    def user_rows(self) -> Iterator[tuple[list, str, str]]:
        """(users row, role, org) for every user, in file order."""
        yield (["adm-0", "", "", "true", "it.admin", "", "Robin", "Admin", "", "A0000001",
                f"it.admin@{DOMAIN}", "", "", "", "", "", "", "", "", "", "dist-1", ""],
               "districtAdministrator", "dist-1")
        for school in self.schools:
            yield ([f"prn-{school.index}", "", "", "true", f"head{school.index}", "",
                    self._given(11, school.index), self._family(school.index + 11), "", "",
                    f"head{school.index}@{DOMAIN}", "", "", "", "", "", "", "", "", "",
                    school.sourced_id, ""], "principal", school.sourced_id)
            for t in range(school.teachers):
                yield self.teacher_row(school, t), "teacher", school.sourced_id
        for i in range(self.students):
            school = self.school_of(i).sourced_id
            yield self.student_row(i), "student", school
            for guardian in self.guardians_of(i):
                yield self.guardian_row(guardian, i), "guardian", school

    def role_row(self, user: str, role: str, org: str, *, profile: bool = True) -> list:
        profile = f"upr-{user}" if profile and self._has_profile(user) else ""
        begin, end = ("2024-09-02", "2025-07-22") if role == "student" else ("", "")
        return [f"rol-{user}", "", "", user, "primary", role, begin, end, org, profile]

    @staticmethod
    def _has_profile(user: str) -> bool:
        return user.startswith("stu-") and user[4:].isdigit() and int(user[4:]) % 50 == 0

    def user_profile_row(self, i: int) -> list:
        user = f"stu-{i}"
        return [f"upr-{user}", "", "", user, "reading", "vendor-readwell", "readwell-app",
                "Reading app account", "password", f"rw-{i}", ""]

    def user_profile_rows(self) -> Iterator[list]:
        for i in range(0, self.students, 50):
            yield self.user_profile_row(i)

    def student_enrollments(self, i: int) -> Iterator[tuple[list, int, int]]:
        """(row, class ordinal, subject) of student i's enrollments."""
        school, cohort, section = self.placement(i)
        for subject in self.subjects_of(i, school):
            class_id = self.class_id(school, cohort, section, subject)
            yield ([f"enr-{i}-{subject}", "", "", class_id, school.sourced_id, f"stu-{i}",
                    "student", "", "", ""],
                   self.ordinal(school, cohort, section, subject), subject)

    def enrollment_rows(self) -> Iterator[list]:
        for school, cohort, section, subject in self.classes():
            ordinal = self.ordinal(school, cohort, section, subject)
            teacher = f"tch-{school.index}-{ordinal % school.teachers}"
            class_id = self.class_id(school, cohort, section, subject)
            yield [f"enr-t-{class_id}", "", "", class_id, school.sourced_id, teacher, "teacher",
                   "true", "2024-09-02", "2025-07-22"]
        for i in range(self.students):
            for row, _, _ in self.student_enrollments(i):
                yield row

    def demographic_row(self, i: int) -> list:
        _, cohort, _ = self.placement(i)
        age = 5 + (0 if cohort.grade == "KG" else int(cohort.grade))
        month, day = 1 + _mix(self.seed, 12, i) % 12, 1 + _mix(self.seed, 13, i) % 28
        flags = _mix(self.seed, 14, i)
        races = ["true" if flags >> bit & 7 == 0 else "false" for bit in range(0, 15, 3)]
        return [f"stu-{i}", "", "", f"{YEAR - 1 - age}-{month:02d}-{day:02d}",
                SEXES[_mix(self.seed, 15, i) % len(SEXES)], *races,
                "true" if races.count("true") > 1 else "false",
                "true" if flags >> 20 & 7 == 0 else "false", "GB", "", "", ""]

    def demographic_rows(self) -> Iterator[list]:
        for i in range(self.students):
            yield self.demographic_row(i)

    def category_rows(self) -> Iterator[list]:
        for sourced_id, title, weight in CATEGORIES:
            yield [sourced_id, "", "", title, weight]

    def line_items(self) -> Iterator[tuple[School, Cohort, int, int, str]]:
        for school, cohort, section, subject in self.classes():
            ordinal = self.ordinal(school, cohort, section, subject)
            if self.has_line_item(ordinal, subject):
                yield school, cohort, section, subject, self.class_id(
                    school, cohort, section, subject)

    def line_item_rows(self) -> Iterator[list]:
        for school, _, _, subject, class_id in self.line_items():
            yield [f"li-{class_id}", "", "", f"{school.subjects[subject][0]} assessment 1",
                   "End of unit test", "2024-10-07", "2024-10-18", class_id, "cat-tests",
                   f"as-{YEAR}-t1-gp1", "0", "100", school.sourced_id]

    def result_rows(self) -> Iterator[list]:
        for school, cohort, section, subject, class_id in self.line_items():
            first = cohort.start + section * SECTION_SIZE
            last = cohort.end if section == cohort.sections - 1 else first + SECTION_SIZE
            for i in range(first, last):
                if subject in self.subjects_of(i, school):
                    yield self.result_row(class_id, i)

    def result_row(self, class_id: str, i: int) -> list:
        score = _mix(self.seed, 16, i) % 101
        return [f"res-{class_id}-{i}", "", "", f"li-{class_id}", f"stu-{i}", "fully graded",
                str(score), "2024-10-21", "", "", class_id, "false", "false",
                "true" if score % 17 == 0 else "false", "false"]

    def score_scale_rows(self) -> Iterator[list]:
        for school in self.schools:
            cohort = school.cohorts[0]
            yield [f"ssc-{school.index}", "", "", "Attainment grades", "letter",
                   school.sourced_id, f"crs-{school.index}-{cohort.grade}-{school.subjects[1][1]}",
                   self.class_id(school, cohort, 0, 1),
                   "{A:80},{B:65},{C:50},{D:35},{E:0}"]


def _midpoint(start: str, end: str) -> str:
    from datetime import date
    a, b = date.fromisoformat(start), date.fromisoformat(end)
    return (a + (b - a) / 2).isoformat()


# --- writing ---------------------------------------------------------------------------------
_V11_USERS_DROP = ("userMasterIdentifier", "preferredGivenName", "preferredMiddleName",
                   "preferredFamilyName", "primaryOrgSourcedId", "pronouns")
_V11_ROLE = {"districtAdministrator": "administrator", "principal": "administrator",
             "guardian": "parent"}


def _v11_user(row: list, role: str, org: str) -> list:
    """A 1.2 users row and its role as the 1.1 users row."""
    header = S.SCHEMAS["users"].headers_v12
    values = dict(zip(header, row, strict=True))
    values["orgSourcedIds"] = org
    values["role"] = _V11_ROLE.get(role, role)
    return [values[h] for h in S.SCHEMAS["users"].headers_v11]


def _v11_project(entity: str, row: list) -> list:
    schema = S.SCHEMAS[entity]
    values = dict(zip(schema.headers_v12, row, strict=True))
    if entity == "lineItems":
        values["gradingPeriodSourcedId"] = values["academicSessionSourcedId"]
    return [values[h] for h in schema.headers_v11]


class _FeedWriter:
    """Streams CSV files into a zip, one entry at a time, and writes the manifest last."""

    def __init__(self, path: Path, version: str):
        self.version = version
        self.modes: dict[str, str] = {}
        self.counts: dict[str, int] = {}
        self._zip = zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=6)

    @staticmethod
    def _info(name: str) -> zipfile.ZipInfo:
        # A fixed timestamp keeps the archive byte-for-byte reproducible.
        info = zipfile.ZipInfo(name, date_time=(2025, 3, 3, 7, 30, 0))
        info.compress_type = zipfile.ZIP_DEFLATED
        info.external_attr = 0o644 << 16
        return info

    def write(self, entity: str, rows: Iterable[list], mode: str = "bulk") -> None:
        schema = S.SCHEMAS[entity]
        header = schema.headers(self.version)
        count = 0
        with self._zip.open(self._info(schema.file_name), "w", force_zip64=True) as raw:
            text = io.TextIOWrapper(raw, encoding="utf-8", newline="", write_through=False)
            writer = csv.writer(text, lineterminator="\n")
            writer.writerow(header)
            for row in rows:
                writer.writerow(row)
                count += 1
            text.flush()
            text.detach()
        self.modes[entity] = mode
        self.counts[entity] = count

    def close(self, system: str = "SyntheticSIS") -> None:
        lines = ["propertyName,value", "manifest.version,1.0", f"oneroster.version,{self.version}"]
        for entity in sorted(S.ALL_FILE_NAMES, key=str.lower):
            lines.append(f"file.{entity},{self.modes.get(entity, 'absent')}")
        lines += [f"source.systemName,{system}", "source.systemCode,synth"]
        self._zip.writestr(self._info(S.MANIFEST_FILE), "\n".join(lines) + "\n")
        self._zip.close()


def generate_district(path, *, students: int, seed: int = 1, version: str = "1.2") -> dict:
    """Write a bulk feed of a synthetic district to ``path``; return row counts per file."""
    if version not in S.VERSIONS:
        raise ValueError(f"version must be one of {S.VERSIONS}")
    district = District(students, seed)
    out = _FeedWriter(Path(path), version)
    v11 = version == "1.1"
    out.write("orgs", district.org_rows())
    out.write("academicSessions", district.session_rows())
    out.write("courses", district.course_rows())
    out.write("classes", district.class_rows())
    if v11:
        out.write("users", (_v11_user(*item) for item in district.user_rows()))
    else:
        out.write("users", (row for row, _, _ in district.user_rows()))
        out.write("userProfiles", district.user_profile_rows())
        out.write("roles", (district.role_row(row[0], role, org)
                            for row, role, org in district.user_rows()))
    out.write("enrollments", district.enrollment_rows())
    out.write("demographics", district.demographic_rows())
    out.write("categories", ([r[0], r[1], r[2], r[3]] if v11 else r
                             for r in district.category_rows()))
    out.write("lineItems", (_v11_project("lineItems", r) if v11 else r
                            for r in district.line_item_rows()))
    out.write("results", (_v11_project("results", r) if v11 else r
                          for r in district.result_rows()))
    if not v11:
        out.write("scoreScales", district.score_scale_rows())
    out.close()
    return dict(out.counts)


def generate_delta(path, *, students: int, seed: int = 1, fraction: float = 0.01,
                   version: str = "1.2", stamp: str = STAMP) -> dict:
    """Write a delta feed touching about ``fraction`` of the students of the same district.

    Per touched student, in turn: an update (preferred name), a dropped class (enrollment
    tobedeleted), a leaver (the student and every record that references them: guardians,
    roles, enrollments, demographics, results, all tobedeleted), a joiner (a new student with
    role, demographics and enrollments in an existing section).
    """
    if version not in S.VERSIONS:
        raise ValueError(f"version must be one of {S.VERSIONS}")
    district = District(students, seed)
    touched = max(4, int(students * fraction))
    step = max(1, students // touched)
    picks = [(n * step + _mix(seed, 17, n) % step) % students for n in range(touched)]
    users: list[list] = []
    roles: list[list] = []
    enrollments: list[list] = []
    demographics: list[list] = []
    results: list[list] = []
    profiles: list[list] = []

    def delta(row: list, status: str = "active") -> list:
        return [row[0], status, stamp, *row[3:]]

    def add_user(row: list, role: str, org: str, status: str = "active", *,
                 profile: bool = True) -> None:
        users.append(delta(_v11_user(row, role, org) if version == "1.1" else row, status))
        roles.append(delta(district.role_row(row[0], role, org, profile=profile), status))

    joiner = students
    for n, i in enumerate(picks):
        school = district.school_of(i)
        kind = n % 4
        if kind == 0:
            add_user(district.student_row(i, changed=True), "student", school.sourced_id)
        elif kind == 1:
            row, ordinal, subject = list(district.student_enrollments(i))[-1]
            if not district.has_line_item(ordinal, subject):
                enrollments.append(delta(row, "tobedeleted"))
            else:
                add_user(district.student_row(i, changed=True), "student", school.sourced_id)
        elif kind == 2:
            add_user(district.student_row(i), "student", school.sourced_id, "tobedeleted")
            for guardian in district.guardians_of(i):
                add_user(district.guardian_row(guardian, i), "guardian", school.sourced_id,
                         "tobedeleted")
            demographics.append(delta(district.demographic_row(i), "tobedeleted"))
            if district._has_profile(f"stu-{i}"):
                profiles.append(delta(district.user_profile_row(i), "tobedeleted"))
            for row, ordinal, subject in district.student_enrollments(i):
                enrollments.append(delta(row, "tobedeleted"))
                if district.has_line_item(ordinal, subject):
                    results.append(delta(district.result_row(row[3], i), "tobedeleted"))
        else:
            # A joiner takes the place of student i in i's section (new ids, same classes).
            new = joiner
            joiner += 1
            row = district.student_row(i)
            row[0], row[4] = f"stu-{new}", f"{row[4]}.j{new}"
            row[5], row[9], row[10] = f"{{MIS:{100000 + new}}}", f"P{new:07d}", ""
            row[13], row[16] = "", f"UPN{new:09d}"
            add_user(row, "student", school.sourced_id, profile=False)
            demo = district.demographic_row(i)
            demo[0] = f"stu-{new}"
            demographics.append(delta(demo))
            for enrollment, _, subject in district.student_enrollments(i):
                enrollment[0], enrollment[5] = f"enr-{new}-{subject}", f"stu-{new}"
                enrollments.append(delta(enrollment))
    out = _FeedWriter(Path(path), version)
    out.write("users", users, "delta")
    if version == "1.2":
        if profiles:
            out.write("userProfiles", profiles, "delta")
        out.write("roles", roles, "delta")
    if enrollments:
        out.write("enrollments", enrollments, "delta")
    if demographics:
        out.write("demographics", demographics, "delta")
    if results:
        out.write("results", ((_v11_project("results", r) if version == "1.1" else r)
                              for r in results), "delta")
    out.close()
    return dict(out.counts)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--students", type=int, required=True)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", required=True)
    parser.add_argument("--version", choices=S.VERSIONS, default="1.2")
    parser.add_argument("--delta", type=float, default=None, metavar="FRACTION",
                        help="write a delta feed touching this fraction of students instead")
    args = parser.parse_args(argv)
    started = time.monotonic()
    if args.delta is None:
        counts = generate_district(args.out, students=args.students, seed=args.seed,
                                   version=args.version)
    else:
        counts = generate_delta(args.out, students=args.students, seed=args.seed,
                                fraction=args.delta, version=args.version)
    json.dump({"out": str(args.out), "rows": counts, "total_rows": sum(counts.values()),
               "bytes": Path(args.out).stat().st_size,
               "seconds": round(time.monotonic() - started, 2)}, sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
