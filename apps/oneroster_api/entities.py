"""The OneRoster 1.2 JSON shape of each rostering entity, declared once.

Each field of the binding's JSON is mapped to the canonical column it comes from and to a
*kind* that says how it is rendered in SQL (string booleans, ``YYYY-MM-DD`` dates,
``{href, sourcedId, type}`` references, ...) and how it may be filtered and sorted. The
renderer (``render.py``), the query grammar (``query.py``) and the OpenAPI document
(``openapi.py``) all read this table, so the three can never disagree.

A field exists for a client only when its column is in the release's projection for the
client's integration (``Release.columns(entity)``): an unapproved field is absent from the
JSON and unknown to ``fields=``, ``filter=`` and ``sort=``.
"""

from __future__ import annotations

from dataclasses import dataclass

# Field kinds.
STR = "string"
DATETIME = "datetime"
DATE = "date"
BOOL = "boolean"
YEAR = "year"  # an integer column rendered as a string ("2025")
STRLIST = "string_list"
REF = "ref"  # {href, sourcedId, type}
REFS = "ref_list"
STATUS = "status"  # always "active": closed rows are never served
USER_IDS = "user_ids"  # [{type, identifier}] from "type:identifier" strings
ROLES = "roles"  # a user's roles at released orgs
USER_PROFILES = "user_profiles"  # a user's released profiles, credentials without passwords
CHILDREN = "children"  # an org's or session's children in the release
NUMBER = "number"  # a decimal column rendered as a JSON number (scores, weights)
SCALE_VALUES = "scale_values"  # [{itemValueLHS, itemValueRHS}] from "{lhs:rhs}" strings

SCALAR_KINDS = frozenset({STR, DATETIME, DATE, BOOL, YEAR, STATUS, NUMBER})


@dataclass(frozen=True)
class Field:
    name: str  # the JSON name
    kind: str
    column: str | None = None  # canonical column it comes from
    ref_type: str = ""  # "org", "user", ... for references
    ref_collection: str = ""  # the collection a reference's href points into

    @property
    def filterable(self) -> bool:
        return self.kind in SCALAR_KINDS or self.kind in (REF, STRLIST)

    @property
    def sortable(self) -> bool:
        return self.kind in SCALAR_KINDS or self.kind == REF


@dataclass(frozen=True)
class Entity:
    """One OneRoster object type as served: its canonical entity and its JSON fields."""

    name: str  # canonical entity ("users")
    singular: str  # JSON wrapper of a single record ("user")
    plural: str  # JSON wrapper of a collection ("users")
    table: str  # canonical table
    fields: tuple[Field, ...]
    # The canonical column holding the person a record discloses (disclosure ledger).
    person_column: str | None = None

    def field(self, name: str) -> Field | None:
        return _FIELD_INDEX[self.name].get(name)


def _base() -> tuple[Field, ...]:
    return (
        Field("sourcedId", STR, "sourced_id"),
        Field("status", STATUS),
        Field("dateLastModified", DATETIME, "date_last_modified"),
    )


ORG = Entity(
    "orgs", "org", "orgs", "roster_org",
    _base() + (
        Field("name", STR, "name"),
        Field("type", STR, "type"),
        Field("identifier", STR, "identifier"),
        Field("parent", REF, "parent_sourced_id", "org", "orgs"),
        Field("children", CHILDREN, "sourced_id", "org", "orgs"),
    ),
)

ACADEMIC_SESSION = Entity(
    "academicSessions", "academicSession", "academicSessions", "roster_academicsession",
    _base() + (
        Field("title", STR, "title"),
        Field("startDate", DATE, "start_date"),
        Field("endDate", DATE, "end_date"),
        Field("type", STR, "type"),
        Field("parent", REF, "parent_sourced_id", "academicSession", "academicSessions"),
        Field("children", CHILDREN, "sourced_id", "academicSession", "academicSessions"),
        Field("schoolYear", YEAR, "school_year"),
    ),
)

COURSE = Entity(
    "courses", "course", "courses", "roster_course",
    _base() + (
        Field("title", STR, "title"),
        Field("schoolYear", REF, "school_year_sourced_id", "academicSession", "academicSessions"),
        Field("courseCode", STR, "course_code"),
        Field("grades", STRLIST, "grades"),
        Field("subjects", STRLIST, "subjects"),
        Field("org", REF, "org_sourced_id", "org", "orgs"),
        Field("subjectCodes", STRLIST, "subject_codes"),
    ),
)

CLASS = Entity(
    "classes", "class", "classes", "roster_class",
    _base() + (
        Field("title", STR, "title"),
        Field("classCode", STR, "class_code"),
        Field("classType", STR, "class_type"),
        Field("location", STR, "location"),
        Field("grades", STRLIST, "grades"),
        Field("subjects", STRLIST, "subjects"),
        Field("course", REF, "course_sourced_id", "course", "courses"),
        Field("school", REF, "school_sourced_id", "org", "schools"),
        Field("terms", REFS, "term_sourced_ids", "academicSession", "terms"),
        Field("subjectCodes", STRLIST, "subject_codes"),
        Field("periods", STRLIST, "periods"),
    ),
)

USER = Entity(
    "users", "user", "users", "roster_user",
    _base() + (
        Field("userMasterIdentifier", STR, "user_master_identifier"),
        Field("username", STR, "username"),
        Field("userIds", USER_IDS, "user_ids"),
        Field("enabledUser", BOOL, "enabled_user"),
        Field("givenName", STR, "given_name"),
        Field("familyName", STR, "family_name"),
        Field("middleName", STR, "middle_name"),
        Field("preferredFirstName", STR, "preferred_given_name"),
        Field("preferredMiddleName", STR, "preferred_middle_name"),
        Field("preferredLastName", STR, "preferred_family_name"),
        Field("pronouns", STR, "pronouns"),
        Field("roles", ROLES, "sourced_id"),
        Field("userProfiles", USER_PROFILES, "sourced_id"),
        Field("primaryOrg", REF, "primary_org_sourced_id", "org", "orgs"),
        Field("identifier", STR, "identifier"),
        Field("email", STR, "email"),
        Field("sms", STR, "sms"),
        Field("phone", STR, "phone"),
        Field("agents", REFS, "agent_sourced_ids", "user", "users"),
        Field("grades", STRLIST, "grades"),
    ),
    person_column="sourced_id",
)

ENROLLMENT = Entity(
    "enrollments", "enrollment", "enrollments", "roster_enrollment",
    _base() + (
        Field("user", REF, "user_sourced_id", "user", "users"),
        Field("class", REF, "class_sourced_id", "class", "classes"),
        Field("school", REF, "school_sourced_id", "org", "schools"),
        Field("role", STR, "role"),
        Field("primary", BOOL, "primary"),
        Field("beginDate", DATE, "begin_date"),
        Field("endDate", DATE, "end_date"),
    ),
    person_column="user_sourced_id",
)

DEMOGRAPHIC = Entity(
    "demographics", "demographics", "demographics", "roster_demographic",
    _base() + (
        Field("birthDate", DATE, "birth_date"),
        Field("sex", STR, "sex"),
        Field("americanIndianOrAlaskaNative", BOOL, "american_indian_or_alaska_native"),
        Field("asian", BOOL, "asian"),
        Field("blackOrAfricanAmerican", BOOL, "black_or_african_american"),
        Field("nativeHawaiianOrOtherPacificIslander", BOOL,
              "native_hawaiian_or_other_pacific_islander"),
        Field("white", BOOL, "white"),
        Field("demographicRaceTwoOrMoreRaces", BOOL, "demographic_race_two_or_more_races"),
        Field("hispanicOrLatinoEthnicity", BOOL, "hispanic_or_latino_ethnicity"),
        Field("countryOfBirthCode", STR, "country_of_birth_code"),
        Field("stateOfBirthAbbreviation", STR, "state_of_birth_abbreviation"),
        Field("cityOfBirth", STR, "city_of_birth"),
        Field("publicSchoolResidenceStatus", STR, "public_school_residence_status"),
    ),
    person_column="sourced_id",
)

ENTITIES: dict[str, Entity] = {
    e.name: e for e in (ORG, ACADEMIC_SESSION, COURSE, CLASS, USER, ENROLLMENT, DEMOGRAPHIC)
}
_FIELD_INDEX: dict[str, dict[str, Field]] = {
    e.name: {f.name: f for f in e.fields} for e in ENTITIES.values()
}

# Members of a profile inside a user's ``userProfiles`` (profile columns in the projection).
# The binding's credentials carry a password; the hub never holds one, so none is sent.
PROFILE_FIELDS = (
    ("profileId", "sourced_id"),
    ("profileType", "profile_type"),
    ("vendorId", "vendor_id"),
    ("applicationId", "application_id"),
    ("description", "description"),
)

# Columns of a role rendered inside a user's ``roles`` (role columns in the projection).
ROLE_FIELDS = (
    ("roleType", "role_type", STR),
    ("role", "role", STR),
    ("beginDate", "begin_date", DATE),
    ("endDate", "end_date", DATE),
)


def available_fields(entity: Entity, projection: tuple[str, ...],
                     role_projection: tuple[str, ...] = (),
                     profile_projection: tuple[str, ...] = ()) -> tuple[Field, ...]:
    """The fields of ``entity`` that exist for a client whose release projects ``projection``
    (the approved columns). Computed fields need their own columns: ``roles`` needs the role
    entity to be released, ``userProfiles`` the profile entity (credential data), ``children``
    only ids (always released with the entity)."""
    if not projection:
        return ()
    columns = set(projection)
    out = []
    for f in entity.fields:
        if f.kind == STATUS:
            out.append(f)
        elif f.kind == ROLES:
            if role_projection:
                out.append(f)
        elif f.kind == USER_PROFILES:
            if profile_projection:
                out.append(f)
        elif f.column in columns:
            out.append(f)
    return tuple(out)
