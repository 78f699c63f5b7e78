"""Field converters: one precompiled function per column, string in, typed value out.

Each converter takes a NON-EMPTY string (empty means "not supplied" and is handled by the
caller) and returns the typed canonical value, or ``BAD`` when the text is not valid. No
exception is raised on the hot path and every pattern is compiled once, at import.

Leniency, deliberately narrow and documented:
- list items are separated by commas and surrounding spaces are stripped ("a, b" is [a, b]);
- a DateTime may omit the milliseconds or carry 1 to 6 fraction digits, but must be UTC (Z);
- categories.weight and scores are decimals (the binding's Integer/Float both fit).
"""
from __future__ import annotations

import re
from collections.abc import Callable
from datetime import date, datetime
from decimal import Decimal

from apps.roster import schema as S
from apps.roster.ingest import errors as E


class _Bad:
    __slots__ = ()

    def __repr__(self) -> str:
        return "BAD"


BAD = _Bad()
Converter = Callable[[str], object]

# The forms the parser reads (the fast path's byte scan and SQL checks use the same
# strings: parse.VALUE_PATTERNS).
DATE_PATTERN = r"[0-9]{4}-[0-9]{2}-[0-9]{2}"
YEAR_PATTERN = r"[0-9]{4}"
INTEGER_PATTERN = r"-?[0-9]{1,18}"
# Canonical decimals are numeric(20, 6) (scores, weights, result ranges): 14 digits before
# the point, and a value rounded to 6 places may gain one, so at most 13 are read (a longer
# number is reported on its line, not left to overflow when the rows are written).
DECIMAL_INTEGER_DIGITS = 13
DECIMAL_PATTERN = (rf"-?[0-9]{{1,{DECIMAL_INTEGER_DIGITS}}}(?:\.[0-9]{{1,10}})?"
                   rf"|-?\.[0-9]{{1,10}}")

_GUID = re.compile(r"[0-9A-Za-z._/@-]{1,255}", re.ASCII)
_DATE = re.compile(DATE_PATTERN, re.ASCII)
_DATETIME = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,6})?Z",
                       re.ASCII)
_YEAR = re.compile(YEAR_PATTERN, re.ASCII)
_DECIMAL = re.compile(DECIMAL_PATTERN, re.ASCII)
_INTEGER = re.compile(INTEGER_PATTERN, re.ASCII)
_guid_match = _GUID.fullmatch

# Bounded memo for dates and date-times: feeds repeat the same few values (term dates, the
# export's timestamp) millions of times, and a dict hit is far cheaper than parsing.
_MEMO_LIMIT = 50_000


def _memoized(parse: Callable[[str], object]) -> Converter:
    memo: dict[str, object] = {}

    def convert(text: str) -> object:
        value = memo.get(text)
        if value is None:
            value = parse(text)
            if len(memo) < _MEMO_LIMIT:
                memo[text] = value
        return value

    convert.memo = memo  # type: ignore[attr-defined]  # read by generated row plans
    return convert


def memo_of(convert: Converter) -> dict[str, object]:
    return convert.memo  # type: ignore[attr-defined]


def _parse_date(text: str) -> object:
    if not _DATE.fullmatch(text):
        return BAD
    try:
        return date.fromisoformat(text)
    except ValueError:
        return BAD


def _parse_datetime(text: str) -> object:
    if not _DATETIME.fullmatch(text):
        return BAD
    try:
        return datetime.fromisoformat(text)  # 3.11 reads the trailing Z as UTC
    except ValueError:
        return BAD


def to_guid(text: str) -> object:
    return text if _guid_match(text) else BAD


_GUID_LIST = re.compile(r" *[0-9A-Za-z._/@-]{1,255} *(?:, *[0-9A-Za-z._/@-]{1,255} *)*",
                        re.ASCII).fullmatch


def to_guid_list(text: str) -> object:
    if _GUID_LIST(text) is None:
        return BAD
    items = text.split(",")
    return [item.strip() for item in items] if " " in text else items


def to_string(text: str) -> object:
    return text


def to_string_list(text: str) -> object:
    items = text.split(",")
    if " " in text:
        items = [item.strip() for item in items]
    if "" in items:
        return BAD
    return items


def to_year(text: str) -> object:
    return int(text) if _YEAR.fullmatch(text) else BAD


_BOOLEANS = {"true": True, "false": False}


def to_boolean(text: str) -> object:
    return _BOOLEANS.get(text, BAD)


def to_decimal(text: str) -> object:
    return Decimal(text) if _DECIMAL.fullmatch(text) else BAD


def to_integer(text: str) -> object:
    return int(text) if _INTEGER.fullmatch(text) else BAD


def enum_converter(
    values: frozenset[str], allow_ext: bool, mapping: dict[str, str] | None = None
) -> Converter:
    """Validate an enumeration after applying the mapping rules for it."""
    allowed = set(values)
    mapping = dict(mapping or {})

    if mapping:
        def convert(text: str) -> object:
            text = mapping.get(text, text)
            if text in allowed or (allow_ext and text.startswith("ext:") and len(text) > 4):
                return text
            return BAD
    elif allow_ext:
        def convert(text: str) -> object:
            if text in allowed or (text.startswith("ext:") and len(text) > 4):
                return text
            return BAD
    else:
        def convert(text: str) -> object:
            return text if text in allowed else BAD

    return convert


# Error code reported when a converter of a type returns BAD.
BAD_CODES: dict[str, str] = {
    S.GUID: E.BAD_GUID,
    S.GUID_LIST: E.BAD_GUID,
    S.STRING: E.BAD_LIST,  # never returned: strings are always valid
    S.STRING_LIST: E.BAD_LIST,
    S.DATE: E.BAD_DATE,
    S.DATETIME: E.BAD_DATETIME,
    S.YEAR: E.BAD_YEAR,
    S.BOOLEAN: E.BAD_BOOLEAN,
    S.ENUM: E.BAD_ENUM,
    S.DECIMAL: E.BAD_NUMBER,
    S.INTEGER: E.BAD_NUMBER,
}


def converter_for(column: S.Column, mapping: dict[str, str] | None = None) -> Converter | None:
    """The converter of a column; None for a plain string (kept as is, no call needed)."""
    kind = column.type
    if kind == S.STRING:
        return None
    if kind == S.ENUM:
        assert column.enum is not None
        return enum_converter(column.enum, column.allow_ext, mapping)
    if kind == S.DATE:
        return _memoized(_parse_date)
    if kind == S.DATETIME:
        return _memoized(_parse_datetime)
    return {
        S.GUID: to_guid,
        S.GUID_LIST: to_guid_list,
        S.STRING_LIST: to_string_list,
        S.YEAR: to_year,
        S.BOOLEAN: to_boolean,
        S.DECIMAL: to_decimal,
        S.INTEGER: to_integer,
    }[kind]
