"""Checks over a block of CSV lines in one call, for the COPY fast path's byte scan.

A large file streams past the scan a megabyte at a time, and every line of it is matched
against the patterns of its fields (parse.PlainScan). Python's backtracking ``re`` made
that the largest part of staging a large district (1.5 s of Python for 2.8 million
lines, while PostgreSQL waited for the rows); RE2 matches the same patterns in linear
time, four times faster. The patterns are plain regular expressions (no backreferences
or lookarounds) over bytes, which both engines read alike; a pattern RE2 declines is
matched by ``re``.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable

import re2

logger = logging.getLogger(__name__)

# Room for the largest line patterns (a wide file's bounded repetitions expand) in RE2's
# compiled program and DFA cache; past it RE2 would fall back to a slower matcher.
_RE2_MEMORY = 64 << 20


def block_matcher(pattern: bytes) -> Callable[[bytes], object | None]:
    """``fullmatch`` of ``pattern`` over a whole block: a match object, or None."""
    options = re2.Options()
    options.max_mem = _RE2_MEMORY
    options.encoding = re2.Options.Encoding.LATIN1  # byte for byte, as ``re`` on bytes
    options.never_capture = True  # only whether it matches
    try:
        return re2.compile(pattern, options=options).fullmatch
    except re2.error:
        logger.warning("line pattern matched by Python's re (RE2 declined it)")
        return re.compile(pattern).fullmatch


def longest_line_exceeds(block: bytes, limit: int) -> bool:
    """Whether a line of ``block`` (lines end in a newline) is longer than ``limit``.

    A line longer than ``limit`` covers some multiple of ``limit``, so looking at the
    lines through those offsets finds it without splitting the block into lines.
    """
    if len(block) <= limit:
        return False
    rfind, find = block.rfind, block.find
    for offset in range(0, len(block), limit):
        start = rfind(b"\n", 0, offset) + 1
        end = find(b"\n", offset)
        if (len(block) if end < 0 else end) - start > limit:
            return True
    return False
