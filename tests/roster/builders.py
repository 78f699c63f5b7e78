"""Build small, real OneRoster 1.2 zips for the apply-side tests.

A feed is a dict ``{entity: [row dict keyed by CSV header]}``; ``write_feed`` writes
it as a zip with a manifest (supplied files in the given mode, the rest absent).
``small_district()`` is a valid bulk set to mutate.
"""

from __future__ import annotations

import copy
import csv
import io
import zipfile
from pathlib import Path

from apps.roster import schema


def write_feed(
    path: Path, files: dict[str, list[dict]], *, mode: str = "bulk",
    modes: dict[str, str] | None = None,
) -> Path:
    modes = dict(modes or {})
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        manifest = io.StringIO()
        writer = csv.writer(manifest, lineterminator="\n")
        writer.writerow(["propertyName", "value"])
        writer.writerow(["manifest.version", "1.0"])
        writer.writerow(["oneroster.version", "1.2"])
        for entity in schema.ENTITIES:
            file_mode = modes.get(entity, mode) if entity in files else "absent"
            writer.writerow([f"file.{entity}", file_mode])
        archive.writestr("manifest.csv", manifest.getvalue())
        for entity, rows in files.items():
            headers = schema.SCHEMAS[entity].headers_v12
            out = io.StringIO()
            writer = csv.writer(out, lineterminator="\n")
            writer.writerow(headers)
            for row in rows:
                unknown = set(row) - set(headers)
                assert not unknown, f"{entity}: unknown headers {unknown}"
                writer.writerow([_text(row.get(h)) for h in headers])
            archive.writestr(f"{entity}.csv", out.getvalue())
    return path


def _text(value) -> str:  # type: ignore[no-untyped-def]
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple):
        return ",".join(value)
    return str(value)


def delta(rows: list[dict], *, status: str = "active",
          when: str = "2030-01-01T00:00:00.000Z") -> list[dict]:
    """The same rows as delta rows (status and dateLastModified set)."""
    return [{**row, "status": status, "dateLastModified": when} for row in rows]


def small_district(students: int = 4, prefix: str = "") -> dict[str, list[dict]]:
    """A valid 1.2 bulk set: a district, one school, a year and a term, one course and
    class, a teacher and ``students`` students, each enrolled, with roles and
    demographics. ``prefix`` keeps two districts' sourcedIds apart."""
    p = prefix
    users = [
        {"sourcedId": f"{p}t1", "enabledUser": "true", "username": f"{p}teacher1",
         "givenName": "Tess", "familyName": "Teacher", "primaryOrgSourcedId": f"{p}sch1"},
    ]
    roles = [
        {"sourcedId": f"{p}r-t1", "userSourcedId": f"{p}t1", "roleType": "primary",
         "role": "teacher", "orgSourcedId": f"{p}sch1"},
    ]
    enrollments = [
        {"sourcedId": f"{p}e-t1", "classSourcedId": f"{p}cls1", "schoolSourcedId": f"{p}sch1",
         "userSourcedId": f"{p}t1", "role": "teacher", "primary": "true"},
    ]
    demographics = []
    for i in range(1, students + 1):
        sid = f"{p}s{i}"
        users.append({"sourcedId": sid, "enabledUser": "true", "username": f"{p}student{i}",
                      "givenName": f"Student{i}", "familyName": "Pupil",
                      "primaryOrgSourcedId": f"{p}sch1", "grades": "07"})
        roles.append({"sourcedId": f"{p}r-{sid}", "userSourcedId": sid, "roleType": "primary",
                      "role": "student", "orgSourcedId": f"{p}sch1"})
        enrollments.append({"sourcedId": f"{p}e-{sid}", "classSourcedId": f"{p}cls1",
                            "schoolSourcedId": f"{p}sch1", "userSourcedId": sid,
                            "role": "student"})
        demographics.append({"sourcedId": sid, "birthDate": "2012-03-04", "sex": "female"})
    feed = {
        "orgs": [
            {"sourcedId": f"{p}dist", "name": "District", "type": "district"},
            {"sourcedId": f"{p}sch1", "name": "School One", "type": "school",
             "parentSourcedId": f"{p}dist"},
        ],
        "academicSessions": [
            {"sourcedId": f"{p}y2025", "title": "2024-25", "type": "schoolYear",
             "startDate": "2024-09-01", "endDate": "2025-07-31", "schoolYear": "2025"},
            {"sourcedId": f"{p}term1", "title": "Autumn", "type": "term",
             "startDate": "2024-09-01", "endDate": "2024-12-20",
             "parentSourcedId": f"{p}y2025", "schoolYear": "2025"},
        ],
        "courses": [
            {"sourcedId": f"{p}crs1", "title": "Maths 7", "orgSourcedId": f"{p}sch1",
             "schoolYearSourcedId": f"{p}y2025", "grades": "07"},
        ],
        "classes": [
            {"sourcedId": f"{p}cls1", "title": "7M1", "courseSourcedId": f"{p}crs1",
             "classType": "scheduled", "schoolSourcedId": f"{p}sch1",
             "termSourcedIds": f"{p}term1"},
        ],
        "users": users,
        "roles": roles,
        "enrollments": enrollments,
        "demographics": demographics,
    }
    return copy.deepcopy(feed)
