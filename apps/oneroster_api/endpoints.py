"""Every rostering endpoint of the binding, as data: which entity it serves, which scopes it
accepts, and how it narrows the release's rows (the endpoint's *scope*: schools are orgs of
type school, a class's students are users enrolled in it as students, ...).

A narrowing is a condition on the stored columns of the entity's table, with bound
parameters, added to the release's queryset; it can only take rows away from what the
release allows. Path ids are those the client sees: person ids of a pseudonymised
integration are mapped back with the release's pseudonymiser before they touch SQL.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from apps.governance.scopes import OR
from apps.oneroster_api import entities as E
from apps.roster.ingest.staging import array_literal

CORE = OR + "roster-core.readonly"
FULL = OR + "roster.readonly"
DEMOGRAPHICS = OR + "roster-demographics.readonly"
BASE_PATH = "/ims/oneroster/rostering/v1p2"

# A narrowing: (SQL condition on the entity's table, parameters).
Condition = tuple[str, list]


@dataclass(frozen=True)
class Parent:
    """An object named in a nested path that must itself be visible to the client."""

    param: str  # URL kwarg
    entity: str  # canonical entity
    conditions: Callable[..., list[Condition]] = lambda ids, orgs: []  # noqa: E731
    label: str = ""


@dataclass(frozen=True)
class Endpoint:
    name: str  # operation id
    route: str  # Django route under BASE_PATH
    pattern: str  # the path as the binding writes it (access records, OpenAPI)
    entity: E.Entity
    single: bool
    scopes: frozenset[str]
    conditions: Callable[..., list[Condition]] = lambda ids, orgs: []  # noqa: E731
    parents: tuple[Parent, ...] = field(default=())
    wrapper: str = ""
    label: str = ""  # the object type named in a 404 ("student")

    @property
    def key(self) -> str:
        return self.wrapper or (self.entity.singular if self.single else self.entity.plural)


# --- conditions -------------------------------------------------------------------------------
# ``ids`` maps URL kwargs to stored ids; ``orgs`` is the release's org scope as one text[]
# literal (``Release.org_array``), bound as a single parameter.

def _org_type(kind: str) -> Callable[..., list[Condition]]:
    return lambda ids, orgs: [('"roster_org"."type" = %s', [kind])]


def _session_type(kind: str) -> Callable[..., list[Condition]]:
    return lambda ids, orgs: [('"roster_academicsession"."type" = %s', [kind])]


def _users_with_role(role: str, org_param: str | None = None) -> Callable[..., list[Condition]]:
    def conditions(ids, orgs):  # type: ignore[no-untyped-def]
        org_list = array_literal([ids[org_param]]) if org_param else orgs
        return [(
            '"roster_user"."sourced_id" IN (SELECT ro.user_sourced_id FROM roster_role ro '
            "WHERE ro.valid_to_version IS NULL AND ro.role = %s "
            "AND ro.org_sourced_id = ANY(%s::text[]))",
            [role, org_list],
        )]
    return conditions


def _users_enrolled(role: str) -> Callable[..., list[Condition]]:
    def conditions(ids, orgs):  # type: ignore[no-untyped-def]
        return [(
            '"roster_user"."sourced_id" IN (SELECT en.user_sourced_id FROM roster_enrollment en '
            "WHERE en.valid_to_version IS NULL AND en.class_sourced_id = %s AND en.role = %s "
            "AND en.school_sourced_id = ANY(%s::text[]))",
            [ids["class_id"], role, orgs],
        )]
    return conditions


def _column_is(table: str, column: str, param: str) -> Callable[..., list[Condition]]:
    return lambda ids, orgs: [(f'"{table}"."{column}" = %s', [ids[param]])]


def _classes_of_user(ids, orgs) -> list[Condition]:  # type: ignore[no-untyped-def]
    return [(
        '"roster_class"."sourced_id" IN (SELECT en.class_sourced_id FROM roster_enrollment en '
        "WHERE en.valid_to_version IS NULL AND en.user_sourced_id = %s "
        "AND en.school_sourced_id = ANY(%s::text[]))",
        [ids["user_id"], orgs],
    )]


def _classes_of_term(ids, orgs) -> list[Condition]:  # type: ignore[no-untyped-def]
    return [('%s = ANY("roster_class"."term_sourced_ids")', [ids["term_id"]])]


def _terms_of_school(ids, orgs) -> list[Condition]:  # type: ignore[no-untyped-def]
    return [
        ('"roster_academicsession"."type" = %s', ["term"]),
        ('"roster_academicsession"."sourced_id" IN (SELECT unnest(cl.term_sourced_ids) '
         "FROM roster_class cl WHERE cl.valid_to_version IS NULL AND cl.school_sourced_id = %s)",
         [ids["school_id"]]),
    ]


def _all(*parts: Callable[..., list[Condition]]) -> Callable[..., list[Condition]]:
    return lambda ids, orgs: [c for part in parts for c in part(ids, orgs)]


# --- parents -------------------------------------------------------------------------------

SCHOOL = Parent("school_id", "orgs", _org_type("school"), "school")
CLASS = Parent("class_id", "classes", label="class")
COURSE = Parent("course_id", "courses", label="course")
TERM = Parent("term_id", "academicSessions", _session_type("term"), "term")
USER = Parent("user_id", "users", label="user")
STUDENT = Parent("user_id", "users", _users_with_role("student"), "student")
TEACHER = Parent("user_id", "users", _users_with_role("teacher"), "teacher")


def _class_in_school(ids, orgs) -> list[Condition]:  # type: ignore[no-untyped-def]
    return [('"roster_class"."school_sourced_id" = %s', [ids["school_id"]])]


CLASS_IN_SCHOOL = Parent("class_id", "classes", _class_in_school, "class")


# --- the table ---------------------------------------------------------------------------------

CORE_OR_FULL = frozenset({CORE, FULL})
FULL_ONLY = frozenset({FULL})
DEMO_ONLY = frozenset({DEMOGRAPHICS})


def _pair(name: str, path: str, entity: E.Entity, *, conditions=None, wrapper_one: str = "",  # type: ignore[no-untyped-def]
          wrapper_many: str = "", scopes: frozenset[str] = CORE_OR_FULL,
          label: str = "") -> list[Endpoint]:
    cond = conditions or (lambda ids, orgs: [])
    return [
        Endpoint(f"getAll{name}", path, f"/{path}", entity, False, scopes, cond,
                 wrapper=wrapper_many),
        Endpoint(f"get{name}", f"{path}/<str:sourced_id>", f"/{path}/{{sourcedId}}", entity,
                 True, scopes, cond, wrapper=wrapper_one, label=label or entity.singular),
    ]


def _nested(name: str, route: str, pattern: str, entity: E.Entity, parents: tuple[Parent, ...],
            conditions, wrapper: str = "") -> Endpoint:  # type: ignore[no-untyped-def]
    return Endpoint(name, route, pattern, entity, False, FULL_ONLY, conditions, parents,
                    wrapper=wrapper)


ENDPOINTS: list[Endpoint] = [
    *_pair("AcademicSessions", "academicSessions", E.ACADEMIC_SESSION),
    *_pair("Classes", "classes", E.CLASS),
    *_pair("Courses", "courses", E.COURSE),
    *_pair("Demographics", "demographics", E.DEMOGRAPHIC, scopes=DEMO_ONLY),
    *_pair("Enrollments", "enrollments", E.ENROLLMENT),
    *_pair("GradingPeriods", "gradingPeriods", E.ACADEMIC_SESSION,
           conditions=_session_type("gradingPeriod"), wrapper_one="academicSession",
           wrapper_many="academicSessions", label="gradingPeriod"),
    *_pair("Orgs", "orgs", E.ORG),
    *_pair("Schools", "schools", E.ORG, conditions=_org_type("school"), wrapper_one="org",
           wrapper_many="orgs", label="school"),
    *_pair("Students", "students", E.USER, conditions=_users_with_role("student"),
           wrapper_one="user", wrapper_many="users", label="student"),
    *_pair("Teachers", "teachers", E.USER, conditions=_users_with_role("teacher"),
           wrapper_one="user", wrapper_many="users", label="teacher"),
    *_pair("Terms", "terms", E.ACADEMIC_SESSION, conditions=_session_type("term"),
           wrapper_one="academicSession", wrapper_many="academicSessions", label="term"),
    *_pair("Users", "users", E.USER),
    _nested("getStudentsForClass", "classes/<str:class_id>/students",
            "/classes/{classSourcedId}/students", E.USER, (CLASS,), _users_enrolled("student")),
    _nested("getTeachersForClass", "classes/<str:class_id>/teachers",
            "/classes/{classSourcedId}/teachers", E.USER, (CLASS,), _users_enrolled("teacher")),
    _nested("getClassesForCourse", "courses/<str:course_id>/classes",
            "/courses/{courseSourcedId}/classes", E.CLASS, (COURSE,),
            _column_is("roster_class", "course_sourced_id", "course_id")),
    _nested("getClassesForSchool", "schools/<str:school_id>/classes",
            "/schools/{schoolSourcedId}/classes", E.CLASS, (SCHOOL,),
            _column_is("roster_class", "school_sourced_id", "school_id")),
    _nested("getCoursesForSchool", "schools/<str:school_id>/courses",
            "/schools/{schoolSourcedId}/courses", E.COURSE, (SCHOOL,),
            _column_is("roster_course", "org_sourced_id", "school_id")),
    _nested("getEnrollmentsForSchool", "schools/<str:school_id>/enrollments",
            "/schools/{schoolSourcedId}/enrollments", E.ENROLLMENT, (SCHOOL,),
            _column_is("roster_enrollment", "school_sourced_id", "school_id")),
    _nested("getStudentsForSchool", "schools/<str:school_id>/students",
            "/schools/{schoolSourcedId}/students", E.USER, (SCHOOL,),
            _users_with_role("student", "school_id")),
    _nested("getTeachersForSchool", "schools/<str:school_id>/teachers",
            "/schools/{schoolSourcedId}/teachers", E.USER, (SCHOOL,),
            _users_with_role("teacher", "school_id")),
    _nested("getTermsForSchool", "schools/<str:school_id>/terms",
            "/schools/{schoolSourcedId}/terms", E.ACADEMIC_SESSION, (SCHOOL,),
            _terms_of_school),
    _nested("getEnrollmentsForClassInSchool",
            "schools/<str:school_id>/classes/<str:class_id>/enrollments",
            "/schools/{schoolSourcedId}/classes/{classSourcedId}/enrollments", E.ENROLLMENT,
            (SCHOOL, CLASS_IN_SCHOOL),
            _all(_column_is("roster_enrollment", "school_sourced_id", "school_id"),
                 _column_is("roster_enrollment", "class_sourced_id", "class_id"))),
    _nested("getStudentsForClassInSchool",
            "schools/<str:school_id>/classes/<str:class_id>/students",
            "/schools/{schoolSourcedId}/classes/{classSourcedId}/students", E.USER,
            (SCHOOL, CLASS_IN_SCHOOL), _users_enrolled("student")),
    _nested("getTeachersForClassInSchool",
            "schools/<str:school_id>/classes/<str:class_id>/teachers",
            "/schools/{schoolSourcedId}/classes/{classSourcedId}/teachers", E.USER,
            (SCHOOL, CLASS_IN_SCHOOL), _users_enrolled("teacher")),
    _nested("getClassesForStudent", "students/<str:user_id>/classes",
            "/students/{studentSourcedId}/classes", E.CLASS, (STUDENT,), _classes_of_user),
    _nested("getClassesForTeacher", "teachers/<str:user_id>/classes",
            "/teachers/{teacherSourcedId}/classes", E.CLASS, (TEACHER,), _classes_of_user),
    _nested("getClassesForTerm", "terms/<str:term_id>/classes",
            "/terms/{termSourcedId}/classes", E.CLASS, (TERM,), _classes_of_term),
    _nested("getGradingPeriodsForTerm", "terms/<str:term_id>/gradingPeriods",
            "/terms/{termSourcedId}/gradingPeriods", E.ACADEMIC_SESSION, (TERM,),
            _all(_session_type("gradingPeriod"),
                 _column_is("roster_academicsession", "parent_sourced_id", "term_id")),
            wrapper="academicSessions"),
    _nested("getClassesForUser", "users/<str:user_id>/classes",
            "/users/{userSourcedId}/classes", E.CLASS, (USER,), _classes_of_user),
]
