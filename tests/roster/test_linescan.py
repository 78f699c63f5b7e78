"""The byte scan's block checks (linescan.py) say exactly what a line-by-line reading in
Python would: RE2 matches the scan's patterns as ``re`` does, and the line-length check
finds any line over the limit without splitting the block."""

from __future__ import annotations

import re

from hypothesis import given, settings
from hypothesis import strategies as st

from apps.roster import schema
from apps.roster.ingest.linescan import block_matcher, longest_line_exceeds
from apps.roster.ingest.parse import _FIELD, scan_pattern
from apps.roster.ingest.rowplan import Field

# bytes a CSV line of a feed is made of, the awkward ones included
_ALPHABET = st.sampled_from([b"a", b"Z", b"0", b"9", b"-", b".", b"_", b"/", b"@", b":",
                             b" ", b",", b'"', b"\r", b"\t", b"\\", "é".encode(),
                             b"\xff", b"T", b"Z", b"true", b"2024-09-02", b"ext:"])
_LINES = st.lists(st.lists(_ALPHABET, max_size=12).map(b"".join), max_size=6)


def _block(lines: list[bytes]) -> bytes:
    return b"".join(line + b"\n" for line in lines)


@settings(max_examples=300, deadline=None)
@given(_LINES, st.integers(min_value=1, max_value=12))
def test_a_line_over_the_limit_is_found_wherever_it_lies(lines, limit):
    block = _block(lines)
    naive = max((len(line) for line in block.split(b"\n")), default=0) > limit
    assert longest_line_exceeds(block, limit) is naive


def _column_patterns() -> list[bytes]:
    patterns = []
    for kind in (schema.GUID, schema.GUID_LIST, schema.DATE, schema.DATETIME, schema.BOOLEAN,
                 schema.DECIMAL, schema.INTEGER, schema.YEAR, schema.STRING, schema.ENUM):
        for required in (True, False):
            column = schema.Column("x", kind, required,
                                   enum=schema.ENROLLMENT_ROLES if kind == schema.ENUM else None,
                                   allow_ext=kind == schema.ENUM)
            pattern = scan_pattern(Field(0, 3, column, "x", required))
            if pattern is not None:
                patterns.append(pattern)
    return patterns + [_FIELD]


_PATTERNS = _column_patterns()


@settings(max_examples=400, deadline=None)
@given(st.sampled_from(_PATTERNS), st.sampled_from(_PATTERNS), _LINES)
def test_re2_reads_the_scan_patterns_as_python_does(first, second, lines):
    pattern = rb"(?:%s,%s\r?\n)*" % (first, second)
    block = _block(lines)
    assert (block_matcher(pattern)(block) is None) is (re.compile(pattern).fullmatch(block)
                                                       is None)


def test_a_pattern_re2_declines_is_matched_by_python_re():
    repeated = block_matcher(rb"(a+)\1\n")  # a backreference: not a regular language
    assert repeated(b"aaaa\n") is not None
    assert repeated(b"aaa\n") is None
