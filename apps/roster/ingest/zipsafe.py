"""Reading a hostile zip archive safely.

``zipfile`` trusts what the archive says about itself (sizes, names) and decompresses as much
as it is asked for. A SIS upload is untrusted input, so this module:

- inspects the central directory before anything is decompressed (entry count, names with
  ``..``, absolute paths, backslashes, NUL bytes, folders, symlinks, duplicates, encryption,
  compression methods, declared sizes);
- decompresses each entry itself (stored or raw deflate through ``zlib``) and enforces the
  per-entry size, the total size and the compression ratio on the bytes actually produced,
  while they are produced, never on the sizes the headers declare;
- checks the local header name against the central directory and the CRC at the end.
"""
from __future__ import annotations

import io
import stat
import struct
import zipfile
import zlib
from dataclasses import dataclass

from apps.roster.ingest import errors as E

KiB = 1024
MiB = 1024 * KiB
GiB = 1024 * MiB

_LOCAL_HEADER = struct.Struct("<4s5H3L2H")  # 30 bytes
_LOCAL_SIGNATURE = b"PK\x03\x04"
_COMPRESSED_CHUNK = 64 * KiB
STORED = zipfile.ZIP_STORED
DEFLATED = zipfile.ZIP_DEFLATED


@dataclass(frozen=True)
class ZipLimits:
    """Resource limits for one feed. Defaults suit a large district on a modest machine."""

    max_total_bytes: int = 2 * GiB  # all entries together, uncompressed
    max_entry_bytes: int = 1 * GiB  # one entry, uncompressed
    max_ratio: float = 200.0  # uncompressed / compressed, per entry
    # Small, repetitive files compress extremely well and are harmless; the ratio is judged
    # only once an entry has produced this many bytes.
    ratio_grace_bytes: int = 4 * MiB
    max_entries: int = 64
    max_line_bytes: int = 1 * MiB
    max_field_chars: int = 64 * KiB
    max_record_lines: int = 100  # physical lines one CSV record may span (quoted newlines)
    max_rows: int = 50_000_000  # data rows per file
    max_errors_per_file: int = 1000

    @classmethod
    def from_dict(cls, data: dict) -> ZipLimits:
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known)


class ZipBombError(Exception):
    """Decompression went past a size or ratio limit."""


class CorruptEntryError(Exception):
    """The entry's bytes do not match what the archive says (CRC, size, local header)."""


def entry_problems(infos: list[zipfile.ZipInfo], limits: ZipLimits) -> list[E.IngestError]:
    """Container-level problems, found from the central directory alone (nothing inflated)."""
    problems: list[E.IngestError] = []

    def add(code: str, **params) -> None:
        problems.append(E.IngestError("", None, None, code, E.message(code, **params)))

    if len(infos) > limits.max_entries:
        add(E.TOO_MANY_ENTRIES, count=len(infos), limit=limits.max_entries)
        return problems
    seen: set[str] = set()
    declared_total = 0
    for info in infos:
        raw_name = info.orig_filename
        name = info.filename
        if (
            "\x00" in raw_name
            or "\\" in raw_name
            or raw_name.startswith("/")
            or (len(raw_name) > 1 and raw_name[1] == ":")
            or any(part == ".." for part in raw_name.split("/"))
        ):
            add(E.PATH_TRAVERSAL, name=printable(raw_name))
            continue
        if "/" in name:
            add(E.NESTED_FOLDER, name=printable(name))
            continue
        if info.create_system == 3 and stat.S_ISLNK(info.external_attr >> 16):
            add(E.SYMLINK_ENTRY, name=printable(name))
            continue
        if name in seen:
            add(E.DUPLICATE_ENTRY, name=printable(name))
            continue
        seen.add(name)
        if info.flag_bits & 0x1:
            add(E.ENCRYPTED_ENTRY, name=printable(name))
            continue
        if info.compress_type not in (STORED, DEFLATED):
            add(E.UNSUPPORTED_COMPRESSION, name=printable(name), method=info.compress_type)
            continue
        # Declared sizes are not trusted to pass a file, but a declared excess fails it early.
        if info.file_size > limits.max_entry_bytes:
            add(E.ZIP_BOMB, name=printable(name),
                detail=f"declares {info.file_size} bytes, over the {limits.max_entry_bytes} "
                "byte per-entry limit")
            continue
        declared_total += info.file_size
    if declared_total > limits.max_total_bytes:
        add(E.ZIP_BOMB, name="archive",
            detail=f"declares {declared_total} bytes, over the {limits.max_total_bytes} byte "
            "total limit")
    return problems


def printable(name: str) -> str:
    """Entry names go into messages; keep them short and free of control characters."""
    cleaned = "".join(ch if ch.isprintable() else "?" for ch in name)
    return cleaned[:120]


class SafeEntryReader(io.RawIOBase):
    """A raw, read-only stream of one entry's uncompressed bytes, with limits enforced.

    ``budget`` is how many uncompressed bytes this entry may still produce (the smaller of the
    per-entry limit and what the total limit leaves); the ratio is checked against the
    compressed bytes actually consumed so far.
    """

    def __init__(self, path: str, info: zipfile.ZipInfo, *, budget: int, limits: ZipLimits):
        super().__init__()
        self._info = info
        self._budget = budget
        self._limits = limits
        self._file = open(path, "rb")  # noqa: SIM115 - closed in close()
        try:
            self._seek_to_data()
        except BaseException:
            self._file.close()
            raise
        self._compress_left = info.compress_size
        self._consumed = 0
        self.produced = 0
        self._crc = 0
        self._eof = False
        self._inflater = zlib.decompressobj(-15) if info.compress_type == DEFLATED else None

    def _seek_to_data(self) -> None:
        info = self._info
        self._file.seek(info.header_offset)
        header = self._file.read(_LOCAL_HEADER.size)
        if len(header) != _LOCAL_HEADER.size:
            raise CorruptEntryError("truncated local header")
        fields = _LOCAL_HEADER.unpack(header)
        if fields[0] != _LOCAL_SIGNATURE:
            raise CorruptEntryError("bad local header signature")
        name_len, extra_len = fields[9], fields[10]
        raw_name = self._file.read(name_len)
        encoding = "utf-8" if info.flag_bits & 0x800 else "cp437"
        if raw_name.decode(encoding, errors="replace") != info.orig_filename:
            raise CorruptEntryError("local header name differs from the central directory")
        self._file.seek(extra_len, io.SEEK_CUR)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:  # type: ignore[override]
        if self._eof:
            return 0
        want = len(buffer)
        if self._inflater is None:
            data = self._file.read(min(want, self._compress_left))
            self._compress_left -= len(data)
            self._consumed += len(data)
            if not data:
                if self._compress_left:
                    raise CorruptEntryError("truncated data")
                return self._finish()
        else:
            data = b""
            while not data:
                tail = self._inflater.unconsumed_tail
                if not tail:
                    if self._inflater.eof:
                        return self._finish()
                    tail = self._file.read(min(_COMPRESSED_CHUNK, self._compress_left))
                    self._compress_left -= len(tail)
                    self._consumed += len(tail)
                    if not tail:
                        if self._inflater.eof:
                            return self._finish()
                        raise CorruptEntryError("truncated deflate stream")
                try:
                    data = self._inflater.decompress(tail, want)
                except zlib.error as exc:
                    raise CorruptEntryError("invalid deflate data") from exc
                if not data and self._inflater.eof:
                    return self._finish()
        n = len(data)
        self.produced += n
        self._check_limits()
        self._crc = zlib.crc32(data, self._crc)
        buffer[:n] = data
        return n

    def _check_limits(self) -> None:
        produced = self.produced
        if produced > self._budget:
            raise ZipBombError(
                f"inflated past {self._budget} bytes (per-entry or total size limit)"
            )
        if produced > self._limits.ratio_grace_bytes:
            consumed = self._consumed
            if self._inflater is not None:
                consumed -= len(self._inflater.unconsumed_tail)
            if produced > self._limits.max_ratio * max(consumed, 1):
                raise ZipBombError(
                    f"compression ratio above {self._limits.max_ratio:g}:1"
                )

    def _finish(self) -> int:
        self._eof = True
        if self.produced != self._info.file_size:
            raise CorruptEntryError("size differs from the central directory")
        if self._crc != self._info.CRC:
            raise CorruptEntryError("CRC mismatch")
        return 0

    def close(self) -> None:
        if not self.closed:
            self._file.close()
        super().close()
