"""Parse a OneRoster CSV zip into typed canonical rows, streaming, in one pass per file.

    with open_feed(path, rules=rules) as feed:
        if feed.fatal: ...                      # container, manifest or header errors
        for line, row in feed.rows("users"):    # valid rows only, typed, canonical order
            ...
        feed.errors                             # every problem found so far (file/line/column)

``open_feed`` checks the container (zipsafe), reads the manifest, detects the version and
checks every header row; it inflates no more than the first block of each file. ``rows()``
then streams one file: the size-limited inflater feeds a line decoder feeding ``csv.reader``,
and each record goes through one function compiled once per file from the schema and the
file's header (rowplan.py), so the hot loop has no per-field dispatch. Invalid
rows are reported in ``feed.errors`` and skipped; nothing is kept per row, so memory stays flat
whatever the file size. Errors found by a second pass over the same file are not repeated.

A caller must look at ``feed.errors`` after consuming the rows it needs: a zip bomb or a
corrupt entry is only certain once the entry has been inflated to its end.
"""
from __future__ import annotations

import csv
import hashlib
import re
import threading
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from types import TracebackType

from apps.roster import schema as S
from apps.roster.ingest import errors as E
from apps.roster.ingest.fields import (
    BAD,
    DATE_PATTERN,
    DECIMAL_PATTERN,
    INTEGER_PATTERN,
    YEAR_PATTERN,
    to_guid,
)
from apps.roster.ingest.linescan import block_matcher, longest_line_exceeds
from apps.roster.ingest.manifest import Manifest, parse_manifest
from apps.roster.ingest.mapping import DEFAULT_RULES, MappingRules
from apps.roster.ingest.rowplan import Field, RowConverter, compile_plan
from apps.roster.ingest.textlines import BOM, TextLines
from apps.roster.ingest.zipsafe import (
    CorruptEntryError,
    SafeEntryReader,
    ZipBombError,
    ZipLimits,
    entry_problems,
    printable,
)

_STATUS, _DLM = 1, 2  # positions of status and dateLastModified in every file and row
_INVALID_SID = "(row with an invalid sourcedId)"
MAX_COLUMNS = 512  # a header wider than this is hostile, not a OneRoster file


class FatalFeedError(Exception):
    """rows() was asked for on a feed that cannot be applied at all."""


@dataclass(frozen=True)
class _Plan:
    entity: str
    file_name: str
    width: int  # fields per record (header length, extension columns included)
    convert: RowConverter  # compiled checks: (fields, problems) -> canonical row
    source: str  # the generated source of ``convert``, for debugging
    fields: tuple[Field, ...] = ()  # the checks ``convert`` was compiled from
    mode: str = "bulk"
    # 1.1 users only: positions of role and orgSourcedIds in the CSV record.
    v11_role: int = -1
    v11_orgs: int = -1


@dataclass
class _Header:
    fields: list[str]
    extensions: list[str]


class Feed:
    """An opened OneRoster feed. Use ``open_feed``; close it (or use ``with``)."""

    def __init__(self, path: str, rules: MappingRules, limits: ZipLimits):
        self.path = str(path)
        self.rules = rules
        self.limits = limits
        self.version: str | None = None
        self.manifest = Manifest()
        self.errors: list[E.IngestError] = []
        self._seen_errors: set[E.IngestError] = set()
        self._errors_per_file: dict[str, int] = {}
        self._entries: dict[str, zipfile.ZipInfo] = {}
        self._headers: dict[str, _Header] = {}  # entity -> header of its supplied file
        self._produced: dict[str, int] = {}  # entry name -> most bytes one pass inflated
        # two files may stream at once (fastcopy.StagedBeside): the total limit's ledger
        # is read and written under this lock
        self._produced_lock = threading.Lock()
        self._plans: dict[str, _Plan] = {}
        self._fatal_at_open = False

    # --- public API ---------------------------------------------------------------------------
    @property
    def fatal(self) -> bool:
        return any(error.code in E.FATAL_CODES for error in self.errors)

    @property
    def no_updates(self) -> bool:
        """Only manifest.csv was supplied: the source says nothing changed."""
        return not self.fatal and not self._headers

    @property
    def source_system(self) -> tuple[str | None, str | None]:
        props = self.manifest.properties
        return props.get("source.systemName"), props.get("source.systemCode")

    def mode(self, entity: str) -> str:
        """bulk, delta or absent, as the manifest declares (derived 1.1 roles follow users)."""
        if entity == "roles" and self.version == "1.1":
            return self.manifest.mode("users")
        return self.manifest.mode(entity)

    def supplied_entities(self) -> list[str]:
        """Supported entities that have rows in this feed, in apply order."""
        supplied = set(self._headers)
        if self.version == "1.1" and "users" in supplied:
            supplied.add("roles")  # derived from 1.1 users.role and orgSourcedIds
        return [entity for entity in S.ENTITIES if entity in supplied]

    def derived_entities(self) -> list[str]:
        """Entities whose rows are derived from another file (1.1 roles from users.csv)."""
        return ["roles"] if self.version == "1.1" and "users" in self._headers else []

    def extension_headers(self, entity: str) -> list[str]:
        header = self._headers.get(entity)
        return list(header.extensions) if header else []

    def rows(self, entity: str) -> Iterator[tuple[int, tuple]]:
        """Stream (line, canonical row) for the valid rows of an entity's file.

        Asking for rows of a feed that was fatal when opened is a programming error; a feed
        that turns fatal while streaming (a zip bomb found mid-file) just yields no more rows.
        """
        if self._fatal_at_open:
            raise FatalFeedError("the feed has fatal errors; see feed.errors")
        if self.fatal:
            return iter(())
        if entity not in S.SCHEMAS:
            raise KeyError(f"unknown entity {entity!r}")
        if entity == "roles" and self.version == "1.1":
            if "users" not in self._headers:
                return iter(())
            return self._v11_roles()
        if entity not in self._headers:
            return iter(())
        return self._rows(entity)

    def validate(self) -> list[E.IngestError]:
        """Stream every supplied file once, to collect all row errors (dry runs, tests)."""
        if not self.fatal:
            for entity in self.supplied_entities():
                if entity not in self.derived_entities():
                    for _ in self.rows(entity):
                        pass
                if self.fatal:
                    break
        return self.errors

    def close(self) -> None:
        self._entries.clear()

    def __enter__(self) -> Feed:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # --- error sink ---------------------------------------------------------------------------
    def _error(self, file: str, line: int | None, column: str | None, code: str, text: str
               ) -> None:
        error = E.IngestError(file, line, column, code, text)
        if error in self._seen_errors:
            return
        count = self._errors_per_file.get(file, 0)
        limit = self.limits.max_errors_per_file
        if count >= limit and code not in E.FATAL_CODES:
            if count == limit:
                self._errors_per_file[file] = count + 1
                self.errors.append(E.IngestError(
                    file, None, None, E.TOO_MANY_ERRORS,
                    E.message(E.TOO_MANY_ERRORS, limit=limit, name=file)))
            return
        self._errors_per_file[file] = count + 1
        self._seen_errors.add(error)
        self.errors.append(error)

    def _fail(self, file: str, code: str, **params) -> None:
        self._error(file, None, None, code, E.message(code, **params))

    # --- opening ------------------------------------------------------------------------------
    def _open(self) -> None:
        try:
            with zipfile.ZipFile(self.path) as archive:
                infos = archive.infolist()
        except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, EOFError):
            self._fail("", E.NOT_A_ZIP)
            return
        for problem in entry_problems(infos, self.limits):
            self._error(problem.file, problem.line, problem.column, problem.code,
                        problem.message)
        if self.fatal:
            return
        self._entries = {info.filename: info for info in infos}
        by_file = {file: entity for entity, file in S.ALL_FILE_NAMES.items()}
        supplied: dict[str, str] = {}  # entity -> file name
        for name in self._entries:
            if name == S.MANIFEST_FILE:
                continue
            entity = by_file.get(name)
            if entity is None:
                shown = printable(name)
                self._fail(shown, E.UNKNOWN_FILE, name=shown)
            else:
                supplied[entity] = name
        if self.fatal:
            return
        if S.MANIFEST_FILE not in self._entries:
            if supplied and set(supplied) <= S.ENTITIES_V10:
                self.version = "1.0"
                detail = " (a OneRoster 1.0 file set; only 1.1 and 1.2 feeds are accepted)"
            else:
                detail = ""
            self._fail(S.MANIFEST_FILE, E.MANIFEST_MISSING, detail=detail)
            return
        self._read_manifest()
        if self.fatal:
            return
        self._check_manifest_against(supplied)
        if self.fatal:
            return
        for entity in S.ENTITIES:
            if entity in supplied:
                self._read_header(entity)

    def _read_manifest(self) -> None:
        rows: list[tuple[int, list[str]]] = []
        info = self._entries[S.MANIFEST_FILE]
        try:
            with self._reader(info) as raw:
                lines = TextLines(raw, max_line_bytes=4096, report=self._line_reporter(
                    S.MANIFEST_FILE))
                reader = csv.reader(lines, strict=True)
                previous = 0
                for fields in reader:
                    rows.append((previous + 1, fields))
                    previous = reader.line_num
                    if len(rows) > 1000:
                        break
        except csv.Error as exc:
            self._error(S.MANIFEST_FILE, None, None, E.MANIFEST_INVALID,
                        E.message(E.MANIFEST_INVALID, detail=f"malformed CSV ({exc})"))
            return
        except (ZipBombError, CorruptEntryError) as exc:
            self._container_error(S.MANIFEST_FILE, exc)
            return
        if any(e.file == S.MANIFEST_FILE for e in self.errors):
            # An unreadable line (encoding, NUL, length) makes the manifest unusable as a whole.
            self._error(S.MANIFEST_FILE, None, None, E.MANIFEST_INVALID,
                        E.message(E.MANIFEST_INVALID,
                                  detail="it has unreadable lines (see their errors)"))
            return
        manifest, problems = parse_manifest(rows)
        for problem in problems:
            self._error(problem.file, problem.line, problem.column, problem.code,
                        problem.message)
        self.manifest = manifest
        if manifest.version is None:
            return
        if manifest.version not in S.VERSIONS:
            self._error(S.MANIFEST_FILE, None, None, E.UNSUPPORTED_VERSION, E.message(
                E.UNSUPPORTED_VERSION,
                detail=f"oneroster.version {manifest.version[:20]!r} is not supported; "
                "only 1.1 and 1.2 feeds are accepted"))
            return
        self.version = manifest.version

    def _check_manifest_against(self, supplied: dict[str, str]) -> None:
        version = self.version
        for entity, name in supplied.items():
            mode = self.manifest.mode(entity)
            if mode == "absent":
                declared = "absent" if entity in self.manifest.modes else "not listed"
                self._error(name, None, None, E.MANIFEST_MISMATCH, E.message(
                    E.MANIFEST_MISMATCH,
                    detail=f"{name} is supplied but the manifest says file.{entity} is "
                    f"{declared}"))
            elif version == "1.1" and entity not in S.ENTITIES_V11:
                self._fail(name, E.FILE_NOT_IN_VERSION, name=name, version=version)
            elif entity in S.UNSUPPORTED_ENTITIES:
                self._fail(name, E.UNSUPPORTED_FILE, name=name)
        for entity, mode in self.manifest.modes.items():
            if mode != "absent" and entity not in supplied:
                self._error(S.MANIFEST_FILE, self.manifest.lines.get(entity), "value",
                            E.MANIFEST_MISMATCH, E.message(
                                E.MANIFEST_MISMATCH,
                                detail=f"the manifest says file.{entity} is {mode} but "
                                f"{entity}.csv is not in the archive"))

    def _read_header(self, entity: str) -> None:
        schema = S.SCHEMAS[entity]
        name = schema.file_name
        expected = schema.headers(self.version or "1.2")
        assert expected is not None
        first_row: list[str] | None = None
        header: list[str] | None = None
        try:
            with self._reader(self._entries[name]) as raw:
                lines = TextLines(raw, max_line_bytes=self.limits.max_line_bytes,
                                  report=self._line_reporter(name))
                reader = csv.reader(lines, strict=True)
                for fields in reader:
                    if header is None:
                        header = fields
                    elif fields:
                        first_row = fields
                        break
        except csv.Error as exc:
            if header is None:
                self._error(name, 1, None, E.HEADER_MISMATCH,
                            f"{name}: the header row is not valid CSV ({exc}).")
                return
            first_row = []  # a malformed first record: reported with its line by rows()
        except (ZipBombError, CorruptEntryError) as exc:
            self._container_error(name, exc)
            return
        if not header and 1 in lines.bad_lines:
            self._error(name, 1, None, E.HEADER_MISMATCH,
                        f"{name}: the header row is unreadable (see the error on line 1).")
            return
        if not header:
            self._fail(name, E.EMPTY_FILE, name=name)
            return
        extensions = self._check_header(entity, name, header, expected)
        if extensions is None:
            return
        if first_row is None:
            self._fail(name, E.NO_ROWS, name=name)
            return
        self._headers[entity] = _Header(fields=header, extensions=extensions)

    def _check_header(self, entity: str, name: str, header: list[str],
                      expected: tuple[str, ...]) -> list[str] | None:
        """Check a header row exactly; return its extension columns, or None if it is bad."""
        def fatal(code: str, column: str | None, **params) -> None:
            self._error(name, 1, column, code, E.message(code, name=name, **params))

        if len(header) > MAX_COLUMNS:
            fatal(E.HEADER_MISMATCH, None, position=MAX_COLUMNS + 1, got="...",
                  expected=f"at most {MAX_COLUMNS} columns")
            return None
        ok = True
        seen: set[str] = set()
        for got in header:
            if got in seen:
                fatal(E.HEADER_DUPLICATE, got, got=got)
                ok = False
            seen.add(got)
        split = len(header)
        for index, got in enumerate(header):
            if got.startswith(S.METADATA_PREFIX):
                split = index
                break
        core, extensions = header[:split], header[split:]
        for offset, got in enumerate(extensions):
            if not got.startswith(S.METADATA_PREFIX):
                fatal(E.HEADER_MISMATCH, got, position=split + offset + 1, got=got,
                      expected="metadata.* (extension columns come last)")
                ok = False
                break
        if tuple(core) == expected:
            return extensions if ok else None
        # Say precisely what is wrong: another version's header, wrong case, missing, order.
        schema = S.SCHEMAS[entity]
        other = "1.1" if self.version == "1.2" else "1.2"
        other_headers = schema.headers(other)
        if other_headers is not None and tuple(core) == other_headers and \
                other_headers != expected:
            fatal(E.VERSION_MISMATCH, None, found=other, declared=self.version)
            return None
        lowered = {h.lower(): h for h in core}
        reported = False
        for want in expected:
            if want in core:
                continue
            got = lowered.get(want.lower())
            if got is not None:
                fatal(E.HEADER_CASE, got, got=got, expected=want)
            else:
                fatal(E.HEADER_MISSING, want, expected=want)
            reported = True
        if not reported:
            for index, (got, want) in enumerate(zip(core, expected, strict=False)):
                if got != want:
                    fatal(E.HEADER_MISMATCH, got, position=index + 1, got=got, expected=want)
                    reported = True
                    break
        if not reported and len(core) > len(expected):
            got = core[len(expected)]
            fatal(E.HEADER_MISMATCH, got, position=len(expected) + 1, got=got,
                  expected="metadata.* or the end of the row")
        return None

    # --- streaming ----------------------------------------------------------------------------
    def _reader(self, info: zipfile.ZipInfo, *, at_most: int | None = None) -> SafeEntryReader:
        """A reader of one entry within the limits: per entry, and the total less what the
        other entries inflated (or have reserved, ``reserve``). ``at_most`` narrows it."""
        with self._produced_lock:
            others = sum(v for k, v in self._produced.items() if k != info.filename)
        budget = min(self.limits.max_entry_bytes, self.limits.max_total_bytes - others)
        if at_most is not None:
            budget = min(budget, at_most)
        return SafeEntryReader(self.path, info, budget=budget, limits=self.limits)

    def _inflated(self, info: zipfile.ZipInfo, produced: int) -> None:
        with self._produced_lock:
            self._produced[info.filename] = max(self._produced.get(info.filename, 0),
                                                produced)

    def reserve(self, entity: str) -> None:
        """Count an entity's file at its declared size before it streams beside others
        (those then leave it room in the total limit; it may inflate no more)."""
        self._inflated(self._entries[self._plan(entity).file_name],
                       self.declared_size(entity))

    def _line_reporter(self, file: str):
        def report(line: int, code: str, text: str) -> None:
            self._error(file, line, None, code, text)
        return report

    def _container_error(self, name: str, exc: Exception) -> None:
        if isinstance(exc, ZipBombError):
            self._fail(name, E.ZIP_BOMB, name=name, detail=str(exc))
        else:
            self._fail(name, E.CORRUPT_ENTRY, name=name, detail=str(exc))

    def _plan(self, entity: str) -> _Plan:
        """Compile the checks for an entity's file once (per feed), from its actual header."""
        plan = self._plans.get(entity)
        if plan is not None:
            return plan
        schema = S.SCHEMAS[entity]
        version = self.version or "1.2"
        header = self._headers[entity].fields
        position = {h: i for i, h in enumerate(header)}
        rules = self.rules
        maps = {
            ("roles", "role"): rules.roles_for(version),
            ("enrollments", "role"): dict(rules.enrollment_role_map),
        }
        renames = {v: k for k, v in schema.v11_renames.items()} if version == "1.1" else {}
        fields = []
        for out_index, column in enumerate(schema.columns):
            source = renames.get(column.name, column.header)
            if version == "1.1" and column.name in schema.v11_absent:
                continue
            if source not in position:
                continue
            if column.name == "status":
                mapping = rules.statuses_for(version)
            else:
                mapping = maps.get((entity, column.header))
            required = column.required or (
                version == "1.1" and column.name in schema.v11_required_extra)
            if out_index in (_STATUS, _DLM):
                required = False  # checked against the file's mode instead
            fields.append(Field(position[source], out_index, column, source, required, mapping))
        v11_role = v11_orgs = -1
        if entity == "users" and version == "1.1":
            v11_role, v11_orgs = position["role"], position["orgSourcedIds"]
            roles = S.SCHEMAS["roles"]
            fields.append(Field(v11_role, -1, roles.columns[roles.index("role")], "role", True,
                                rules.roles_for("1.1")))
            fields.append(Field(v11_orgs, -1, S.Column("org_sourced_ids", S.GUID_LIST, True),
                                "orgSourcedIds", True))
        order = []
        for start, end in schema.date_order:
            i, j = schema.index(start), schema.index(end)
            order.append((i, j, schema.columns[i].header, schema.columns[j].header))
        convert, source = compile_plan(entity, fields, len(schema.columns), self.mode(entity),
                                       order, as_list=v11_role >= 0)
        plan = _Plan(entity=entity, file_name=schema.file_name, width=len(header),
                     convert=convert, source=source, fields=tuple(fields),
                     mode=self.mode(entity), v11_role=v11_role, v11_orgs=v11_orgs)
        self._plans[entity] = plan
        return plan

    def _scan(self, plan: _Plan, *, with_fields: bool = False) -> Iterator[tuple]:
        """Validate every record of a file; yield (line, row) or (line, fields, row) if valid.

        This is the hot loop of an import: the common record (one line, the right width, no
        encoding problem) takes the first branch; everything unusual is the slow path.
        """
        name = plan.file_name
        info = self._entries.get(name)
        if info is None:
            return
        limits = self.limits
        convert = plan.convert
        problems: list = []
        previous_limit = csv.field_size_limit(limits.max_field_chars)
        raw = self._reader(info)
        try:
            lines = TextLines(raw, max_line_bytes=limits.max_line_bytes,
                              report=self._line_reporter(name))
            bad_lines = lines.bad_lines
            reader = csv.reader(lines, strict=True)
            next(reader, None)  # the header, already checked at open
            previous = reader.line_num
            count = 0
            width = plan.width
            max_rows = limits.max_rows
            finished = False
            while not finished:
                try:
                    for fields in reader:
                        line = previous + 1
                        previous = reader.line_num
                        unusual = len(fields) != width or previous != line or bad_lines
                        if unusual and not self._record_ok(name, fields, line, previous,
                                                           width, bad_lines):
                            continue
                        count += 1
                        if count > max_rows:
                            self._fail(name, E.TOO_MANY_ROWS, name=name, limit=max_rows)
                            return
                        row = convert(fields, problems)
                        if problems:
                            self._row_errors(name, line, fields[0], problems)
                            problems.clear()
                            continue
                        if with_fields:
                            yield line, fields, row
                        else:
                            yield line, row
                    finished = True
                except csv.Error as exc:
                    line = previous + 1
                    previous = reader.line_num
                    if "field larger than field limit" in str(exc):
                        self._error(name, line, None, E.FIELD_TOO_LONG, E.message(
                            E.FIELD_TOO_LONG, limit=limits.max_field_chars))
                    else:
                        self._error(name, line, None, E.CSV_MALFORMED,
                                    E.message(E.CSV_MALFORMED, detail=str(exc)))
        except (ZipBombError, CorruptEntryError) as exc:
            self._container_error(name, exc)
        finally:
            self._inflated(info, raw.produced)
            raw.close()
            csv.field_size_limit(previous_limit)

    def _record_ok(self, name: str, fields: list[str], line: int, end: int, width: int,
                   bad_lines: set[int]) -> bool:
        """Slow-path checks of an unusual record; False means skip it (reported if wrong)."""
        if not fields:
            return False  # a blank line
        if bad_lines and any(n in bad_lines for n in range(line, end + 1)):
            return False  # already reported as NOT_UTF8 / NUL_BYTE / LINE_TOO_LONG
        span = self.limits.max_record_lines
        if end - line >= span:
            self._error(name, line, None, E.CSV_MALFORMED, E.message(
                E.CSV_MALFORMED, detail=f"one record spans more than {span} lines"))
            return False
        if len(fields) != width:
            self._error(name, line, None, E.COLUMN_COUNT, E.message(
                E.COLUMN_COUNT, got=len(fields), expected=width))
            return False
        return True

    # --- the COPY fast path (fastcopy.py) -----------------------------------------------------
    def plain_plan(self, entity: str) -> _Plan | None:
        """The plan of a file that may go to PostgreSQL as its own CSV bytes, else None.

        Only 1.2 files qualify (1.1 users fan out into roles, which needs the parser).
        """
        if self._fatal_at_open or self.fatal or self.version != "1.2":
            return None
        if entity not in self._headers or entity not in S.SCHEMAS:
            return None
        return self._plan(entity)

    def declared_size(self, entity: str) -> int:
        """The uncompressed size the zip declares for an entity's file (a hint only: the
        inflater enforces the limits on what it really produces)."""
        return self._entries[self._plan(entity).file_name].file_size

    def plain_scan(self, entity: str, *, reserved: bool = False) -> PlainScan:
        """The data bytes of an entity's file, for ``COPY ... (FORMAT csv)``; see PlainScan.
        ``reserved``: the file was ``reserve``d, and may inflate no more than it declares."""
        plan = self._plan(entity)
        info = self._entries[plan.file_name]
        header = ",".join(self._headers[entity].fields).encode("utf-8")
        limit = min(self.limits.max_line_bytes, self.limits.max_field_chars)
        return PlainScan(self, info, header=header, max_line=limit,
                         max_rows=self.limits.max_rows, line_check=_line_check(plan),
                         at_most=info.file_size if reserved else None)

    def _rows(self, entity: str) -> Iterator[tuple[int, tuple]]:
        plan = self._plan(entity)
        if plan.v11_role >= 0:
            return self._v11_users(plan)
        return self._scan(plan)

    def _v11_users(self, plan: _Plan) -> Iterator[tuple[int, tuple]]:
        first_org_primary = self.rules.v11_first_org_is_primary
        primary_org = S.SCHEMAS["users"].index("primary_org_sourced_id")
        for line, fields, row in self._scan(plan, with_fields=True):
            if first_org_primary:
                row[primary_org] = fields[plan.v11_orgs].split(",")[0].strip()
            yield line, tuple(row)

    def _v11_roles(self) -> Iterator[tuple[int, tuple]]:
        """Canonical roles rows from 1.1 users.role + orgSourcedIds (one row per org)."""
        plan = self._plan("users")
        first_org_primary = self.rules.v11_first_org_is_primary
        roles_map = self.rules.roles_for("1.1")
        for line, fields, out in self._scan(plan, with_fields=True):
            user = out[0]
            role = fields[plan.v11_role]
            role = roles_map.get(role, role)
            orgs = [org.strip() for org in fields[plan.v11_orgs].split(",")]
            for index, org in enumerate(orgs):
                role_type = "primary" if index == 0 and first_org_primary else "secondary"
                digest = hashlib.blake2b(
                    f"{user}\x00{org}\x00{role}".encode(), digest_size=16).hexdigest()
                yield line, (
                    f"v11role-{digest}", out[_STATUS], out[_DLM], user, role_type, role,
                    None, None, org, None,
                )

    def _row_errors(self, name: str, line: int, sourced_id: str,
                    problems: list[tuple[str, str, str | None]]) -> None:
        sid = sourced_id if to_guid(sourced_id) is not BAD else _INVALID_SID
        for column, code, extra in problems:
            if code == E.BAD_STATUS:
                text = E.message(code, sid=sid, detail=extra)
            elif code == E.DATE_ORDER:
                text = E.message(code, sid=sid, column=column, start=extra)
            else:
                text = E.message(code, sid=sid, column=column)
            self._error(name, line, column, code, text)


class NotPlain(Exception):
    """A file holds something only the row-by-row parser reads exactly (fast path declined)."""


# A CSV line on which PostgreSQL's CSV reader and Python's csv module (strict, excel dialect)
# provably agree: fields are either unquoted (no quote, comma or line break) or wholly quoted
# with doubled inner quotes, and the record ends on this very line.
_FIELD = rb'(?:[^",\r\n]*|"(?:[^"\r\n]|"")*")'
_PLAIN_LINES = block_matcher(rb"(?:%s(?:,%s)*\r?\n)*" % (_FIELD, _FIELD))


_GUID_BYTES = rb"[-0-9A-Za-z._/@]{%d,255}"
# A field with something in it, bare or quoted.
_NON_EMPTY = rb'(?:[^",\r\n]+|"(?:[^"\r\n]|"")+")'
# A field with nothing in it, bare or quoted (the parser reads both as empty).
_EMPTY = rb'(?:|"")'

# The text the fast path accepts for these types: regular expressions that Python (the
# byte scan below) and PostgreSQL (fastcopy's checks, anchored) read alike, so that the
# two can stand in for each other.
VALUE_PATTERNS = {
    S.DATE: DATE_PATTERN,
    # PostgreSQL would read hour 24 and second 60; Python's datetime (the parser) does not.
    S.DATETIME: ("[0-9]{4}-[0-9]{2}-[0-9]{2}T(?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]"
                 "(?:\\.[0-9]{1,6})?Z"),
    S.YEAR: YEAR_PATTERN,
    S.DECIMAL: f"(?:{DECIMAL_PATTERN})",
    S.INTEGER: INTEGER_PATTERN,
    S.BOOLEAN: "(?:true|false)",
}


def scan_pattern(field: Field) -> bytes | None:
    """The bytes a field must be for the scan to have made the whole of its row check
    (fastcopy then leaves that check out of SQL), or None when only SQL makes it: a list
    of strings, an enumeration the mapping rules rewrite, an optional string (no check).

    Each pattern accepts at most what the check accepts; what it refuses is not an error,
    only a file whose checks all run in SQL.
    """
    kind, required = field.column.type, field.required
    if kind == S.GUID:  # bare only (a GUID never needs quoting)
        return _GUID_BYTES % (1 if required else 0)
    if kind == S.GUID_LIST:
        # one bare GUID, or a quoted list (with spaces around the items if need be)
        one = _GUID_BYTES % 1
        listed = rb" *%s *(?:, *%s *)*" % (one, one)
        empty = b"" if required else rb"|"
        return rb'(?:%s%s|"(?:%s)%s")' % (one, empty, listed, b"?" if not required else b"")
    if kind == S.STRING:
        return _NON_EMPTY if required else None
    if kind in VALUE_PATTERNS:
        value = VALUE_PATTERNS[kind].encode()
    elif kind == S.ENUM and not field.mapping:
        terms = [re.escape(term.encode()) for term in sorted(field.column.enum or ())]
        if field.column.allow_ext:
            terms.append(rb'ext:[^",\r\n]+')
        value = rb"(?:%s)" % b"|".join(terms)
    else:
        return None
    bare_or_quoted = rb'(?:%s|"%s")' % (value, value)
    return bare_or_quoted if required else rb"(?:%s|%s)" % (_EMPTY, bare_or_quoted)


def _line_check(plan: _Plan) -> Callable[..., object] | None:
    """fullmatch of a block of lines whose fields all pass their ``scan_pattern`` (and, in a
    bulk file, leave status and dateLastModified empty), or None when no field has one.
    Any other field may be anything, bare or quoted."""
    patterns: dict[int, bytes] = {}
    if plan.mode == "bulk":
        patterns[1] = patterns[2] = _EMPTY  # status, dateLastModified
    for f in plan.fields:
        if f.out_index < 0 or (plan.mode == "bulk" and f.csv_index in (1, 2)):
            continue
        pattern = scan_pattern(f)
        if pattern is not None:
            patterns[f.csv_index] = pattern
    if not patterns:
        return None
    columns = [patterns.get(i, _FIELD) for i in range(plan.width)]
    return block_matcher(rb"(?:%s\r?\n)*" % b",".join(columns))


class PlainScan:
    """The data lines of one file as raw blocks, checked for the COPY fast path.

    Iterating yields blocks cut at a newline (the header line and a BOM removed) and counts
    the lines in ``lines``. It raises ``NotPlain`` as soon as a block holds anything on
    which PostgreSQL's CSV reading could differ from the parser's, or that the parser
    would report: a NUL byte, invalid UTF-8, a bare carriage return, a quoted field that
    is not simply quoted or spans lines, a line longer than the line or field limit, more
    rows than allowed, or a header not written plainly. Zip limits apply as in ``rows()``
    (same reader, same budget); a ZipBombError or CorruptEntryError propagates.

    Because every record is then exactly one line, the n-th row PostgreSQL reads is on line
    n + 1 of the file; the caller checks that it read as many rows as there are lines (a
    blank line, or PostgreSQL's end-of-data marker, would break that: then it falls back).
    """

    def __init__(self, feed: Feed, info: zipfile.ZipInfo, *, header: bytes, max_line: int,
                 max_rows: int, line_check: Callable[..., object] | None = None,
                 at_most: int | None = None) -> None:
        self._feed = feed
        self._at_most = at_most
        self._info = info
        self._header = header
        self._max_line = max_line
        self._max_rows = max_rows
        self._line_check = line_check
        self.lines = 0
        # True while every line seen passed its fields' scan patterns (checked here, in
        # bytes, as the file streams past: in SQL each check was a pass over the rows).
        self.lines_checked = line_check is not None

    def __iter__(self) -> Iterator[bytes]:
        feed, info = self._feed, self._info
        raw = feed._reader(info, at_most=self._at_most)
        try:
            pending = b""
            first = True
            while True:
                data = raw.read(1 << 20)
                if first and data:
                    first = False
                    data = self._skip_header(raw, data)
                if not data:
                    break
                buf = pending + data if pending else data
                cut = buf.rfind(b"\n") + 1
                block, pending = buf[:cut], buf[cut:]
                if len(pending) > self._max_line:
                    raise NotPlain("line too long")
                if block:
                    self._check(block)
                    yield block
            if pending:
                block = pending + b"\n"
                self._check(block)
                yield block
        finally:
            feed._inflated(info, raw.produced)
            raw.close()

    def _skip_header(self, raw: SafeEntryReader, data: bytes) -> bytes:
        if data.startswith(BOM):
            data = data[len(BOM):]
        while b"\n" not in data and len(data) <= self._max_line:
            more = raw.read(1 << 20)
            if not more:
                break
            data += more
        end = data.find(b"\n")
        head = data[:end] if end >= 0 else data
        if head.endswith(b"\r"):
            head = head[:-1]
        if end < 0 or head != self._header:
            raise NotPlain("header not written plainly")
        return data[end + 1:]

    def _check(self, block: bytes) -> None:
        if b"\x00" in block:
            raise NotPlain("NUL byte")
        try:
            block.decode("utf-8")
        except UnicodeDecodeError:
            raise NotPlain("not UTF-8") from None
        if b"\r" in block and block.count(b"\r") != block.count(b"\r\n"):
            raise NotPlain("bare carriage return")
        if longest_line_exceeds(block, self._max_line):
            raise NotPlain("line too long")
        # Lines that pass their fields' patterns are plain lines too (each pattern accepts
        # only a bare or wholly quoted field), so one match makes both checks.
        if not (self.lines_checked and self._line_check(block) is not None):  # type: ignore[misc]
            self.lines_checked = False  # SQL makes every check instead
            if b'"' in block and _PLAIN_LINES(block) is None:
                raise NotPlain("quoting the parser would read differently")
        self.lines += block.count(b"\n")
        if self.lines > self._max_rows:
            raise NotPlain("too many rows")


def open_feed(
    path,
    *,
    rules: MappingRules | None = None,
    limits: ZipLimits | None = None,
) -> Feed:
    """Open a OneRoster zip: check container, manifest, version and headers (see module doc)."""
    feed = Feed(str(path), rules or DEFAULT_RULES, limits or ZipLimits())
    feed._open()
    feed._fatal_at_open = feed.fatal
    return feed
