"""The OneRoster 1.2 gradebook service, as data: its four object types, its endpoints and
scopes, and the parsing of write bodies into canonical rows.

Reads use the rostering machinery unchanged (the release's querysets, ``query.py``,
``render.py``, ``errors.py``); only the tables here are new. References a gradebook
object makes into rostering (class, school, student, academic session) point their
``href`` at the rostering service, so the renderer is given ``/ims/oneroster`` as its base
and each reference names its service in its collection.

Writes are parsed here into canonical rows (stored ids, typed values) and checked against
what the writer's release may see (``check_references``): a vendor writes only within the
classes, schools and pupils its release shows; everything else is a 422 naming the field.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
import uuid
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from django.db import connection
from django.db.models import QuerySet
from django.utils.dateparse import parse_date, parse_datetime

from apps.governance.scopes import OR
from apps.oneroster_api import entities as E
from apps.oneroster_api.endpoints import Condition, Endpoint, Parent
from apps.roster.schema import EXT_PREFIX, SCORE_STATUSES
from portal.db import prepared

SERVICE = "oneroster.gradebook"
BASE_PATH = "/ims/oneroster/gradebook/v1p2"
HREF_BASE_PATH = "/ims/oneroster"  # references name their service: "rostering/v1p2/classes"

CORE = OR + "gradebook-core.readonly"
FULL = OR + "gradebook.readonly"
CREATE_PUT = OR + "gradebook.createput"
CREATE_POST = OR + "gradebook.createpost"
DELETE = OR + "gradebook.delete"
CORE_OR_FULL = frozenset({CORE, FULL})
FULL_ONLY = frozenset({FULL})

_R = "rostering/v1p2/"
_G = "gradebook/v1p2/"

# --- object types ------------------------------------------------------------------------------


def _base() -> tuple[E.Field, ...]:
    return (
        E.Field("sourcedId", E.STR, "sourced_id"),
        E.Field("status", E.STATUS),
        E.Field("dateLastModified", E.DATETIME, "date_last_modified"),
    )


CATEGORY = E.Entity(
    "categories", "category", "categories", "roster_category",
    _base() + (
        E.Field("title", E.STR, "title"),
        E.Field("weight", E.NUMBER, "weight"),
    ),
)

LINE_ITEM = E.Entity(
    "lineItems", "lineItem", "lineItems", "roster_lineitem",
    _base() + (
        E.Field("title", E.STR, "title"),
        E.Field("description", E.STR, "description"),
        E.Field("assignDate", E.DATE, "assign_date"),
        E.Field("dueDate", E.DATE, "due_date"),
        E.Field("class", E.REF, "class_sourced_id", "class", _R + "classes"),
        E.Field("school", E.REF, "school_sourced_id", "org", _R + "schools"),
        E.Field("category", E.REF, "category_sourced_id", "category", _G + "categories"),
        E.Field("academicSession", E.REF, "academic_session_sourced_id", "academicSession",
                _R + "academicSessions"),
        E.Field("resultValueMin", E.NUMBER, "result_value_min"),
        E.Field("resultValueMax", E.NUMBER, "result_value_max"),
    ),
)

RESULT = E.Entity(
    "results", "result", "results", "roster_result",
    _base() + (
        E.Field("lineItem", E.REF, "line_item_sourced_id", "lineItem", _G + "lineItems"),
        E.Field("student", E.REF, "student_sourced_id", "user", _R + "students"),
        E.Field("class", E.REF, "class_sourced_id", "class", _R + "classes"),
        E.Field("scoreStatus", E.STR, "score_status"),
        E.Field("score", E.NUMBER, "score"),
        E.Field("textScore", E.STR, "text_score"),
        E.Field("scoreDate", E.DATE, "score_date"),
        E.Field("comment", E.STR, "comment"),
        E.Field("inProgress", E.BOOL, "in_progress"),
        E.Field("incomplete", E.BOOL, "incomplete"),
        E.Field("late", E.BOOL, "late"),
        E.Field("missing", E.BOOL, "missing"),
    ),
    person_column="student_sourced_id",
)

SCORE_SCALE = E.Entity(
    "scoreScales", "scoreScale", "scoreScales", "roster_scorescale",
    _base() + (
        E.Field("title", E.STR, "title"),
        E.Field("type", E.STR, "type"),
        E.Field("school", E.REF, "org_sourced_id", "org", _R + "schools"),
        E.Field("course", E.REF, "course_sourced_id", "course", _R + "courses"),
        E.Field("class", E.REF, "class_sourced_id", "class", _R + "classes"),
        E.Field("scoreScaleValue", E.SCALE_VALUES, "score_scale_value"),
    ),
)

ENTITIES: dict[str, E.Entity] = {e.name: e for e in (CATEGORY, LINE_ITEM, RESULT, SCORE_SCALE)}
BY_COLLECTION: dict[str, E.Entity] = {e.plural: e for e in ENTITIES.values()}

# --- endpoints --------------------------------------------------------------------------------


def _column_is(table: str, column: str, param: str):  # type: ignore[no-untyped-def]
    return lambda ids, orgs: [(f'"{table}"."{column}" = %s', [ids[param]])]


def _categories_of_class(ids, orgs) -> list[Condition]:  # type: ignore[no-untyped-def]
    return [(
        '"roster_category"."sourced_id" IN (SELECT li.category_sourced_id '
        "FROM roster_lineitem li WHERE li.valid_to_version IS NULL AND li.class_sourced_id = %s)",
        [ids["class_id"]],
    )]


def _results_of_class(ids, orgs) -> list[Condition]:  # type: ignore[no-untyped-def]
    return [(
        '"roster_result"."line_item_sourced_id" IN (SELECT li.sourced_id '
        "FROM roster_lineitem li WHERE li.valid_to_version IS NULL AND li.class_sourced_id = %s)",
        [ids["class_id"]],
    )]


def _and(*parts):  # type: ignore[no-untyped-def]
    return lambda ids, orgs: [c for part in parts for c in part(ids, orgs)]


def _line_item_in_class(ids, orgs) -> list[Condition]:  # type: ignore[no-untyped-def]
    return [('"roster_lineitem"."class_sourced_id" = %s', [ids["class_id"]])]


def _student_in_class(ids, orgs) -> list[Condition]:  # type: ignore[no-untyped-def]
    return [(
        '"roster_user"."sourced_id" IN (SELECT en.user_sourced_id FROM roster_enrollment en '
        "WHERE en.valid_to_version IS NULL AND en.class_sourced_id = %s AND en.role = 'student')",
        [ids["class_id"]],
    )]


CLASS = Parent("class_id", "classes", label="class")
SCHOOL = Parent("school_id", "orgs", lambda ids, orgs: [('"roster_org"."type" = %s', ["school"])],
                "school")
LINE_ITEM_OF_CLASS = Parent("line_item_id", "lineItems", _line_item_in_class, "lineItem")
LINE_ITEM_PARENT = Parent("line_item_id", "lineItems", label="lineItem")
STUDENT_OF_CLASS = Parent("user_id", "users", _student_in_class, "student")
SESSION = Parent("session_id", "academicSessions", label="academicSession")


def _pair(name: str, entity: E.Entity) -> list[Endpoint]:
    path = entity.plural
    return [
        Endpoint(f"getAll{name}", path, f"/{path}", entity, False, CORE_OR_FULL),
        Endpoint(f"get{name[:-1] if name != 'Categories' else 'Category'}",
                 f"{path}/<str:sourced_id>", f"/{path}/{{sourcedId}}", entity, True,
                 CORE_OR_FULL),
    ]


def _nested(name: str, route: str, pattern: str, entity: E.Entity, parents, conditions):  # type: ignore[no-untyped-def]
    return Endpoint(name, route, pattern, entity, False, FULL_ONLY, conditions, parents)


READ_ENDPOINTS: list[Endpoint] = [
    *_pair("Categories", CATEGORY),
    *_pair("LineItems", LINE_ITEM),
    *_pair("Results", RESULT),
    *_pair("ScoreScales", SCORE_SCALE),
    _nested("getCategoriesForClass", "classes/<str:class_id>/categories",
            "/classes/{classSourcedId}/categories", CATEGORY, (CLASS,),
            _categories_of_class),
    _nested("getLineItemsForClass", "classes/<str:class_id>/lineItems",
            "/classes/{classSourcedId}/lineItems", LINE_ITEM, (CLASS,),
            _column_is("roster_lineitem", "class_sourced_id", "class_id")),
    _nested("getLineItemsForSchool", "schools/<str:school_id>/lineItems",
            "/schools/{schoolSourcedId}/lineItems", LINE_ITEM, (SCHOOL,),
            _column_is("roster_lineitem", "school_sourced_id", "school_id")),
    _nested("getResultsForClass", "classes/<str:class_id>/results",
            "/classes/{classSourcedId}/results", RESULT, (CLASS,),
            _results_of_class),
    _nested("getResultsForLineItemForClass",
            "classes/<str:class_id>/lineItems/<str:line_item_id>/results",
            "/classes/{classSourcedId}/lineItems/{lineItemSourcedId}/results", RESULT,
            (CLASS, LINE_ITEM_OF_CLASS),
            _column_is("roster_result", "line_item_sourced_id", "line_item_id")),
    _nested("getResultsForStudentForClass",
            "classes/<str:class_id>/students/<str:user_id>/results",
            "/classes/{classSourcedId}/students/{studentSourcedId}/results", RESULT,
            (CLASS, STUDENT_OF_CLASS),
            _and(_results_of_class,
                 _column_is("roster_result", "student_sourced_id", "user_id"))),
    _nested("getScoreScalesForClass", "classes/<str:class_id>/scoreScales",
            "/classes/{classSourcedId}/scoreScales", SCORE_SCALE, (CLASS,),
            _column_is("roster_scorescale", "class_sourced_id", "class_id")),
    _nested("getScoreScalesForSchool", "schools/<str:school_id>/scoreScales",
            "/schools/{schoolSourcedId}/scoreScales", SCORE_SCALE, (SCHOOL,),
            _column_is("roster_scorescale", "org_sourced_id", "school_id")),
]


@dataclass(frozen=True)
class PostEndpoint:
    """A POST creating several objects under a parent, answering ``sourcedIdPairs``."""

    name: str
    route: str
    pattern: str
    entity: E.Entity
    parents: tuple[Parent, ...]
    # body field -> URL kwarg: the parent the path names fixes that reference
    fixed: Mapping[str, str] = field(default_factory=dict)


POST_ENDPOINTS: list[PostEndpoint] = [
    PostEndpoint("postLineItemsForClass", "classes/<str:class_id>/lineItems",
                 "/classes/{classSourcedId}/lineItems", LINE_ITEM, (CLASS,),
                 {"class": "class_id"}),
    PostEndpoint("postLineItemsForSchool", "schools/<str:school_id>/lineItems",
                 "/schools/{schoolSourcedId}/lineItems", LINE_ITEM, (SCHOOL,),
                 {"school": "school_id"}),
    PostEndpoint("postResultsForLineItem", "lineItems/<str:line_item_id>/results",
                 "/lineItems/{lineItemSourcedId}/results", RESULT, (LINE_ITEM_PARENT,),
                 {"lineItem": "line_item_id"}),
    PostEndpoint("postResultsForAcademicSessionForClass",
                 "classes/<str:class_id>/academicSessions/<str:session_id>/results",
                 "/classes/{classSourcedId}/academicSessions/{academicSessionSourcedId}/results",
                 RESULT, (CLASS, SESSION), {"class": "class_id", "academicSession": "session_id"}),
]

# --- parsing write bodies ---------------------------------------------------------------------

MSG_BODY_NOT_JSON = "The body is not a JSON object."
MSG_BODY_WRAPPER = "The body must be a JSON object with one member {key!r}."
MSG_REQUIRED = "is required"
MSG_NOT_STRING = "must be a string"
MSG_NOT_REF = "must be an object with a sourcedId"
MSG_NOT_NUMBER = "must be a number"
MSG_NOT_DATE = "must be a date (YYYY-MM-DD) or a date-time"
MSG_NOT_BOOLEAN = "must be true or false"
MSG_SCORE_STATUS = "must be one of {values}, or an ext: term"
MSG_ID_MISMATCH = "does not match the sourcedId in the path ({path})"
MSG_DATE_ORDER = "is before assignDate"
MSG_STATUS = "must be active (delete an object with DELETE)"
MSG_UNKNOWN_REF = "there is no {type} {sid} for this client"
MSG_NOT_ENROLLED = "student {student} is not enrolled in class {klass}"
MSG_REF_MISMATCH = "must be {expected} (the {what} of the {parent})"
MSG_SCALE_VALUES = "must be a list of {itemValueLHS, itemValueRHS} objects"
MSG_TOO_LONG = "is too long (at most {limit} characters)"
MSG_TOO_MANY = "At most {limit} objects may be posted at once."

MAX_TEXT = 10_000
MAX_ID = 255
MAX_POST = 1000
_NUMBER_LIMIT = Decimal("1e14")  # numeric(20, 6)


@dataclass
class Problems:
    """What is wrong with a body, field by field (a 422 lists them all)."""

    items: list[tuple[str, str]] = field(default_factory=list)

    def add(self, where: str, message: str) -> None:
        self.items.append((where, message))

    def __bool__(self) -> bool:
        return bool(self.items)

    def describe(self) -> str:
        return "; ".join(f"{where}: {message}" for where, message in self.items[:50])

    def as_list(self) -> list[dict[str, str]]:
        return [{"field": where, "message": message} for where, message in self.items[:200]]


def _text(obj: Mapping, key: str, where: str, problems: Problems, *, required: bool,
          limit: int = MAX_TEXT) -> str | None:
    value = obj.get(key)
    if value is None or value == "":
        if required:
            problems.add(f"{where}.{key}", MSG_REQUIRED)
        return None
    if not isinstance(value, str):
        problems.add(f"{where}.{key}", MSG_NOT_STRING)
        return None
    if len(value) > limit:
        problems.add(f"{where}.{key}", MSG_TOO_LONG.format(limit=limit))
        return None
    return value


def _ref(obj: Mapping, key: str, where: str, problems: Problems, *, required: bool) -> str | None:
    value = obj.get(key)
    if value is None:
        if required:
            problems.add(f"{where}.{key}", MSG_REQUIRED)
        return None
    if not isinstance(value, dict):
        problems.add(f"{where}.{key}", MSG_NOT_REF)
        return None
    return _text(value, "sourcedId", f"{where}.{key}", problems, required=True, limit=MAX_ID)


def _number(obj: Mapping, key: str, where: str, problems: Problems) -> Decimal | None:
    value = obj.get(key)
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        problems.add(f"{where}.{key}", MSG_NOT_NUMBER)
        return None
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        number = None
    if number is None or not number.is_finite() or abs(number) >= _NUMBER_LIMIT:
        problems.add(f"{where}.{key}", MSG_NOT_NUMBER)
        return None
    return number


def _date(obj: Mapping, key: str, where: str, problems: Problems, *,
          required: bool) -> dt.date | None:
    value = obj.get(key)
    if value is None or value == "":
        if required:
            problems.add(f"{where}.{key}", MSG_REQUIRED)
        return None
    parsed: dt.date | None = None
    if isinstance(value, str) and len(value) <= 40:
        try:
            parsed = parse_date(value)
            if parsed is None:
                moment = parse_datetime(value.replace("Z", "+00:00"))
                parsed = moment.date() if moment is not None else None
        except ValueError:
            parsed = None
    if parsed is None:
        problems.add(f"{where}.{key}", MSG_NOT_DATE)
    return parsed


def _boolean(obj: Mapping, key: str, where: str, problems: Problems) -> bool | None:
    value = obj.get(key)
    if value is None or value == "":
        return None
    if value in (True, "true"):
        return True
    if value in (False, "false"):
        return False
    problems.add(f"{where}.{key}", MSG_NOT_BOOLEAN)
    return None


def _status(obj: Mapping, where: str, problems: Problems) -> None:
    if obj.get("status") not in (None, "active"):
        problems.add(f"{where}.status", MSG_STATUS)


@dataclass
class Parsed:
    """One body object as a canonical row, plus the references to check."""

    row: dict[str, Any]
    where: str
    supplied_id: str | None = None
    # the row as the client wrote it, before ids were mapped back (for the reply)
    given: dict[str, Any] = field(default_factory=dict)


def parse_object(entity: E.Entity, obj: Any, where: str, problems: Problems, *,
                 sourced_id: str | None) -> Parsed | None:
    """A body object of ``entity`` as a canonical row (ids as the client sent them)."""
    if not isinstance(obj, dict):
        problems.add(where, MSG_BODY_NOT_JSON)
        return None
    before = len(problems.items)
    supplied = _text(obj, "sourcedId", where, problems, required=False, limit=MAX_ID)
    if sourced_id is not None and supplied is not None and supplied != sourced_id:
        problems.add(f"{where}.sourcedId", MSG_ID_MISMATCH.format(path=sourced_id))
    sid = sourced_id or supplied or str(uuid.uuid4())
    _status(obj, where, problems)
    row: dict[str, Any] = {"sourced_id": sid}
    if entity is CATEGORY:
        row["title"] = _text(obj, "title", where, problems, required=True)
        row["weight"] = _number(obj, "weight", where, problems)
    elif entity is LINE_ITEM:
        row["title"] = _text(obj, "title", where, problems, required=True)
        row["description"] = _text(obj, "description", where, problems, required=False)
        row["assign_date"] = _date(obj, "assignDate", where, problems, required=True)
        row["due_date"] = _date(obj, "dueDate", where, problems, required=True)
        if row["assign_date"] and row["due_date"] and row["due_date"] < row["assign_date"]:
            problems.add(f"{where}.dueDate", MSG_DATE_ORDER)
        row["class_sourced_id"] = _ref(obj, "class", where, problems, required=True)
        row["school_sourced_id"] = _ref(obj, "school", where, problems, required=False)
        row["category_sourced_id"] = _ref(obj, "category", where, problems, required=True)
        session_key = "gradingPeriod" if "gradingPeriod" in obj else "academicSession"
        row["academic_session_sourced_id"] = _ref(obj, session_key, where, problems,
                                                  required=True)
        row["result_value_min"] = _number(obj, "resultValueMin", where, problems)
        row["result_value_max"] = _number(obj, "resultValueMax", where, problems)
    elif entity is RESULT:
        row["line_item_sourced_id"] = _ref(obj, "lineItem", where, problems, required=True)
        row["student_sourced_id"] = _ref(obj, "student", where, problems, required=True)
        row["class_sourced_id"] = _ref(obj, "class", where, problems, required=False)
        status = _text(obj, "scoreStatus", where, problems, required=True, limit=100)
        if status is not None and status not in SCORE_STATUSES and not (
            status.startswith(EXT_PREFIX) and len(status) > len(EXT_PREFIX)
        ):
            problems.add(f"{where}.scoreStatus", MSG_SCORE_STATUS.format(
                values=", ".join(sorted(SCORE_STATUSES))))
        row["score_status"] = status
        # A score above the line item's resultValueMax is accepted (extra credit).
        row["score"] = _number(obj, "score", where, problems)
        row["text_score"] = _text(obj, "textScore", where, problems, required=False)
        row["score_date"] = _date(obj, "scoreDate", where, problems, required=True)
        row["comment"] = _text(obj, "comment", where, problems, required=False)
        for key, column in (("inProgress", "in_progress"), ("incomplete", "incomplete"),
                            ("late", "late"), ("missing", "missing")):
            row[column] = _boolean(obj, key, where, problems)
    elif entity is SCORE_SCALE:
        row["title"] = _text(obj, "title", where, problems, required=True)
        row["type"] = _text(obj, "type", where, problems, required=True, limit=100)
        org_key = "school" if "school" in obj else "org"
        row["org_sourced_id"] = _ref(obj, org_key, where, problems, required=True)
        row["course_sourced_id"] = _ref(obj, "course", where, problems, required=True)
        row["class_sourced_id"] = _ref(obj, "class", where, problems, required=True)
        row["score_scale_value"] = _scale_values(obj, where, problems)
    if len(problems.items) > before:
        return None
    return Parsed(row=row, where=where, supplied_id=supplied, given=dict(row))


def _scale_values(obj: Mapping, where: str, problems: Problems) -> list[str] | None:
    value = obj.get("scoreScaleValue")
    if value is None:
        problems.add(f"{where}.scoreScaleValue", MSG_REQUIRED)
        return None
    out = []
    if isinstance(value, list) and value:
        for item in value:
            if not isinstance(item, dict):
                break
            lhs, rhs = item.get("itemValueLHS"), item.get("itemValueRHS")
            if not isinstance(lhs, str) or not isinstance(rhs, str) or not lhs or ":" in lhs:
                break
            out.append("{" + lhs + ":" + rhs + "}")
        else:
            return out
    problems.add(f"{where}.scoreScaleValue", MSG_SCALE_VALUES)
    return None


# --- checking references against the release --------------------------------------------------


def _visible(release, entity: str, ids: Iterable[str]) -> QuerySet:  # type: ignore[no-untyped-def]
    """The rows of ``entity`` with these stored ids that ``release`` may show, whether or
    not the entity's columns are projected (a gradebook writer need not read classes to
    write into one: the class must still be in its scope)."""
    return release._filtered(entity, excluded=release.excluded_user_sourced_ids).filter(
        sourced_id__in=sorted(set(ids))
    )


# Compiled visibility statements, keyed by what ``Release._filtered`` reads: the entity,
# the org scope and the exclusions. A write checks its references on every request;
# building and compiling the ORM querysets cost more than running them.
_VISIBLE_SQL_MAX = 256
_visible_sql_cache: OrderedDict[tuple, tuple[str, tuple]] = OrderedDict()
_visible_sql_lock = threading.Lock()

VISIBLE_BY_ID_SQL = "SELECT {columns} FROM ({visible}) v WHERE v.sourced_id = ANY(%s)"


def _visible_sql(release, entity: str, columns: Sequence[str]) -> tuple[str, tuple] | None:  # type: ignore[no-untyped-def]
    """``SELECT columns`` of the rows of ``entity`` the release may show whose sourcedId is
    in the one ``text[]`` parameter appended last, and the parameters before it (None: the
    release shows no row of it).

    Cached by the inputs of ``Release._filtered`` (its org scope and exclusions), so a
    lever that changes either (a new release) compiles afresh; the same inputs always give
    the same statement."""
    if not release.org_sourced_ids:
        return None  # _filtered is empty
    key = (entity, tuple(columns), release.org_array, release.excluded_user_sourced_ids)
    with _visible_sql_lock:
        hit = _visible_sql_cache.get(key)
        if hit is not None:
            _visible_sql_cache.move_to_end(key)
            return hit
    visible, params = (release._filtered(entity, excluded=release.excluded_user_sourced_ids)
                       .values(*dict.fromkeys(("sourced_id", *columns))).query.sql_with_params())
    selected = ", ".join(f"v.{connection.ops.quote_name(c)}" for c in columns)
    compiled = (VISIBLE_BY_ID_SQL.format(columns=selected, visible=visible), tuple(params))
    with _visible_sql_lock:
        _visible_sql_cache[key] = compiled
        while len(_visible_sql_cache) > _VISIBLE_SQL_MAX:
            _visible_sql_cache.popitem(last=False)
    return compiled


def _visible_rows(release, entity: str, ids: Iterable[str],  # type: ignore[no-untyped-def]
                  columns: Sequence[str]) -> list[tuple]:
    """The ``columns`` of the visible rows of ``entity`` with these stored ids."""
    wanted = sorted(set(ids))
    compiled = _visible_sql(release, entity, columns) if wanted else None
    if compiled is None:
        return []
    sql, params = compiled
    with connection.cursor() as cursor:
        cursor.execute(sql, [*params, wanted])
        return cursor.fetchall()


def check_references(release, entity: E.Entity, parsed: list[Parsed],  # type: ignore[no-untyped-def]
                     problems: Problems, *, fixed: Mapping[str, str] | None = None) -> None:
    """Check every reference of the parsed objects against ``release``, set-based (one
    query per referenced entity); fill in references the binding lets a client omit
    (a line item's school, a result's class). Person ids of a pseudonymised release are
    mapped back to stored ids first."""
    rows = [p.row for p in parsed]
    if not rows:
        return

    def refs(column: str) -> set[str]:
        return {r[column] for r in rows if r.get(column)}

    def unknown(p: Parsed, key: str, type_: str, sid: str) -> None:
        problems.add(f"{p.where}.{key}.sourcedId", MSG_UNKNOWN_REF.format(type=type_, sid=sid))

    fixed = fixed or {}
    if entity is LINE_ITEM:
        classes = dict(_visible_rows(release, "classes", refs("class_sourced_id"),
                                     ("sourced_id", "school_sourced_id")))
        categories = {sid for (sid,) in _visible_rows(
            release, "categories", refs("category_sourced_id"), ("sourced_id",))}
        sessions = {sid for (sid,) in _visible_rows(
            release, "academicSessions", refs("academic_session_sourced_id"), ("sourced_id",))}
        for p in parsed:
            r = p.row
            school = classes.get(r["class_sourced_id"])
            if school is None:
                unknown(p, "class", "class", r["class_sourced_id"])
            elif r["school_sourced_id"] is None:
                r["school_sourced_id"] = school
            elif r["school_sourced_id"] != school:
                problems.add(f"{p.where}.school.sourcedId", MSG_REF_MISMATCH.format(
                    expected=school, what="school", parent="class"))
            if r["category_sourced_id"] not in categories:
                unknown(p, "category", "category", r["category_sourced_id"])
            if r["academic_session_sourced_id"] not in sessions:
                unknown(p, "academicSession", "academicSession",
                        r["academic_session_sourced_id"])
    elif entity is RESULT:
        # what the client called each student (a pseudonym in a pseudonymised release)
        given = [p.row["student_sourced_id"] for p in parsed]
        if release.pseudonymised:
            stored = release.pseudonymiser.reverse(sorted(set(given)))
            for r in rows:
                r["student_sourced_id"] = stored.get(r["student_sourced_id"])
        items, students, enrolled = _result_references(
            release, refs("line_item_sourced_id"), refs("student_sourced_id"))
        for p, shown in zip(parsed, given, strict=True):
            r = p.row
            student = r["student_sourced_id"]
            item = items.get(r["line_item_sourced_id"])
            if item is None:
                unknown(p, "lineItem", "lineItem", r["line_item_sourced_id"])
            if student not in students:
                unknown(p, "student", "student", shown)
            if item is None:
                continue
            klass, session = item
            if r["class_sourced_id"] is None:
                r["class_sourced_id"] = klass
            elif r["class_sourced_id"] != klass:
                problems.add(f"{p.where}.class.sourcedId", MSG_REF_MISMATCH.format(
                    expected=klass, what="class", parent="line item"))
            if "academicSession" in fixed and session != fixed["academicSession"]:
                problems.add(f"{p.where}.lineItem.sourcedId", MSG_REF_MISMATCH.format(
                    expected=f"a line item of academic session {fixed['academicSession']}",
                    what="line item", parent="path"))
            if student in students and (student, klass) not in enrolled:
                problems.add(f"{p.where}.student.sourcedId",
                             MSG_NOT_ENROLLED.format(student=shown, klass=klass))
    elif entity is SCORE_SCALE:
        classes = dict(_visible_rows(release, "classes", refs("class_sourced_id"),
                                     ("sourced_id", "school_sourced_id")))
        courses = {sid for (sid,) in _visible_rows(
            release, "courses", refs("course_sourced_id"), ("sourced_id",))}
        for p in parsed:
            r = p.row
            school = classes.get(r["class_sourced_id"])
            if school is None:
                unknown(p, "class", "class", r["class_sourced_id"])
            elif r["org_sourced_id"] != school:
                problems.add(f"{p.where}.school.sourcedId", MSG_REF_MISMATCH.format(
                    expected=school, what="school", parent="class"))
            if r["course_sourced_id"] not in courses:
                unknown(p, "course", "course", r["course_sourced_id"])


# The visible line items named, once (a CTE the enrolment part reuses: planned once).
ITEMS_CTE_SQL = "WITH i AS MATERIALIZED ({items}) "
ITEM_REFERENCES_SQL = (
    "SELECT 'i', i.sourced_id, i.class_sourced_id, i.academic_session_sourced_id FROM i"
)
USER_REFERENCES_SQL = "SELECT 'u', u.sourced_id, NULL, NULL FROM ({users}) u"
ENROLMENT_REFERENCES_SQL = (
    "SELECT 'e', e.user_sourced_id, e.class_sourced_id, NULL FROM roster_enrollment e "
    "WHERE e.valid_to_version IS NULL AND e.role = 'student' AND e.user_sourced_id = ANY(%s) "
    "AND e.class_sourced_id IN (SELECT i.class_sourced_id FROM i)"
)
_ITEM_COLUMNS = ("sourced_id", "class_sourced_id", "academic_session_sourced_id")


def _result_references(release, item_ids: set[str], student_ids: set[str]):  # type: ignore[no-untyped-def]
    """The visible line items (id -> class, session), the visible students, and their
    (student, class) enrolments, in one round trip: a tool sends one score per request."""
    items: dict[str, tuple[str, str]] = {}
    students: set[str] = set()
    enrolled: set[tuple[str, str]] = set()
    compiled_items = _visible_sql(release, "lineItems", _ITEM_COLUMNS) if item_ids else None
    compiled_users = _visible_sql(release, "users", ("sourced_id",)) if student_ids else None
    head, params = "", []
    parts: list[str] = []
    if compiled_items is not None:
        head = ITEMS_CTE_SQL.format(items=compiled_items[0])
        params += [*compiled_items[1], sorted(item_ids)]
        parts.append(ITEM_REFERENCES_SQL)
    if compiled_users is not None:
        parts.append(USER_REFERENCES_SQL.format(users=compiled_users[0]))
        params += [*compiled_users[1], sorted(student_ids)]
    if compiled_items is not None and compiled_users is not None:
        parts.append(ENROLMENT_REFERENCES_SQL)
        params.append(sorted(student_ids))
    if not parts:
        return items, students, enrolled
    sql = head + " UNION ALL ".join(f"({part})" for part in parts)
    with connection.cursor() as cursor:
        prepared.execute(cursor, prepared.statement(sql, generic=True), params)
        for kind, sid, klass, session in cursor.fetchall():
            if kind == "i":
                items[sid] = (klass, session)
            elif kind == "u":
                students.add(sid)
            else:
                enrolled.add((sid, klass))
    return items, students, enrolled


def render_written(entity: E.Entity, parsed: Parsed, fields: Iterable[E.Field], *,
                   written_at: dt.datetime | None, href_base: str) -> str:
    """The object a write stored, as JSON in the read shape, without reading it back: the
    client's own ids (pseudonyms stay pseudonyms), references the service filled in, and
    only the fields its release projects."""
    row, given = parsed.row, parsed.given
    out: dict[str, Any] = {}
    for f in fields:
        if f.kind == E.STATUS:
            out[f.name] = "active"
            continue
        if f.column == "date_last_modified":
            if written_at is not None:
                out[f.name] = written_at.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.") + \
                    f"{written_at.microsecond // 1000:03d}Z"
            continue
        value = given.get(f.column) if given.get(f.column) is not None else row.get(f.column)
        if value is None:
            continue
        if f.kind == E.NUMBER:
            out[f.name] = float(value)
        elif f.kind == E.DATE:
            out[f.name] = value.isoformat()
        elif f.kind == E.BOOL:
            out[f.name] = "true" if value else "false"
        elif f.kind == E.REF:
            out[f.name] = {"href": f"{href_base}/{f.ref_collection}/{value}",
                           "sourcedId": value, "type": f.ref_type}
        elif f.kind == E.SCALE_VALUES:
            pairs = [item.strip("{}").split(":", 1) for item in value]
            out[f.name] = [{"itemValueLHS": lhs, "itemValueRHS": rhs} for lhs, rhs in pairs]
        else:
            out[f.name] = value
    return json.dumps(out, separators=(",", ":"))
