# ruff: noqa: E501  (the CSV fixtures below are kept one record per line)
"""A small valid OneRoster feed (1.2 and 1.1) and a corpus of bad inputs built from it.

Every bad case is the valid base plus one small, named mutation, and says exactly which error
it must produce: (code, file, line, column). The parser tests run all of them; APPLY's tests
extend ``CASES`` with reference-level cases and assert that nothing was applied.

Feeds are described as ``{file name: bytes}``; ``write_zip`` packs them. Cases that need a
broken container write the archive themselves.
"""
from __future__ import annotations

import csv
import io
import struct
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from apps.roster import schema as S
from apps.roster.ingest import errors as E
from apps.roster.ingest.zipsafe import ZipLimits

Files = dict[str, bytes]


def _csv(text: str) -> bytes:
    return (text.strip("\n") + "\n").encode()


def manifest(version: str = "1.2", modes: dict[str, str] | None = None,
             extra: str = "source.systemName,TestSIS\nsource.systemCode,tsis\n") -> bytes:
    """A manifest listing every file of the binding; ``modes`` overrides entity modes."""
    modes = modes or {}
    lines = ["propertyName,value", "manifest.version,1.0", f"oneroster.version,{version}"]
    for entity in sorted(S.ALL_FILE_NAMES, key=str.lower):
        lines.append(f"file.{entity},{modes.get(entity, 'absent')}")
    return ("\n".join(lines) + "\n" + extra).encode()


V12_DATA: dict[str, bytes] = {
    "orgs.csv": _csv("""
sourcedId,status,dateLastModified,name,type,identifier,parentSourcedId
org-district,,,Riverside District,district,D001,
org-school-1,,,Riverside Primary,school,S001,org-district
org-school-2,,,Riverside High,school,S002,org-district
"""),
    "academicSessions.csv": _csv("""
sourcedId,status,dateLastModified,title,type,startDate,endDate,parentSourcedId,schoolYear
as-2025,,,2024-2025,schoolYear,2024-09-01,2025-07-31,,2025
as-2025-t1,,,Autumn,term,2024-09-01,2024-12-20,as-2025,2025
as-2025-t2,,,Spring,term,2025-01-06,2025-07-31,as-2025,2025
"""),
    "courses.csv": _csv("""
sourcedId,status,dateLastModified,schoolYearSourcedId,title,courseCode,grades,orgSourcedId,subjects,subjectCodes
course-math-7,,,as-2025,Mathematics 7,MA7,07,org-school-2,Mathematics,MA
course-eng-7,,,as-2025,English 7,EN7,"07,08",org-school-2,"English,Literature","EN,LIT"
"""),
    "classes.csv": _csv("""
sourcedId,status,dateLastModified,title,grades,courseSourcedId,classCode,classType,location,schoolSourcedId,termSourcedIds,subjects,subjectCodes,periods
class-math-7a,,,Maths 7A,07,course-math-7,7A/Ma,scheduled,Room 12,org-school-2,"as-2025-t1,as-2025-t2",Mathematics,MA,"1,3"
class-eng-7a,,,English 7A,07,course-eng-7,7A/En,homeroom,Room 4,org-school-2,as-2025-t1,English,EN,2
"""),
    "users.csv": _csv("""
sourcedId,status,dateLastModified,enabledUser,username,userIds,givenName,familyName,middleName,identifier,email,sms,phone,agentSourcedIds,grades,password,userMasterIdentifier,preferredGivenName,preferredMiddleName,preferredFamilyName,primaryOrgSourcedId,pronouns
user-t1,,,true,t.jones,{LDAP:tjones},Tom,Jones,,T001,t.jones@example.org,,,,,,,,,,org-school-2,he/him
user-s1,,,true,s.smith,"{LDAP:ssmith},{LTI:abc}",Sam,Smith,Lee,S001,s.smith@example.org,,,user-g1,07,,UMI-1,Sammy,,,org-school-2,
user-s2,,,true,a.brown,,Alex,Brown,,S002,,,,,07,,,,,,org-school-2,they/them
user-g1,,,false,g.smith,,Gill,Smith,,,g.smith@example.org,,+44 1234,user-s1,,,,,,,org-school-2,
"""),
    "userProfiles.csv": _csv("""
sourcedId,status,dateLastModified,userSourcedId,profileType,vendorId,applicationId,description,credentialType,username,password
profile-s1,,,user-s1,reading-app,vendor-1,app-1,Reading app login,password,ssmith-read,
"""),
    "roles.csv": _csv("""
sourcedId,status,dateLastModified,userSourcedId,roleType,role,beginDate,endDate,orgSourcedId,userProfileSourcedId
role-t1,,,user-t1,primary,teacher,2024-09-01,2025-07-31,org-school-2,
role-s1,,,user-s1,primary,student,,,org-school-2,profile-s1
role-s2,,,user-s2,primary,student,,,org-school-2,
role-g1,,,user-g1,primary,guardian,,,org-school-2,
"""),
    "enrollments.csv": _csv("""
sourcedId,status,dateLastModified,classSourcedId,schoolSourcedId,userSourcedId,role,primary,beginDate,endDate
enr-1,,,class-math-7a,org-school-2,user-t1,teacher,true,2024-09-01,2025-07-31
enr-2,,,class-math-7a,org-school-2,user-s1,student,false,,
enr-3,,,class-math-7a,org-school-2,user-s2,student,,,
enr-4,,,class-eng-7a,org-school-2,user-s1,student,,2024-09-01,2024-12-20
"""),
    "demographics.csv": _csv("""
sourcedId,status,dateLastModified,birthDate,sex,americanIndianOrAlaskaNative,asian,blackOrAfricanAmerican,nativeHawaiianOrOtherPacificIslander,white,demographicRaceTwoOrMoreRaces,hispanicOrLatinoEthnicity,countryOfBirthCode,stateOfBirthAbbreviation,cityOfBirth,publicSchoolResidenceStatus
user-s1,,,2012-05-14,male,false,false,false,false,true,false,false,GB,,Leeds,
user-s2,,,2012-11-02,unspecified,,,,,,,,,,,
"""),
    "categories.csv": _csv("""
sourcedId,status,dateLastModified,title,weight
cat-hw,,,Homework,30
cat-test,,,Tests,70
"""),
    "lineItems.csv": _csv("""
sourcedId,status,dateLastModified,title,description,assignDate,dueDate,classSourcedId,categorySourcedId,academicSessionSourcedId,resultValueMin,resultValueMax,schoolSourcedId
li-1,,,Fractions homework,Worksheet 3,2024-10-01,2024-10-08,class-math-7a,cat-hw,as-2025-t1,0,10,org-school-2
"""),
    "results.csv": _csv("""
sourcedId,status,dateLastModified,lineItemSourcedId,studentSourcedId,scoreStatus,score,scoreDate,comment,textScore,classSourcedId,inProgress,incomplete,late,missing
res-1,,,li-1,user-s1,fully graded,8.5,2024-10-09,Good work,,class-math-7a,false,false,false,false
res-2,,,li-1,user-s2,not submitted,,2024-10-09,,,class-math-7a,,,,true
"""),
    "scoreScales.csv": _csv("""
sourcedId,status,dateLastModified,title,type,orgSourcedId,courseSourcedId,classSourcedId,scoreScaleValue
ss-1,,,Grades A-C,letter,org-school-2,course-math-7,class-math-7a,"{A:90},{B:80},{C:70}"
"""),
}

V11_DATA: dict[str, bytes] = {
    **{k: v for k, v in V12_DATA.items()
       if k not in {"users.csv", "roles.csv", "userProfiles.csv", "scoreScales.csv",
                    "categories.csv", "lineItems.csv", "results.csv"}},
    "users.csv": _csv("""
sourcedId,status,dateLastModified,enabledUser,orgSourcedIds,role,username,userIds,givenName,familyName,middleName,identifier,email,sms,phone,agentSourcedIds,grades,password
user-t1,,,true,org-school-2,teacher,t.jones,{LDAP:tjones},Tom,Jones,,T001,t.jones@example.org,,,,,
user-a1,,,true,"org-school-1,org-school-2",administrator,h.head,,Hana,Head,,,,,,,,
user-s1,,,true,org-school-2,student,s.smith,,Sam,Smith,,S001,,,,user-g1,07,
user-s2,,,true,org-school-2,student,a.brown,,Alex,Brown,,S002,,,,,07,
user-g1,,,true,org-school-2,parent,g.smith,,Gill,Smith,,,,,,user-s1,,
"""),
    "categories.csv": _csv("""
sourcedId,status,dateLastModified,title
cat-hw,,,Homework
"""),
    "lineItems.csv": _csv("""
sourcedId,status,dateLastModified,title,description,assignDate,dueDate,classSourcedId,categorySourcedId,gradingPeriodSourcedId,resultValueMin,resultValueMax
li-1,,,Fractions homework,Worksheet 3,2024-10-01,2024-10-08,class-math-7a,cat-hw,as-2025-t1,0,10
"""),
    "results.csv": _csv("""
sourcedId,status,dateLastModified,lineItemSourcedId,studentSourcedId,scoreStatus,score,scoreDate,comment
res-1,,,li-1,user-s1,fully graded,8.5,2024-10-09,Good work
"""),
}


def base_files(version: str = "1.2", mode: str = "bulk") -> Files:
    """The valid base feed as {file name: bytes}, manifest included."""
    data = V12_DATA if version == "1.2" else V11_DATA
    modes = {name[:-4]: mode for name in data}
    files = dict(data)
    files[S.MANIFEST_FILE] = manifest(version, modes)
    if mode == "delta":
        for name in data:
            files[name] = _to_delta(files[name])
    return files


DELTA_STAMP = "2025-03-01T08:00:00.000Z"


def _to_delta(content: bytes) -> bytes:
    rows = read_rows(content)
    for row in rows[1:]:
        row[1], row[2] = "active", DELTA_STAMP
    return write_rows(rows)


def read_rows(content: bytes) -> list[list[str]]:
    return list(csv.reader(io.StringIO(content.decode("utf-8"), newline="")))


def write_rows(rows: list[list[str]]) -> bytes:
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows(rows)
    return out.getvalue().encode("utf-8")


def set_field(files: Files, name: str, line: int, column: str, value: str) -> Files:
    """Copy of ``files`` with one field changed (line 1 is the header row)."""
    rows = read_rows(files[name])
    rows[line - 1][rows[0].index(column)] = value
    return {**files, name: write_rows(rows)}


def set_header(files: Files, name: str, header: list[str]) -> Files:
    rows = read_rows(files[name])
    width = len(header)
    rows = [header] + [(row + [""] * width)[:width] for row in rows[1:]]
    return {**files, name: write_rows(rows)}


def drop(files: Files, *names: str) -> Files:
    return {k: v for k, v in files.items() if k not in names}


def write_zip(path: Path, files: Files, *, compression: int = zipfile.ZIP_DEFLATED) -> Path:
    with zipfile.ZipFile(path, "w", compression) as archive:
        for name, content in files.items():
            archive.writestr(name, content)
    return path


# --- cases -----------------------------------------------------------------------------------
@dataclass
class Case:
    """A bad feed and the error it must produce."""

    name: str
    make: Callable[[Path], Path]  # writes the zip into a directory, returns its path
    code: str
    file: str
    line: int | None
    column: str | None = None
    limits: ZipLimits | None = None
    fatal: bool = field(default=False)


CASES: list[Case] = []


def case(name: str, code: str, file: str, line: int | None, column: str | None = None, *,
         limits: ZipLimits | None = None, fatal: bool | None = None):
    """Register a case whose builder returns Files (zipped normally) or writes the zip."""
    def register(build: Callable[[], Files] | Callable[[Path], Path]):
        def make(directory: Path) -> Path:
            if build.__code__.co_argcount == 1:
                return build(directory)  # type: ignore[call-arg]
            return write_zip(directory / f"{name}.zip", build())  # type: ignore[call-arg]
        CASES.append(Case(name, make, code, file, line, column, limits,
                          fatal=code in E.FATAL_CODES if fatal is None else fatal))
        return build
    return register


def _raw_zip(directory: Path, name: str, entries: list[tuple[zipfile.ZipInfo | str, bytes]]
             ) -> Path:
    path = directory / f"{name}.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for info, content in entries:
            archive.writestr(info, content)
    return path


def _entries(files: Files) -> list[tuple[zipfile.ZipInfo | str, bytes]]:
    return list(files.items())


# Container ------------------------------------------------------------------------------------
@case("not_a_zip", E.NOT_A_ZIP, "", None)
def _(directory: Path) -> Path:
    path = directory / "not_a_zip.zip"
    path.write_bytes(b"sourcedId,status\nthis is a csv, not a zip\n")
    return path


@case("truncated_zip", E.NOT_A_ZIP, "", None)
def _(directory: Path) -> Path:
    path = write_zip(directory / "full.zip", base_files())
    cut = directory / "truncated_zip.zip"
    cut.write_bytes(path.read_bytes()[:-200])
    return cut


@case("dot_dot_entry", E.PATH_TRAVERSAL, "", None)
def _(directory: Path) -> Path:
    return _raw_zip(directory, "dot_dot_entry",
                    _entries(base_files()) + [("../orgs.csv", b"x")])


@case("absolute_entry", E.PATH_TRAVERSAL, "", None)
def _(directory: Path) -> Path:
    return _raw_zip(directory, "absolute_entry",
                    _entries(base_files()) + [("/etc/orgs.csv", b"x")])


@case("backslash_entry", E.PATH_TRAVERSAL, "", None)
def _(directory: Path) -> Path:
    return _raw_zip(directory, "backslash_entry",
                    _entries(base_files()) + [("..\\orgs.csv", b"x")])


@case("nested_folder", E.NESTED_FOLDER, "", None)
def _(directory: Path) -> Path:
    files = base_files()
    return _raw_zip(directory, "nested_folder",
                    [(f"export/{name}", content) for name, content in files.items()])


@case("directory_entry", E.NESTED_FOLDER, "", None)
def _(directory: Path) -> Path:
    return _raw_zip(directory, "directory_entry",
                    _entries(base_files()) + [(zipfile.ZipInfo("export/"), b"")])


@case("symlink_entry", E.SYMLINK_ENTRY, "", None)
def _(directory: Path) -> Path:
    link = zipfile.ZipInfo("courseResources.csv")
    link.create_system = 3
    link.external_attr = (0o120777 << 16)
    return _raw_zip(directory, "symlink_entry", _entries(base_files()) + [(link, b"/etc/passwd")])


@case("duplicate_entry", E.DUPLICATE_ENTRY, "", None)
def _(directory: Path) -> Path:
    import warnings
    files = base_files()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile warns about the duplicate name
        return _raw_zip(directory, "duplicate_entry",
                        _entries(files) + [("orgs.csv", files["orgs.csv"])])


@case("encrypted_entry", E.ENCRYPTED_ENTRY, "", None)
def _(directory: Path) -> Path:
    path = write_zip(directory / "encrypted_entry.zip", base_files())
    return _patch_flag(path, "orgs.csv", 0x1)


@case("bzip2_entry", E.UNSUPPORTED_COMPRESSION, "", None)
def _(directory: Path) -> Path:
    path = directory / "bzip2_entry.zip"
    with zipfile.ZipFile(path, "w") as archive:
        for name, content in base_files().items():
            archive.writestr(name, content, compress_type=zipfile.ZIP_BZIP2)
    return path


@case("unknown_file", E.UNKNOWN_FILE, "notes.txt", None)
def _() -> Files:
    return {**base_files(), "notes.txt": b"hello"}


@case("wrong_case_file_name", E.UNKNOWN_FILE, "Users.csv", None)
def _() -> Files:
    files = base_files()
    files["Users.csv"] = files.pop("users.csv")
    return files


@case("too_many_entries", E.TOO_MANY_ENTRIES, "", None, limits=ZipLimits(max_entries=5))
def _() -> Files:
    return base_files()


@case("ratio_bomb", E.ZIP_BOMB, "orgs.csv", None)
def _() -> Files:
    files = base_files()
    # 16 MiB of blank lines deflates to a few KiB: far above 200:1.
    return {**files, "orgs.csv": files["orgs.csv"] + b"\n" * (16 * 1024 * 1024)}


@case("declared_entry_too_big", E.ZIP_BOMB, "", None, limits=ZipLimits(max_entry_bytes=500))
def _() -> Files:
    return base_files()


@case("total_too_big", E.ZIP_BOMB, "", None, limits=ZipLimits(max_total_bytes=3000))
def _() -> Files:
    return base_files()


@case("lying_size_header", E.ZIP_BOMB, "orgs.csv", None,
      limits=ZipLimits(max_entry_bytes=4096, ratio_grace_bytes=1 << 30))
def _(directory: Path) -> Path:
    files = base_files()
    files["orgs.csv"] = files["orgs.csv"] + b"\n" * 100_000
    path = write_zip(directory / "lying_size_header.zip", files)
    return _patch_sizes(path, "orgs.csv", 200)


@case("crc_mismatch", E.CORRUPT_ENTRY, "orgs.csv", None)
def _(directory: Path) -> Path:
    path = write_zip(directory / "crc_mismatch.zip", base_files(),
                     compression=zipfile.ZIP_STORED)
    data = bytearray(path.read_bytes())
    at = data.find(b"Riverside High")
    data[at] = ord("r")
    path.write_bytes(bytes(data))
    return path


# Manifest and version -------------------------------------------------------------------------
@case("manifest_missing", E.MANIFEST_MISSING, "manifest.csv", None)
def _() -> Files:
    return drop(base_files(), "manifest.csv")


@case("oneroster_1_0_set", E.MANIFEST_MISSING, "manifest.csv", None)
def _() -> Files:
    keep = {"orgs.csv", "academicSessions.csv", "courses.csv", "classes.csv", "users.csv",
            "enrollments.csv", "demographics.csv"}
    return {k: v for k, v in V11_DATA.items() if k in keep}


@case("manifest_bad_header", E.MANIFEST_INVALID, "manifest.csv", 1)
def _() -> Files:
    files = base_files()
    return {**files, "manifest.csv": files["manifest.csv"].replace(b"propertyName,value",
                                                                    b"property,value", 1)}


@case("manifest_unsupported_version", E.UNSUPPORTED_VERSION, "manifest.csv", None)
def _() -> Files:
    files = base_files()
    return {**files, "manifest.csv": files["manifest.csv"].replace(
        b"oneroster.version,1.2", b"oneroster.version,1.3")}


@case("manifest_bad_mode", E.MANIFEST_INVALID, "manifest.csv", 24, "value")
def _() -> Files:
    files = base_files()
    return {**files, "manifest.csv": files["manifest.csv"].replace(
        b"file.users,bulk", b"file.users,full")}


@case("manifest_bad_manifest_version", E.MANIFEST_INVALID, "manifest.csv", 2, "value")
def _() -> Files:
    files = base_files()
    return {**files, "manifest.csv": files["manifest.csv"].replace(
        b"manifest.version,1.0", b"manifest.version,2.0")}


@case("manifest_duplicate_property", E.MANIFEST_INVALID, "manifest.csv", 27, "propertyName")
def _() -> Files:
    files = base_files()
    return {**files, "manifest.csv": files["manifest.csv"] + b"file.orgs,bulk\n"}


@case("manifest_unknown_file", E.MANIFEST_INVALID, "manifest.csv", 27, "propertyName")
def _() -> Files:
    files = base_files()
    return {**files, "manifest.csv": files["manifest.csv"] + b"file.gradebooks,bulk\n"}


@case("manifest_lists_missing_file", E.MANIFEST_MISMATCH, "manifest.csv", 24, "value")
def _() -> Files:
    return drop(base_files(), "users.csv")


@case("file_not_in_manifest", E.MANIFEST_MISMATCH, "users.csv", None)
def _() -> Files:
    files = base_files()
    return {**files, "manifest.csv": files["manifest.csv"].replace(
        b"file.users,bulk", b"file.users,absent")}


@case("v12_file_in_v11_feed", E.FILE_NOT_IN_VERSION, "roles.csv", None)
def _() -> Files:
    files = base_files("1.1")
    files["roles.csv"] = V12_DATA["roles.csv"]
    files["manifest.csv"] = files["manifest.csv"].replace(b"file.roles,absent",
                                                          b"file.roles,bulk")
    return files


@case("unsupported_resources_file", E.UNSUPPORTED_FILE, "resources.csv", None)
def _() -> Files:
    files = base_files()
    files["resources.csv"] = _csv(
        "sourcedId,status,dateLastModified,vendorResourceId,title,roles,importance,vendorId,"
        "applicationId\nres-a,,,vr-1,Atlas,student,primary,v1,\n")
    files["manifest.csv"] = files["manifest.csv"].replace(b"file.resources,absent",
                                                          b"file.resources,bulk")
    return files


# Headers -------------------------------------------------------------------------------------
_USERS_HEADER = list(S.SCHEMAS["users"].headers_v12)
_ORGS_HEADER = list(S.SCHEMAS["orgs"].headers_v12)


@case("header_wrong_case", E.HEADER_CASE, "users.csv", 1, "givenname")
def _() -> Files:
    header = [("givenname" if h == "givenName" else h) for h in _USERS_HEADER]
    return set_header(base_files(), "users.csv", header)


@case("header_missing_column", E.HEADER_MISSING, "orgs.csv", 1, "identifier")
def _() -> Files:
    return set_header(base_files(), "orgs.csv", [h for h in _ORGS_HEADER if h != "identifier"])


@case("header_out_of_order", E.HEADER_MISMATCH, "orgs.csv", 1, "type")
def _() -> Files:
    header = list(_ORGS_HEADER)
    header[3], header[4] = header[4], header[3]
    return set_header(base_files(), "orgs.csv", header)


@case("header_duplicate", E.HEADER_DUPLICATE, "orgs.csv", 1, "name")
def _() -> Files:
    return set_header(base_files(), "orgs.csv", _ORGS_HEADER + ["name"])


@case("header_extension_not_metadata", E.HEADER_MISMATCH, "orgs.csv", 1, "localCode")
def _() -> Files:
    return set_header(base_files(), "orgs.csv", _ORGS_HEADER + ["localCode"])


@case("header_metadata_not_last", E.HEADER_MISMATCH, "orgs.csv", 1, "parentSourcedId")
def _() -> Files:
    header = _ORGS_HEADER[:-1] + ["metadata.region", "parentSourcedId"]
    return set_header(base_files(), "orgs.csv", header)


@case("header_v11_users_in_v12_feed", E.VERSION_MISMATCH, "users.csv", 1)
def _() -> Files:
    return {**base_files(), "users.csv": V11_DATA["users.csv"]}


@case("empty_file", E.EMPTY_FILE, "courses.csv", None)
def _() -> Files:
    return {**base_files(), "courses.csv": b""}


@case("header_only", E.NO_ROWS, "categories.csv", None)
def _() -> Files:
    return {**base_files(), "categories.csv": b"sourcedId,status,dateLastModified,title,weight\n"}


@case("header_too_wide", E.HEADER_MISMATCH, "orgs.csv", 1)
def _() -> Files:
    return set_header(base_files(), "orgs.csv",
                      _ORGS_HEADER + [f"metadata.x{n}" for n in range(600)])


# Encoding and CSV structure -------------------------------------------------------------------
@case("utf16_file", E.NOT_UTF8, "users.csv", 1, fatal=True)  # its header is unreadable
def _() -> Files:
    files = base_files()
    return {**files, "users.csv": files["users.csv"].decode().encode("utf-16")}


@case("manifest_not_utf8", E.MANIFEST_INVALID, "manifest.csv", None)
def _() -> Files:
    files = base_files()
    return {**files, "manifest.csv": files["manifest.csv"].replace(b"TestSIS", b"Test\xffSIS")}


@case("record_spans_too_many_lines", E.CSV_MALFORMED, "classes.csv", 3,
      limits=ZipLimits(max_record_lines=3))
def _() -> Files:
    return set_field(base_files(), "classes.csv", 3, "location", "a\nb\nc\nd\ne")


@case("latin1_bytes", E.NOT_UTF8, "users.csv", 3)
def _() -> Files:
    files = base_files()
    return {**files, "users.csv": files["users.csv"].replace(b"Sam,Smith", b"S\xe9m,Smith")}


@case("nul_byte", E.NUL_BYTE, "orgs.csv", 3)
def _() -> Files:
    files = base_files()
    return {**files, "orgs.csv": files["orgs.csv"].replace(b"Riverside Primary",
                                                           b"Riverside\x00Primary")}


@case("field_too_long", E.FIELD_TOO_LONG, "classes.csv", 3,
      limits=ZipLimits(max_field_chars=1000))
def _() -> Files:
    return set_field(base_files(), "classes.csv", 3, "location", "x" * 5000)


@case("line_too_long", E.LINE_TOO_LONG, "enrollments.csv", 4,
      limits=ZipLimits(max_line_bytes=2000))
def _() -> Files:
    return set_field(base_files(), "enrollments.csv", 4, "beginDate", "y" * 10_000)


@case("extra_field", E.COLUMN_COUNT, "enrollments.csv", 3)
def _() -> Files:
    files = base_files()
    rows = read_rows(files["enrollments.csv"])
    rows[2].append("surplus")
    return {**files, "enrollments.csv": write_rows(rows)}


@case("stray_quote", E.CSV_MALFORMED, "courses.csv", 2)
def _() -> Files:
    files = base_files()
    return {**files, "courses.csv": files["courses.csv"].replace(
        b"Mathematics 7,", b'"Mathematics" 7,', 1)}


@case("too_many_rows", E.TOO_MANY_ROWS, "enrollments.csv", None,
      limits=ZipLimits(max_rows=3))
def _() -> Files:
    return base_files()


# Rows -------------------------------------------------------------------------------------------
def _field_case(name: str, code: str, file: str, line: int, column: str, value: str, *,
                version: str = "1.2", mode: str = "bulk") -> None:
    @case(name, code, file, line, column)
    def build() -> Files:
        return set_field(base_files(version, mode), file, line, column, value)


_field_case("required_given_name_empty", E.REQUIRED_MISSING, "users.csv", 3, "givenName", "")
_field_case("required_term_empty", E.REQUIRED_MISSING, "classes.csv", 2, "termSourcedIds", "")
_field_case("guid_with_space", E.BAD_GUID, "users.csv", 4, "sourcedId", "user s2")
_field_case("guid_too_long", E.BAD_GUID, "orgs.csv", 2, "sourcedId", "o" * 256)
_field_case("guid_reference_with_hash", E.BAD_GUID, "enrollments.csv", 2, "userSourcedId",
            "user#t1")
_field_case("guid_list_empty_item", E.BAD_GUID, "classes.csv", 2, "termSourcedIds",
            "as-2025-t1,,as-2025-t2")
_field_case("impossible_date", E.BAD_DATE, "academicSessions.csv", 3, "startDate", "2024-13-01")
_field_case("date_wrong_format", E.BAD_DATE, "enrollments.csv", 2, "beginDate", "01/09/2024")
_field_case("boolean_yes", E.BAD_BOOLEAN, "users.csv", 2, "enabledUser", "yes")
_field_case("boolean_capitalised", E.BAD_BOOLEAN, "demographics.csv", 2, "asian", "True")
_field_case("org_type_misspelt", E.BAD_ENUM, "orgs.csv", 3, "type", "scool")
_field_case("role_type_ext_not_allowed", E.BAD_ENUM, "roles.csv", 2, "roleType", "ext:main")
_field_case("ext_prefix_alone", E.BAD_ENUM, "classes.csv", 2, "classType", "ext:")
_field_case("enrollment_role_guardian", E.BAD_ENUM, "enrollments.csv", 3, "role", "guardian")
_field_case("score_status_unknown", E.BAD_ENUM, "results.csv", 2, "scoreStatus", "graded")
_field_case("session_ends_before_start", E.DATE_ORDER, "academicSessions.csv", 3, "endDate",
            "2024-08-01")
_field_case("role_ends_before_begin", E.DATE_ORDER, "roles.csv", 2, "endDate", "2024-01-01")
_field_case("line_item_due_before_assigned", E.DATE_ORDER, "lineItems.csv", 2, "dueDate",
            "2024-09-30")
_field_case("bulk_row_with_status", E.BAD_STATUS, "orgs.csv", 2, "status", "active")
_field_case("bulk_row_with_date_last_modified", E.BAD_STATUS, "courses.csv", 3,
            "dateLastModified", "2025-01-01T00:00:00.000Z")
_field_case("delta_row_without_date", E.BAD_STATUS, "users.csv", 2, "dateLastModified", "",
            mode="delta")
_field_case("delta_status_unknown", E.BAD_ENUM, "classes.csv", 3, "status", "deleted",
            mode="delta")
_field_case("delta_inactive_in_v12", E.BAD_ENUM, "orgs.csv", 2, "status", "inactive",
            mode="delta")
_field_case("datetime_with_space", E.BAD_DATETIME, "enrollments.csv", 2, "dateLastModified",
            "2025-03-01 08:00:00", mode="delta")
_field_case("datetime_not_utc", E.BAD_DATETIME, "roles.csv", 3, "dateLastModified",
            "2025-03-01T08:00:00.000+01:00", mode="delta")
_field_case("school_year_two_digits", E.BAD_YEAR, "academicSessions.csv", 2, "schoolYear", "25")
_field_case("score_in_words", E.BAD_NUMBER, "results.csv", 2, "score", "eight")
_field_case("weight_nan", E.BAD_NUMBER, "categories.csv", 3, "weight", "NaN")
# 14 digits before the point: more than a stored score can hold once rounded to 6 places
_field_case("score_too_large_to_store", E.BAD_NUMBER, "results.csv", 2, "score",
            "12345678901234")
_field_case("grades_empty_item", E.BAD_LIST, "courses.csv", 3, "grades", "07,,08")
_field_case("v11_role_unknown", E.BAD_ENUM, "users.csv", 3, "role", "headteacher",
            version="1.1")
_field_case("v11_orgs_missing", E.REQUIRED_MISSING, "users.csv", 2, "orgSourcedIds", "",
            version="1.1")
_field_case("v11_result_without_score", E.REQUIRED_MISSING, "results.csv", 2, "score", "",
            version="1.1")


# --- archive patching helpers ------------------------------------------------------------------
def _patch_flag(path: Path, name: str, flag: int) -> Path:
    """Set a general-purpose flag bit on an entry, in its local and central headers."""
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as archive:
        info = archive.getinfo(name)
    local = info.header_offset
    struct.pack_into("<H", data, local + 6, info.flag_bits | flag)
    central = _central_offset(data, name)
    struct.pack_into("<H", data, central + 8, info.flag_bits | flag)
    path.write_bytes(bytes(data))
    return path


def _patch_sizes(path: Path, name: str, size: int) -> Path:
    """Make an entry declare a false uncompressed size (local and central headers)."""
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as archive:
        info = archive.getinfo(name)
    struct.pack_into("<L", data, info.header_offset + 22, size)
    struct.pack_into("<L", data, _central_offset(data, name) + 24, size)
    path.write_bytes(bytes(data))
    return path


def _central_offset(data: bytearray, name: str) -> int:
    needle = b"PK\x01\x02"
    at = data.find(needle)
    while at >= 0:
        name_len = struct.unpack_from("<H", data, at + 28)[0]
        if bytes(data[at + 46:at + 46 + name_len]) == name.encode():
            return at
        at = data.find(needle, at + 4)
    raise KeyError(name)
