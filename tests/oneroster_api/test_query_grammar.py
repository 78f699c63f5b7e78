"""The filter grammar and the other query parameters, as a parser: what parses, into what,
and that any other input is the documented 400 and nothing else."""

from __future__ import annotations

import pytest
from django.http import QueryDict
from hypothesis import given, settings
from hypothesis import strategies as st

from apps.oneroster_api import entities as E
from apps.oneroster_api.errors import INVALID_DATA, INVALID_FILTER_FIELD, ApiError
from apps.oneroster_api.query import (
    MAX_PREDICATES,
    MAX_VALUE_CHARS,
    Predicate,
    compile_filter,
    parse_filter,
    parse_list_params,
)

USER_FIELDS = {f.name: f for f in E.USER.fields}


def test_a_single_predicate_parses():
    assert parse_filter("givenName='Ann'").disjuncts == ((Predicate("givenName", "=", "Ann"),),)


@pytest.mark.parametrize("op", ["=", "!=", ">", ">=", "<", "<=", "~"])
def test_every_operator_parses_with_or_without_spaces(op):
    assert parse_filter(f"familyName{op}'x'") == parse_filter(f"familyName {op} 'x'")
    assert parse_filter(f"familyName {op} 'x'").disjuncts[0][0].op == op


def test_and_binds_tighter_than_or():
    flt = parse_filter("a='1' OR b='2' AND c='3'")
    assert flt.disjuncts == (
        (Predicate("a", "=", "1"),),
        (Predicate("b", "=", "2"), Predicate("c", "=", "3")),
    )


def test_a_doubled_quote_is_a_quote_and_operators_inside_values_are_text():
    flt = parse_filter("familyName='O''Brien AND x=''y'''")
    assert flt.disjuncts == ((Predicate("familyName", "=", "O'Brien AND x='y'"),),)


def test_dotted_reference_fields_parse():
    assert parse_filter("school.sourcedId='s1'").disjuncts[0][0].field == "school.sourcedId"


@pytest.mark.parametrize("text", [
    "givenName",  # no operator
    "givenName=",  # no value
    "givenName=Ann",  # unquoted
    "givenName='Ann",  # not closed
    "givenName='a' AND",  # dangling
    "givenName='a' XOR b='c'",  # unknown logical operator
    "givenName='a'AND b='c'",  # AND glued to the value
    "='a'",  # no field
    "(givenName='a')",  # no parentheses in the binding
    "given Name='a'",
    "givenName=='a'",
    "givenName='a' b='c'",
    "givenName='a\x00'",
])
def test_malformed_filters_are_a_400_invalid_filter_field(text):
    with pytest.raises(ApiError) as exc:
        parse_filter(text)
    assert exc.value.code_minor == INVALID_FILTER_FIELD
    assert exc.value.status == 400


def test_clause_count_and_value_length_are_limited():
    parse_filter(" AND ".join(["a='1'"] * MAX_PREDICATES))
    with pytest.raises(ApiError):
        parse_filter(" AND ".join(["a='1'"] * (MAX_PREDICATES + 1)))
    parse_filter("a='" + "x" * MAX_VALUE_CHARS + "'")
    with pytest.raises(ApiError):
        parse_filter("a='" + "x" * (MAX_VALUE_CHARS + 1) + "'")


def test_unknown_or_unlisted_fields_do_not_compile():
    with pytest.raises(ApiError) as exc:
        compile_filter(parse_filter("password='x'"), E.USER, USER_FIELDS)
    assert exc.value.code_minor == INVALID_FILTER_FIELD
    without_email = {k: v for k, v in USER_FIELDS.items() if k != "email"}
    with pytest.raises(ApiError):
        compile_filter(parse_filter("email~'a'"), E.USER, without_email)


@pytest.mark.parametrize("text", [
    "enabledUser='yes'", "enabledUser>'true'", "dateLastModified>'yesterday'",
    "grades>'07'", "roles='x'", "agents='x'",
])
def test_values_of_the_wrong_type_are_a_400(text):
    with pytest.raises(ApiError) as exc:
        compile_filter(parse_filter(text), E.USER, USER_FIELDS)
    assert exc.value.code_minor == INVALID_FILTER_FIELD


@pytest.mark.parametrize("query", [
    "limit=0", "limit=-1", "limit=abc", "limit=1.5", "limit=", "offset=-1", "offset=x",
    "offset=99999999999", "orderBy=up", "limit=1&limit=2", "filter=a%3D'1'&filter=b%3D'2'",
])
def test_invalid_paging_and_order_parameters_are_a_400_invaliddata(query):
    with pytest.raises(ApiError) as exc:
        parse_list_params(QueryDict(query))
    assert exc.value.code_minor in (INVALID_DATA, INVALID_FILTER_FIELD)
    assert exc.value.status == 400


def test_fields_accepts_a_comma_list_and_repetition():
    params = parse_list_params(QueryDict("fields=sourcedId,givenName&fields=familyName"))
    assert params.fields == ("sourcedId", "givenName", "familyName")


def test_limit_above_the_largest_page_is_capped(settings):
    settings.INTERCHANGE_ONEROSTER_MAX_LIMIT = 500
    assert parse_list_params(QueryDict("limit=100000")).limit == 500


@settings(max_examples=400, deadline=None)
@given(st.text(max_size=300))
def test_any_text_either_parses_or_is_the_documented_400(text):
    try:
        flt = parse_filter(text)
    except ApiError as error:
        assert error.status == 400 and error.code_minor == INVALID_FILTER_FIELD
        return
    # What parses round-trips through the normal form.
    assert parse_filter(flt.canonical()) == flt


_fields = st.sampled_from(["givenName", "familyName", "email", "dateLastModified",
                           "enabledUser", "grades", "status", "primaryOrg.sourcedId", "x.y"])
_ops = st.sampled_from(["=", "!=", ">", ">=", "<", "<=", "~"])
_values = st.text(max_size=40).filter(lambda v: "\x00" not in v)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(_fields, _ops, _values, st.sampled_from([" AND ", " OR "])),
                min_size=1, max_size=6))
def test_well_formed_filters_round_trip_and_compile_or_refuse_cleanly(parts):
    text = "".join(
        f"{f} {op} '{v.replace(chr(39), chr(39) * 2)}'" + (join if i < len(parts) - 1 else "")
        for i, (f, op, v, join) in enumerate(parts)
    )
    flt = parse_filter(text)
    assert [p.value for p in flt.predicates()] == [v for _, _, v, _ in parts]
    try:
        compile_filter(flt, E.USER, USER_FIELDS)
    except ApiError as error:
        assert error.status == 400
