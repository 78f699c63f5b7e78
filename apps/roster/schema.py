"""The OneRoster CSV shapes the hub reads, and the canonical row shape it keeps.

This module is the contract between parsing (apps/roster/ingest/parse.py) and applying
(staging, SQL validation, apply). It is pure Python on purpose: models, COPY statements and
the parser are all derived from it, so a column is named and typed in exactly one place.

- ``headers_v12`` / ``headers_v11`` are the exact header rows of the OneRoster CSV binding
  (1.2.1 and 1.1), in spec order; the parser compares header rows against them verbatim.
- ``columns`` are the canonical columns, in order. A canonical row is a tuple of the values in
  that order, already typed (str, list[str], date, datetime, bool, Decimal, int or None), i.e.
  what psycopg 3 ``copy.write_row()`` accepts. The canonical shape is OneRoster 1.2; a 1.1 feed
  is mapped into it (1.1 ``users.role``/``orgSourcedIds`` become ``roles`` rows).
- ``Column.required`` is the 1.2 requirement. A column a 1.1 file cannot supply (see
  ``EntitySchema.v11_absent``) may be None in rows parsed from a 1.1 feed even when required.
- ``status`` and ``date_last_modified`` are None in bulk rows and set in delta rows.
"""
from __future__ import annotations

from dataclasses import dataclass, field

# Column types.
GUID = "guid"
GUID_LIST = "guid_list"
STRING = "string"
STRING_LIST = "string_list"
DATE = "date"
DATETIME = "datetime"
YEAR = "year"
BOOLEAN = "boolean"
ENUM = "enum"
DECIMAL = "decimal"
INTEGER = "integer"
TYPES = frozenset(
    {GUID, GUID_LIST, STRING, STRING_LIST, DATE, DATETIME, YEAR, BOOLEAN, ENUM, DECIMAL, INTEGER}
)
LIST_TYPES = frozenset({GUID_LIST, STRING_LIST})

# Enumerations (1.2.1 binding). Where ``allow_ext`` is set, ``ext:``-prefixed terms are valid too.
STATUS_VALUES = frozenset({"active", "tobedeleted"})
ORG_TYPES = frozenset({"department", "school", "district", "local", "state", "national"})
SESSION_TYPES = frozenset({"gradingPeriod", "semester", "schoolYear", "term"})
CLASS_TYPES = frozenset({"homeroom", "scheduled"})
ROLE_TYPES = frozenset({"primary", "secondary"})
ROLES = frozenset(
    {
        "aide", "counselor", "districtAdministrator", "guardian", "parent", "principal",
        "proctor", "relative", "siteAdministrator", "student", "systemAdministrator", "teacher",
    }
)
ROLES_V11 = frozenset(
    {"administrator", "aide", "guardian", "parent", "proctor", "relative", "student", "teacher"}
)
ENROLLMENT_ROLES = frozenset({"administrator", "proctor", "student", "teacher"})
SEX_VALUES = frozenset({"male", "female", "unspecified", "other"})
SCORE_STATUSES = frozenset(
    {"exempt", "fully graded", "not submitted", "partially graded", "submitted"}
)
EXT_PREFIX = "ext:"
METADATA_PREFIX = "metadata."

MANIFEST_FILE = "manifest.csv"
MANIFEST_HEADERS = ("propertyName", "value")
MODES = ("bulk", "delta", "absent")
VERSIONS = ("1.1", "1.2")


@dataclass(frozen=True)
class Column:
    """One canonical column: snake_case name, type, 1.2 requirement, enumeration."""

    name: str
    type: str
    required: bool
    enum: frozenset[str] | None = None
    allow_ext: bool = False
    header: str = ""  # the 1.2 CSV header this column is read from

    def __post_init__(self) -> None:
        if self.type not in TYPES:
            raise ValueError(f"unknown column type {self.type!r} for {self.name}")
        if (self.type == ENUM) != (self.enum is not None):
            raise ValueError(f"enum values must be given exactly for enum column {self.name}")


@dataclass(frozen=True)
class EntitySchema:
    """One OneRoster CSV file and the canonical columns it fills."""

    name: str
    file_name: str
    headers_v12: tuple[str, ...]
    columns: tuple[Column, ...]
    # None: the file does not exist in 1.1. Equal to headers_v12 where 1.1 is the same.
    headers_v11: tuple[str, ...] | None = None
    # 1.1 header -> canonical column name, where the 1.1 header differs from the 1.2 one.
    v11_renames: dict[str, str] = field(default_factory=dict)
    # Canonical columns that a 1.1 file cannot supply (None in rows from a 1.1 feed).
    v11_absent: frozenset[str] = frozenset()
    # 1.1 columns with no canonical home in this entity (mapped elsewhere, e.g. users -> roles).
    v11_extra: frozenset[str] = frozenset()
    # Canonical required columns that 1.1 treats differently (required there, optional in 1.2).
    v11_required_extra: frozenset[str] = frozenset()
    # (start, end) canonical column pairs that must satisfy start <= end in one row.
    date_order: tuple[tuple[str, str], ...] = ()

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    def index(self, column_name: str) -> int:
        return self.column_names.index(column_name)

    def headers(self, version: str) -> tuple[str, ...] | None:
        return self.headers_v12 if version == "1.2" else self.headers_v11


def _snake(header: str) -> str:
    out = []
    for ch in header:
        if ch.isupper():
            out.append("_")
            out.append(ch.lower())
        else:
            out.append(ch)
    return "".join(out)


def _col(
    header: str,
    type_: str,
    required: bool = False,
    enum: frozenset[str] | None = None,
    allow_ext: bool = False,
    name: str | None = None,
) -> Column:
    return Column(
        name=name or _snake(header),
        type=type_,
        required=required,
        enum=enum,
        allow_ext=allow_ext,
        header=header,
    )


def _head() -> tuple[Column, ...]:
    return (
        _col("sourcedId", GUID, True),
        _col("status", ENUM, False, STATUS_VALUES),
        _col("dateLastModified", DATETIME),
    )


def _entity(name: str, columns: tuple[Column, ...], **kw) -> EntitySchema:
    headers = tuple(c.header for c in columns)
    kw.setdefault("headers_v11", headers)
    return EntitySchema(
        name=name, file_name=f"{name}.csv", headers_v12=headers, columns=columns, **kw
    )


ORGS = _entity(
    "orgs",
    _head()
    + (
        _col("name", STRING, True),
        _col("type", ENUM, True, ORG_TYPES, allow_ext=True),
        _col("identifier", STRING),
        _col("parentSourcedId", GUID),
    ),
)

ACADEMIC_SESSIONS = _entity(
    "academicSessions",
    _head()
    + (
        _col("title", STRING, True),
        _col("type", ENUM, True, SESSION_TYPES, allow_ext=True),
        _col("startDate", DATE, True),
        _col("endDate", DATE, True),
        _col("parentSourcedId", GUID),
        _col("schoolYear", YEAR, True),
    ),
    date_order=(("start_date", "end_date"),),
)

COURSES = _entity(
    "courses",
    _head()
    + (
        _col("schoolYearSourcedId", GUID),
        _col("title", STRING, True),
        _col("courseCode", STRING),
        _col("grades", STRING_LIST),
        _col("orgSourcedId", GUID, True),
        _col("subjects", STRING_LIST),
        _col("subjectCodes", STRING_LIST),
    ),
)

CLASSES = _entity(
    "classes",
    _head()
    + (
        _col("title", STRING, True),
        _col("grades", STRING_LIST),
        _col("courseSourcedId", GUID, True),
        _col("classCode", STRING),
        _col("classType", ENUM, True, CLASS_TYPES, allow_ext=True),
        _col("location", STRING),
        _col("schoolSourcedId", GUID, True),
        _col("termSourcedIds", GUID_LIST, True),
        _col("subjects", STRING_LIST),
        _col("subjectCodes", STRING_LIST),
        _col("periods", STRING_LIST),
    ),
)

USERS = _entity(
    "users",
    _head()
    + (
        _col("enabledUser", BOOLEAN, True),
        _col("username", STRING, True),
        _col("userIds", STRING_LIST),
        _col("givenName", STRING, True),
        _col("familyName", STRING, True),
        _col("middleName", STRING),
        _col("identifier", STRING),
        _col("email", STRING),
        _col("sms", STRING),
        _col("phone", STRING),
        _col("agentSourcedIds", GUID_LIST),
        _col("grades", STRING_LIST),
        _col("password", STRING),
        _col("userMasterIdentifier", STRING),
        _col("preferredGivenName", STRING),
        _col("preferredMiddleName", STRING),
        _col("preferredFamilyName", STRING),
        _col("primaryOrgSourcedId", GUID),
        _col("pronouns", STRING),
    ),
    headers_v11=(
        "sourcedId", "status", "dateLastModified", "enabledUser", "orgSourcedIds", "role",
        "username", "userIds", "givenName", "familyName", "middleName", "identifier", "email",
        "sms", "phone", "agentSourcedIds", "grades", "password",
    ),
    v11_absent=frozenset(
        {
            "user_master_identifier", "preferred_given_name", "preferred_middle_name",
            "preferred_family_name", "pronouns",
            # primary_org_sourced_id is derived from 1.1 orgSourcedIds by the mapping rules.
        }
    ),
    v11_extra=frozenset({"orgSourcedIds", "role"}),
)

ROLES_ENTITY = _entity(
    "roles",
    _head()
    + (
        _col("userSourcedId", GUID, True),
        _col("roleType", ENUM, True, ROLE_TYPES),
        _col("role", ENUM, True, ROLES, allow_ext=True),
        _col("beginDate", DATE),
        _col("endDate", DATE),
        _col("orgSourcedId", GUID, True),
        _col("userProfileSourcedId", GUID),
    ),
    headers_v11=None,  # 1.1 roles come from users.csv (role, orgSourcedIds)
    date_order=(("begin_date", "end_date"),),
)

USER_PROFILES = _entity(
    "userProfiles",
    _head()
    + (
        _col("userSourcedId", GUID, True),
        _col("profileType", STRING, True),
        _col("vendorId", STRING, True),
        _col("applicationId", STRING),
        _col("description", STRING),
        _col("credentialType", STRING, True),
        _col("username", STRING, True),
        _col("password", STRING),
    ),
    headers_v11=None,
)

ENROLLMENTS = _entity(
    "enrollments",
    _head()
    + (
        _col("classSourcedId", GUID, True),
        _col("schoolSourcedId", GUID, True),
        _col("userSourcedId", GUID, True),
        _col("role", ENUM, True, ENROLLMENT_ROLES, allow_ext=True),
        _col("primary", BOOLEAN),
        _col("beginDate", DATE),
        _col("endDate", DATE),
    ),
    date_order=(("begin_date", "end_date"),),
)

_BOOL_DEMOGRAPHICS = (
    "americanIndianOrAlaskaNative", "asian", "blackOrAfricanAmerican",
    "nativeHawaiianOrOtherPacificIslander", "white", "demographicRaceTwoOrMoreRaces",
    "hispanicOrLatinoEthnicity",
)

DEMOGRAPHICS = _entity(
    "demographics",
    _head()
    + (
        _col("birthDate", DATE),
        _col("sex", ENUM, False, SEX_VALUES, allow_ext=True),
    )
    + tuple(_col(h, BOOLEAN) for h in _BOOL_DEMOGRAPHICS)
    + (
        _col("countryOfBirthCode", STRING),
        _col("stateOfBirthAbbreviation", STRING),
        _col("cityOfBirth", STRING),
        _col("publicSchoolResidenceStatus", STRING),
    ),
)

CATEGORIES = _entity(
    "categories",
    _head()
    + (
        _col("title", STRING, True),
        # The binding says Integer (a percent); SIS exports send "0.3" or "30.5" too, so the
        # canonical type is decimal, which holds both without loss.
        _col("weight", DECIMAL),
    ),
    headers_v11=("sourcedId", "status", "dateLastModified", "title"),
    v11_absent=frozenset({"weight"}),
)

LINE_ITEMS = _entity(
    "lineItems",
    _head()
    + (
        _col("title", STRING, True),
        _col("description", STRING),
        _col("assignDate", DATE, True),
        _col("dueDate", DATE, True),
        _col("classSourcedId", GUID, True),
        _col("categorySourcedId", GUID, True),
        _col("academicSessionSourcedId", GUID, True),
        _col("resultValueMin", DECIMAL),
        _col("resultValueMax", DECIMAL),
        _col("schoolSourcedId", GUID, True),
    ),
    headers_v11=(
        "sourcedId", "status", "dateLastModified", "title", "description", "assignDate",
        "dueDate", "classSourcedId", "categorySourcedId", "gradingPeriodSourcedId",
        "resultValueMin", "resultValueMax",
    ),
    v11_renames={"gradingPeriodSourcedId": "academic_session_sourced_id"},
    v11_absent=frozenset({"school_sourced_id"}),
    v11_required_extra=frozenset({"result_value_min", "result_value_max"}),
    date_order=(("assign_date", "due_date"),),
)

RESULTS = _entity(
    "results",
    _head()
    + (
        _col("lineItemSourcedId", GUID, True),
        _col("studentSourcedId", GUID, True),
        _col("scoreStatus", ENUM, True, SCORE_STATUSES, allow_ext=True),
        _col("score", DECIMAL),
        _col("scoreDate", DATE, True),
        _col("comment", STRING),
        _col("textScore", STRING),
        _col("classSourcedId", GUID),
        _col("inProgress", BOOLEAN),
        _col("incomplete", BOOLEAN),
        _col("late", BOOLEAN),
        _col("missing", BOOLEAN),
    ),
    headers_v11=(
        "sourcedId", "status", "dateLastModified", "lineItemSourcedId", "studentSourcedId",
        "scoreStatus", "score", "scoreDate", "comment",
    ),
    v11_absent=frozenset(
        {"text_score", "class_sourced_id", "in_progress", "incomplete", "late", "missing"}
    ),
    v11_required_extra=frozenset({"score"}),
)

SCORE_SCALES = _entity(
    "scoreScales",
    _head()
    + (
        _col("title", STRING, True),
        _col("type", STRING, True),
        _col("orgSourcedId", GUID, True),
        _col("courseSourcedId", GUID, True),
        _col("classSourcedId", GUID, True),
        _col("scoreScaleValue", STRING_LIST, True),
    ),
    headers_v11=None,
)

SCHEMAS: dict[str, EntitySchema] = {
    s.name: s
    for s in (
        ORGS, ACADEMIC_SESSIONS, COURSES, CLASSES, USERS, ROLES_ENTITY, USER_PROFILES,
        ENROLLMENTS, DEMOGRAPHICS, CATEGORIES, LINE_ITEMS, RESULTS, SCORE_SCALES,
    )
}

# Supported entities, in an order where every file only references earlier ones (apply order),
# except self references (org and session parents, user agents).
ENTITIES: list[str] = [
    "orgs", "academicSessions", "courses", "classes", "users", "userProfiles", "roles",
    "enrollments", "demographics", "categories", "lineItems", "results", "scoreScales",
]
assert set(ENTITIES) == set(SCHEMAS)

# Files the binding defines that the hub does not ingest yet: a feed that supplies one with
# rows is reported (UNSUPPORTED_FILE), never silently dropped.
UNSUPPORTED_ENTITIES: tuple[str, ...] = (
    "resources", "classResources", "courseResources", "userResources",
    "lineItemLearningObjectiveIds", "lineItemScoreScales", "resultLearningObjectiveIds",
    "resultScoreScales",
)
# Files that exist in OneRoster 1.1 (the others are 1.2 only).
ENTITIES_V11: frozenset[str] = frozenset(
    {
        "orgs", "academicSessions", "courses", "classes", "users", "enrollments",
        "demographics", "categories", "lineItems", "results",
        "resources", "classResources", "courseResources",
    }
)
# Every data file name the binding knows, by entity name.
ALL_FILE_NAMES: dict[str, str] = {
    n: f"{n}.csv" for n in (*ENTITIES, *UNSUPPORTED_ENTITIES)
}
# The OneRoster 1.0 file set (no manifest): recognised only to say it is unsupported.
ENTITIES_V10: frozenset[str] = frozenset(
    {"orgs", "academicSessions", "courses", "classes", "users", "enrollments", "demographics"}
)


def schema_for(entity: str) -> EntitySchema:
    return SCHEMAS[entity]
