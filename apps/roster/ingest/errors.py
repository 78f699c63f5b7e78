"""Ingest error record and codes.

Every problem found in a feed becomes one ``IngestError`` (file, line, column, code, message).
Codes are stable identifiers that tests, the admin and ``roster_import --json`` rely on.
Messages name files, lines, columns and sourcedIds, never personal data: a value from a
personal column (names, emails, birth dates...) is never echoed back.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True, slots=True)
class IngestError:
    file: str  # "users.csv", "manifest.csv", or "" for the zip container itself
    line: int | None  # 1-based physical line in the file (1 = header row); None if not a line
    column: str | None  # CSV header name, or None
    code: str
    message: str

    def as_dict(self) -> dict:
        return asdict(self)


# --- Container (zip) errors: always fatal ------------------------------------------------------
NOT_A_ZIP = "NOT_A_ZIP"
ZIP_BOMB = "ZIP_BOMB"
TOO_MANY_ENTRIES = "TOO_MANY_ENTRIES"
PATH_TRAVERSAL = "PATH_TRAVERSAL"
NESTED_FOLDER = "NESTED_FOLDER"
SYMLINK_ENTRY = "SYMLINK_ENTRY"
DUPLICATE_ENTRY = "DUPLICATE_ENTRY"
ENCRYPTED_ENTRY = "ENCRYPTED_ENTRY"
UNSUPPORTED_COMPRESSION = "UNSUPPORTED_COMPRESSION"
CORRUPT_ENTRY = "CORRUPT_ENTRY"
UNKNOWN_FILE = "UNKNOWN_FILE"
UNSUPPORTED_FILE = "UNSUPPORTED_FILE"

# --- Manifest and version: fatal ---------------------------------------------------------------
MANIFEST_MISSING = "MANIFEST_MISSING"
MANIFEST_INVALID = "MANIFEST_INVALID"
MANIFEST_MISMATCH = "MANIFEST_MISMATCH"
UNSUPPORTED_VERSION = "UNSUPPORTED_VERSION"
FILE_NOT_IN_VERSION = "FILE_NOT_IN_VERSION"

# --- File level: fatal -------------------------------------------------------------------------
EMPTY_FILE = "EMPTY_FILE"
NO_ROWS = "NO_ROWS"
HEADER_MISMATCH = "HEADER_MISMATCH"
HEADER_CASE = "HEADER_CASE"
HEADER_MISSING = "HEADER_MISSING"
HEADER_DUPLICATE = "HEADER_DUPLICATE"
VERSION_MISMATCH = "VERSION_MISMATCH"

# --- Encoding and CSV structure: reported per line ---------------------------------------------
NOT_UTF8 = "NOT_UTF8"
NUL_BYTE = "NUL_BYTE"
LINE_TOO_LONG = "LINE_TOO_LONG"
FIELD_TOO_LONG = "FIELD_TOO_LONG"
CSV_MALFORMED = "CSV_MALFORMED"
COLUMN_COUNT = "COLUMN_COUNT"
TOO_MANY_ROWS = "TOO_MANY_ROWS"
TOO_MANY_ERRORS = "TOO_MANY_ERRORS"

# --- Row level ---------------------------------------------------------------------------------
REQUIRED_MISSING = "REQUIRED_MISSING"
BAD_GUID = "BAD_GUID"
BAD_DATE = "BAD_DATE"
BAD_DATETIME = "BAD_DATETIME"
BAD_YEAR = "BAD_YEAR"
BAD_BOOLEAN = "BAD_BOOLEAN"
BAD_ENUM = "BAD_ENUM"
BAD_NUMBER = "BAD_NUMBER"
BAD_LIST = "BAD_LIST"
BAD_STATUS = "BAD_STATUS"
DATE_ORDER = "DATE_ORDER"

# --- Set level (APPLY, in SQL; listed here so every code lives in one module) ------------------
DUPLICATE_SOURCED_ID = "DUPLICATE_SOURCED_ID"
REFERENCE_MISSING = "REFERENCE_MISSING"

# Codes that make a feed unusable as a whole (nothing can be staged from it).
FATAL_CODES = frozenset(
    {
        NOT_A_ZIP, ZIP_BOMB, TOO_MANY_ENTRIES, PATH_TRAVERSAL, NESTED_FOLDER, SYMLINK_ENTRY,
        DUPLICATE_ENTRY, ENCRYPTED_ENTRY, UNSUPPORTED_COMPRESSION, CORRUPT_ENTRY, UNKNOWN_FILE,
        UNSUPPORTED_FILE, MANIFEST_MISSING, MANIFEST_INVALID, MANIFEST_MISMATCH,
        UNSUPPORTED_VERSION, FILE_NOT_IN_VERSION, EMPTY_FILE, NO_ROWS, HEADER_MISMATCH,
        HEADER_CASE, HEADER_MISSING, HEADER_DUPLICATE, VERSION_MISMATCH,
    }
)

# Message templates (str.format). Placeholders never carry personal values.
MESSAGES = {
    NOT_A_ZIP: "The upload is not a readable zip archive.",
    ZIP_BOMB: "{name}: {detail}; refusing to decompress further.",
    TOO_MANY_ENTRIES: "The archive holds {count} entries; at most {limit} are allowed.",
    PATH_TRAVERSAL: "Entry {name!r} has an unsafe path (absolute, '..' or backslash).",
    NESTED_FOLDER: "Entry {name!r} is inside a folder; OneRoster files must be at the zip root.",
    SYMLINK_ENTRY: "Entry {name!r} is a symbolic link.",
    DUPLICATE_ENTRY: "Entry {name!r} appears more than once in the archive.",
    ENCRYPTED_ENTRY: "Entry {name!r} is encrypted.",
    UNSUPPORTED_COMPRESSION: "Entry {name!r} uses compression method {method}; "
    "only stored and deflate are accepted.",
    CORRUPT_ENTRY: "Entry {name!r} is corrupt ({detail}).",
    UNKNOWN_FILE: "{name!r} is not a OneRoster CSV file name.",
    UNSUPPORTED_FILE: "{name} is a OneRoster file this hub does not ingest yet; "
    "remove it or mark it absent.",
    MANIFEST_MISSING: "manifest.csv is missing{detail}.",
    MANIFEST_INVALID: "manifest.csv: {detail}.",
    MANIFEST_MISMATCH: "{detail}.",
    UNSUPPORTED_VERSION: "{detail}.",
    FILE_NOT_IN_VERSION: "{name} does not exist in OneRoster {version}.",
    EMPTY_FILE: "{name} is empty (no header row).",
    NO_ROWS: "{name} has a header but no data rows; the binding does not allow empty files.",
    HEADER_MISMATCH: "{name}: header column {position} is {got!r}, expected {expected!r}.",
    HEADER_CASE: "{name}: header {got!r} must be spelled {expected!r} (headers are "
    "case-sensitive).",
    HEADER_MISSING: "{name}: header column {expected!r} is missing.",
    HEADER_DUPLICATE: "{name}: header {got!r} appears more than once.",
    VERSION_MISMATCH: "{name}: the header row is the OneRoster {found} one, but the manifest "
    "says {declared}.",
    NOT_UTF8: "Line is not valid UTF-8.",
    NUL_BYTE: "Line contains a NUL byte.",
    LINE_TOO_LONG: "Line is longer than {limit} bytes.",
    FIELD_TOO_LONG: "A field is longer than {limit} characters.",
    CSV_MALFORMED: "Malformed CSV ({detail}).",
    COLUMN_COUNT: "Row has {got} fields; the header has {expected}.",
    TOO_MANY_ROWS: "{name} has more than {limit} rows.",
    TOO_MANY_ERRORS: "More than {limit} errors in {name}; further errors are not listed.",
    REQUIRED_MISSING: "{sid}: required {column} is empty.",
    BAD_GUID: "{sid}: {column} is not a valid GUID (1-255 of 0-9 A-Z a-z . - _ / @).",
    BAD_DATE: "{sid}: {column} is not a date (YYYY-MM-DD).",
    BAD_DATETIME: "{sid}: {column} is not a UTC date-time (YYYY-MM-DDTHH:MM:SS.sssZ).",
    BAD_YEAR: "{sid}: {column} is not a year (YYYY).",
    BAD_BOOLEAN: "{sid}: {column} must be 'true' or 'false'.",
    BAD_ENUM: "{sid}: {column} is not one of the permitted values.",
    BAD_NUMBER: "{sid}: {column} is not a number.",
    BAD_LIST: "{sid}: {column} has an empty or invalid item.",
    BAD_STATUS: "{sid}: {detail}.",
    DATE_ORDER: "{sid}: {column} is before {start}.",
}


def message(code: str, **params) -> str:
    return MESSAGES[code].format(**params)
