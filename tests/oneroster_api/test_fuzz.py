"""A fuzz run against the OpenAPI document: every path with random path ids and query
parameters answers the documented way, never a 5xx."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from apps.oneroster_api.docs import openapi_document

pytestmark = pytest.mark.django_db

DOC = openapi_document()
PATHS = sorted(DOC["paths"])
_text = st.text(st.characters(codec="utf-8", exclude_characters="\x00/?#{}"), max_size=30)
_param = st.one_of(_text, st.integers(-5, 10**12).map(str), st.sampled_from(
    ["", "asc", "desc", "sourcedId", "givenName", "dateLastModified", "1", "0"]))
_filter = st.one_of(_text, st.builds(
    lambda f, o, v: f"{f}{o}'{v}'",
    st.sampled_from(["givenName", "sourcedId", "dateLastModified", "status", "role", "x",
                     "school.sourcedId", "enabledUser", "grades", "type"]),
    st.sampled_from(["=", "!=", ">", ">=", "<", "<=", "~"]),
    _text.map(lambda v: v.replace("'", "''"))))


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(path=st.sampled_from(PATHS), ids=st.lists(st.one_of(
    st.sampled_from(["sch1", "cls1", "p1", "t1", "term-1", "course-1", "dist"]), _text.filter(
        lambda v: v.strip() != "")), min_size=3, max_size=3),
       params=st.dictionaries(st.sampled_from(["limit", "offset", "sort", "orderBy", "fields"]),
                              _param, max_size=4),
       flt=st.one_of(st.none(), _filter))
def test_no_request_shaped_by_the_openapi_document_gets_a_5xx(api, token, path, ids, params,
                                                              flt):
    concrete = path
    for value in ids:
        if "{" not in concrete:
            break
        start, end = concrete.index("{"), concrete.index("}")
        concrete = concrete[:start] + value + concrete[end + 1:]
    if flt is not None:
        params["filter"] = flt
    response = api.get(concrete, token, **params)
    assert response.status_code < 500, (concrete, params, response.content[:300])
    assert response["Content-Type"].startswith("application/json")
