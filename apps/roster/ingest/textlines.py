"""Decoded lines of one zip entry, for ``csv.reader``, with encoding problems pinned to lines.

``io.TextIOWrapper`` would raise on the first invalid byte without saying on which line it sits,
and ``csv`` refuses NUL bytes with no line either. This reader works in large blocks cut at a
newline: a block is decoded in one C call (the fast path, every normal block); only a block
that fails is split into lines to find, report and neutralise the offending ones. Lines are
handed to ``csv`` through ``io.StringIO`` iterators, so the per-line work stays in C.
"""
from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from itertools import chain

from apps.roster.ingest import errors as E

BOM = b"\xef\xbb\xbf"
_BLOCK = 1024 * 1024

Report = Callable[[int, str, str], None]  # (line, code, message)


class TextLines:
    """Iterate over text lines; ``bad_lines`` holds lines that were reported and blanked."""

    def __init__(self, raw: io.RawIOBase, *, max_line_bytes: int, report: Report):
        self._raw = raw
        self._max_line = max_line_bytes
        self._report = report
        self.bad_lines: set[int] = set()

    def __iter__(self) -> Iterator[str]:
        return chain.from_iterable(self._blocks())

    def _read(self) -> bytes:
        # A raw read may return fewer bytes than asked; gather up to one block.
        parts = []
        size = 0
        while size < _BLOCK:
            data = self._raw.read(_BLOCK - size)
            if not data:
                break
            parts.append(data)
            size += len(data)
        return b"".join(parts)

    def _blocks(self) -> Iterator[io.StringIO]:
        line_no = 0  # physical lines completely handed out so far
        pending = b""
        skipping = False  # inside an over-long line: drop bytes up to its newline
        first = True
        while True:
            data = self._read()
            if first:
                first = False
                if data.startswith(BOM):
                    data = data[len(BOM):]
            if not data:
                if pending and not skipping:
                    yield self._decode(pending, line_no)
                return
            if skipping:
                cut = data.find(b"\n")
                if cut < 0:
                    continue
                skipping = False
                data = data[cut + 1:]
                # The over-long line is handed to csv as an empty line so numbering holds.
                line_no += 1
                yield io.StringIO("\n", newline="\n")
            buf = pending + data if pending else data
            cut = buf.rfind(b"\n") + 1
            if cut == 0:
                block, pending = b"", buf
            else:
                block, pending = buf[:cut], buf[cut:]
            if block:
                yield self._decode(block, line_no)
                line_no += block.count(b"\n")
            if len(pending) > self._max_line:
                self._mark(line_no + 1, E.LINE_TOO_LONG,
                           E.message(E.LINE_TOO_LONG, limit=self._max_line))
                pending = b""
                skipping = True

    def _mark(self, line: int, code: str, text: str) -> None:
        self.bad_lines.add(line)
        self._report(line, code, text)

    def _decode(self, block: bytes, line_no: int) -> io.StringIO:
        parts = None
        if len(block) > self._max_line:
            # Only a block longer than the limit can hold an over-long line.
            parts = block.split(b"\n")
            too_long = max(map(len, parts)) > self._max_line
        else:
            too_long = False
        if not too_long and b"\x00" not in block:
            try:
                return io.StringIO(block.decode("utf-8"), newline="\n")
            except UnicodeDecodeError:
                pass
        # Slow path, only for a block holding a bad line: find and blank each offending line.
        out = []
        for offset, line in enumerate(parts if parts is not None else block.split(b"\n")):
            number = line_no + offset + 1
            if len(line) > self._max_line:
                self._mark(number, E.LINE_TOO_LONG,
                           E.message(E.LINE_TOO_LONG, limit=self._max_line))
                out.append("")
                continue
            try:
                text = line.decode("utf-8")
            except UnicodeDecodeError:
                self._mark(number, E.NOT_UTF8, E.message(E.NOT_UTF8))
                out.append("")
                continue
            if "\x00" in text:
                self._mark(number, E.NUL_BYTE, E.message(E.NUL_BYTE))
                out.append("")
                continue
            out.append(text)
        return io.StringIO("\n".join(out), newline="\n")
