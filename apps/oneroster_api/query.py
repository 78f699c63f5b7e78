"""The query parameters of the binding: ``filter``, ``sort``/``orderBy``, ``limit``/``offset``
and ``fields``, parsed up front into plain values and compiled into ORM expressions.

The filter grammar (``field op 'value'`` joined by ``AND``/``OR``) is parsed by hand into a
small tree; the tree is compiled into Django ``Q`` objects whose values are always bound
parameters, so no client text ever becomes SQL. Field names are checked against the
entity's fields *that exist for this client* (the release's projection), so a field the
integration is not approved for cannot be used to probe values. The compiled expression is
ANDed onto the release's queryset, whose own WHERE clause is already in place: a client's
``OR`` is grouped inside it and can never widen it.

Precedence: ``AND`` binds tighter than ``OR`` (``a OR b AND c`` is ``a OR (b AND c)``);
there are no parentheses in the binding. A value is quoted with single quotes; a single
quote inside a value is written twice (``name='O''Brien'``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from functools import reduce
from operator import and_, or_

from django.conf import settings
from django.db.models import F, OuterRef, Q, Subquery, Value
from django.db.models.functions import Coalesce, Collate
from django.db.models.lookups import (
    Exact,
    GreaterThan,
    GreaterThanOrEqual,
    LessThan,
    LessThanOrEqual,
)
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime

from apps.oneroster_api import entities as E
from apps.oneroster_api.errors import (
    INVALID_DATA,
    INVALID_FILTER_FIELD,
    INVALID_SELECTION_FIELD,
    MSG_DUPLICATE_PARAMETER,
    MSG_FILTER_FIELD,
    MSG_FILTER_SYNTAX,
    MSG_FILTER_TOO_LONG,
    MSG_FILTER_TOO_MANY,
    MSG_FILTER_VALUE,
    MSG_FILTER_VALUE_TOO_LONG,
    MSG_LIMIT,
    MSG_OFFSET,
    MSG_ORDER_BY,
    MSG_SELECTION_FIELD,
    MSG_SORT_FIELD,
    ApiError,
)

OPERATORS = (">=", "<=", "!=", "=", ">", "<", "~")  # longest first
LOGICAL = ("AND", "OR")
MAX_FILTER_CHARS = 4096
MAX_PREDICATES = 20
MAX_VALUE_CHARS = 256
MAX_FIELD_CHARS = 64
DEFAULT_LIMIT = 100
MAX_OFFSET = 2**31 - 1
# Strings compare and sort by code point, whatever the database's default collation.
C = "C"


def max_limit() -> int:
    return getattr(settings, "INTERCHANGE_ONEROSTER_MAX_LIMIT", 5000)


# --------------------------------------------------------------------------------------------
# The filter tree
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Predicate:
    field: str
    op: str
    value: str


@dataclass(frozen=True)
class Filter:
    """``OR`` of ``AND``s of predicates (the binding has no parentheses)."""

    disjuncts: tuple[tuple[Predicate, ...], ...]

    def predicates(self) -> Iterable[Predicate]:
        for conjunct in self.disjuncts:
            yield from conjunct

    def canonical(self) -> str:
        """A normal form, for cache keys: equal filters give equal strings."""
        return " OR ".join(
            " AND ".join(f"{p.field}{p.op}'{p.value.replace(chr(39), chr(39) * 2)}'" for p in c)
            for c in self.disjuncts
        )


def _syntax(detail: str) -> ApiError:
    return ApiError(INVALID_FILTER_FIELD, MSG_FILTER_SYNTAX.format(detail=detail))


def _is_field_char(ch: str, first: bool) -> bool:
    if ch.isascii() and (ch.isalpha() or ch == "_"):
        return True
    return not first and ch.isascii() and (ch.isdigit() or ch == ".")


def parse_filter(text: str) -> Filter:
    """Parse a ``filter`` value; anything else than the grammar is a 400 (never an exception
    of another kind)."""
    if len(text) > MAX_FILTER_CHARS:
        raise ApiError(INVALID_FILTER_FIELD, MSG_FILTER_TOO_LONG.format(limit=MAX_FILTER_CHARS))
    i, n = 0, len(text)
    disjuncts: list[tuple[Predicate, ...]] = []
    current: list[Predicate] = []
    count = 0

    def skip_spaces(j: int) -> int:
        while j < n and text[j] in " \t":
            j += 1
        return j

    while True:
        i = skip_spaces(i)
        start = i
        while i < n and _is_field_char(text[i], i == start):
            i += 1
        field = text[start:i]
        if not field:
            raise _syntax(f"a field name was expected at position {start + 1}")
        if len(field) > MAX_FIELD_CHARS:
            raise _syntax("a field name is too long")
        i = skip_spaces(i)
        op = next((o for o in OPERATORS if text.startswith(o, i)), None)
        if op is None:
            raise _syntax(f"an operator (= != > >= < <= ~) was expected at position {i + 1}")
        i = skip_spaces(i + len(op))
        if i >= n or text[i] != "'":
            raise _syntax(f"a value in single quotes was expected at position {i + 1}")
        i += 1
        chars: list[str] = []
        while True:
            if i >= n:
                raise _syntax("a quoted value is not closed")
            ch = text[i]
            if ch == "'":
                if i + 1 < n and text[i + 1] == "'":
                    chars.append("'")
                    i += 2
                    continue
                i += 1
                break
            chars.append(ch)
            i += 1
            if len(chars) > MAX_VALUE_CHARS:
                raise ApiError(
                    INVALID_FILTER_FIELD, MSG_FILTER_VALUE_TOO_LONG.format(limit=MAX_VALUE_CHARS)
                )
        value = "".join(chars)
        if "\x00" in value:
            raise _syntax("a value contains a NUL character")
        count += 1
        if count > MAX_PREDICATES:
            raise ApiError(INVALID_FILTER_FIELD, MSG_FILTER_TOO_MANY.format(limit=MAX_PREDICATES))
        current.append(Predicate(field, op, value))
        j = skip_spaces(i)
        if j >= n:
            break
        if j == i:
            raise _syntax(f"AND or OR must be separated by spaces at position {j + 1}")
        word_end = j
        while word_end < n and text[word_end].isascii() and text[word_end].isalpha():
            word_end += 1
        word = text[j:word_end].upper()
        if word not in LOGICAL or word_end >= n or text[word_end] not in " \t":
            raise _syntax(f"AND or OR was expected at position {j + 1}")
        if word == "OR":
            disjuncts.append(tuple(current))
            current = []
        i = word_end
    disjuncts.append(tuple(current))
    return Filter(tuple(disjuncts))


# --------------------------------------------------------------------------------------------
# Compiling the tree against an entity
# --------------------------------------------------------------------------------------------


def resolve_field(entity: E.Entity, available: dict[str, E.Field], name: str) -> E.Field | None:
    """A filter or sort field by name: ``school`` or ``school.sourcedId`` for a reference."""
    if name.endswith(".sourcedId"):
        f = available.get(name[: -len(".sourcedId")])
        return f if f is not None and f.kind == E.REF else None
    return available.get(name)


def _bad_value(field: str, detail: str) -> ApiError:
    return ApiError(INVALID_FILTER_FIELD, MSG_FILTER_VALUE.format(field=field, detail=detail))


def _typed_value(f: E.Field, p: Predicate) -> object:
    if f.kind == E.DATETIME:
        try:
            parsed = parse_datetime(p.value)
        except ValueError:
            parsed = None
        if parsed is None:
            try:
                day = parse_date(p.value)
            except ValueError:
                day = None
            if day is None:
                raise _bad_value(p.field, "expected an ISO 8601 date-time")
            parsed = dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC)
        if timezone.is_naive(parsed):
            parsed = parsed.replace(tzinfo=dt.UTC)
        return parsed
    if f.kind == E.DATE:
        try:
            day = parse_date(p.value)
        except ValueError:
            day = None
        if day is None:
            raise _bad_value(p.field, "expected a date YYYY-MM-DD")
        return day
    if f.kind == E.BOOL:
        if p.value not in ("true", "false"):
            raise _bad_value(p.field, "expected 'true' or 'false'")
        return p.value == "true"
    if f.kind == E.YEAR:
        if not (p.value.isascii() and p.value.isdigit() and len(p.value) <= 4):
            raise _bad_value(p.field, "expected a year")
        return int(p.value)
    if f.kind == E.NUMBER:
        try:
            number = Decimal(p.value)
        except InvalidOperation:
            number = None
        if number is None or not number.is_finite() or len(p.value) > 40:
            raise _bad_value(p.field, "expected a number")
        return number
    return p.value


def column_expr(f: E.Field):  # type: ignore[no-untyped-def]
    """The value a field is filtered and sorted by: its column, except dateLastModified,
    which falls back to when the record's version was applied when the source gave none
    (the rendered value does the same)."""
    if f.column == "date_last_modified":
        from apps.roster.models import RosterVersion

        applied = RosterVersion.objects.filter(number=OuterRef("valid_from_version"))
        return Coalesce(F("date_last_modified"), Subquery(applied.values("created_at")[:1]))
    return F(f.column)


_COMPARISONS = {
    ">": GreaterThan, ">=": GreaterThanOrEqual, "<": LessThan, "<=": LessThanOrEqual,
}


def _predicate_q(f: E.Field, p: Predicate) -> Q:
    if f.kind == E.STATUS:
        # Every served record is active (a deleted record has no current row).
        matches = {"=": p.value == "active", "!=": p.value != "active",
                   "~": p.value in "active"}.get(p.op)
        if matches is None:
            raise _bad_value(p.field, "only = != ~ apply to status")
        return Q() if matches else Q(pk__isnull=True)  # never true, still valid SQL
    column = f.column
    assert column is not None
    if f.kind == E.STRLIST:
        if p.op not in ("=", "!="):
            raise _bad_value(p.field, "only = and != apply to a list")
        q = Q(**{f"{column}__contains": [p.value]})
        return q if p.op == "=" else ~q
    if f.kind == E.BOOL and p.op not in ("=", "!="):
        raise _bad_value(p.field, "only = and != apply to a boolean")
    value = _typed_value(f, p)
    if p.op == "~":
        if f.kind not in (E.STR, E.REF):
            raise _bad_value(p.field, "~ applies to text only")
        return Q(**{f"{column}__icontains": value})
    if f.kind == E.DATETIME:
        lhs = column_expr(f)
        if p.op == "=":
            return Q(Exact(lhs, Value(value)))
        if p.op == "!=":
            return ~Q(Exact(lhs, Value(value)))
        return Q(_COMPARISONS[p.op](lhs, Value(value)))
    if p.op == "=":
        return Q(**{column: value})
    if p.op == "!=":
        return ~Q(**{column: value})
    lhs = Collate(F(column), C) if f.kind in (E.STR, E.REF) else F(column)
    return Q(_COMPARISONS[p.op](lhs, Value(value)))


def compile_filter(flt: Filter, entity: E.Entity, available: dict[str, E.Field]) -> Q:
    disjuncts = []
    for conjunct in flt.disjuncts:
        parts = []
        for p in conjunct:
            f = resolve_field(entity, available, p.field)
            if f is None or not f.filterable:
                raise ApiError(INVALID_FILTER_FIELD, MSG_FILTER_FIELD.format(field=p.field))
            parts.append(_predicate_q(f, p))
        disjuncts.append(reduce(and_, parts))
    return reduce(or_, disjuncts)


# --------------------------------------------------------------------------------------------
# The other parameters
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ListParams:
    limit: int = DEFAULT_LIMIT
    offset: int = 0
    sort: str | None = None
    descending: bool = False
    filter: Filter | None = None
    fields: tuple[str, ...] | None = None


def _single(query, name: str) -> str | None:  # type: ignore[no-untyped-def]
    values = query.getlist(name)
    if len(values) > 1:
        raise ApiError(INVALID_DATA, MSG_DUPLICATE_PARAMETER.format(name=name))
    return values[0] if values else None


def _non_negative_int(raw: str) -> int | None:
    raw = raw.strip()
    if not raw or not raw.isascii() or not raw.isdigit() or len(raw) > 10:
        return None
    return int(raw)


def parse_fields(query) -> tuple[str, ...] | None:  # type: ignore[no-untyped-def]
    """``fields`` as a comma list, repeated, or both; ``None`` when not given."""
    values = query.getlist("fields")
    if not values:
        return None
    names: list[str] = []
    for value in values:
        for name in value.split(","):
            name = name.strip()
            if name and name not in names:
                names.append(name)
    return tuple(names) or None


def parse_list_params(query) -> ListParams:  # type: ignore[no-untyped-def]
    """Validate the query string of a collection request (400 on anything invalid)."""
    limit = DEFAULT_LIMIT
    raw = _single(query, "limit")
    if raw is not None:
        value = _non_negative_int(raw)
        if value is None or value < 1:
            raise ApiError(INVALID_DATA, MSG_LIMIT.format(max=max_limit()))
        limit = min(value, max_limit())
    offset = 0
    raw = _single(query, "offset")
    if raw is not None:
        value = _non_negative_int(raw)
        if value is None or value > MAX_OFFSET:
            raise ApiError(INVALID_DATA, MSG_OFFSET)
        offset = value
    order = _single(query, "orderBy")
    if order is not None and order not in ("asc", "desc"):
        raise ApiError(INVALID_DATA, MSG_ORDER_BY)
    sort = _single(query, "sort")
    if sort is not None:
        sort = sort.strip() or None
    raw_filter = _single(query, "filter")
    flt = parse_filter(raw_filter) if raw_filter not in (None, "") else None
    return ListParams(
        limit=limit, offset=offset, sort=sort, descending=order == "desc", filter=flt,
        fields=parse_fields(query),
    )


def check_fields(names: tuple[str, ...] | None, available: dict[str, E.Field]) -> list[E.Field]:
    """The fields to render: all available ones, or the selection (400 on an unknown one)."""
    if names is None:
        return list(available.values())
    chosen = []
    for name in names:
        f = available.get(name)
        if f is None:
            raise ApiError(INVALID_SELECTION_FIELD, MSG_SELECTION_FIELD.format(field=name))
        chosen.append(f)
    return chosen


def sort_field(params: ListParams, entity: E.Entity, available: dict[str, E.Field]) -> E.Field:
    """The sort field (``sourcedId`` by default); 400 when it does not exist for the client."""
    if params.sort is None:
        return available["sourcedId"]
    f = resolve_field(entity, available, params.sort)
    if f is None or not f.sortable or f.kind == E.STATUS:
        if f is not None and f.kind == E.STATUS:
            return available["sourcedId"]  # every record is active: any order is right
        raise ApiError(INVALID_DATA, MSG_SORT_FIELD.format(field=params.sort))
    return f


def order_by(f: E.Field, descending: bool) -> list:
    """A stable order: the field (strings by code point, NULLs last), then sourcedId."""
    exprs = []
    for column, kind in ((f.column, f.kind), ("sourced_id", E.STR)):
        if column == "sourced_id" and exprs and f.column == "sourced_id":
            break
        if kind in (E.STR, E.REF):
            expr = Collate(F(column), C)
        elif column == "date_last_modified":
            expr = column_expr(f)
        else:
            expr = F(column)
        exprs.append(expr.desc(nulls_last=True) if descending else expr.asc(nulls_last=True))
    return exprs


__all__ = [
    "Filter", "ListParams", "Predicate", "check_fields", "compile_filter",
    "order_by", "parse_fields", "parse_filter", "parse_list_params", "sort_field",
]
