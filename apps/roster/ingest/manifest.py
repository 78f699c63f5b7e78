"""manifest.csv: the OneRoster version and the processing mode of every data file."""
from __future__ import annotations

from dataclasses import dataclass, field

from apps.roster import schema as S
from apps.roster.ingest import errors as E

MANIFEST_VERSION = "1.0"
_FILE_PREFIX = "file."
# Manifests are small; anything bigger is not a manifest.
MAX_MANIFEST_ROWS = 200


@dataclass
class Manifest:
    version: str | None = None  # oneroster.version as written
    modes: dict[str, str] = field(default_factory=dict)  # entity -> bulk|delta|absent
    lines: dict[str, int] = field(default_factory=dict)  # entity -> manifest line
    properties: dict[str, str] = field(default_factory=dict)

    def mode(self, entity: str) -> str:
        return self.modes.get(entity, "absent")


def parse_manifest(rows: list[tuple[int, list[str]]]) -> tuple[Manifest, list[E.IngestError]]:
    """Read (line, fields) rows of manifest.csv, header included."""
    problems: list[E.IngestError] = []
    manifest = Manifest()

    def bad(line: int | None, detail: str, column: str | None = None) -> None:
        problems.append(
            E.IngestError(S.MANIFEST_FILE, line, column, E.MANIFEST_INVALID,
                          E.message(E.MANIFEST_INVALID, detail=detail))
        )

    if not rows:
        problems.append(E.IngestError(S.MANIFEST_FILE, None, None, E.EMPTY_FILE,
                                      E.message(E.EMPTY_FILE, name=S.MANIFEST_FILE)))
        return manifest, problems
    header_line, header = rows[0]
    if tuple(header) != S.MANIFEST_HEADERS:
        bad(header_line, "the header row must be exactly 'propertyName,value'")
        return manifest, problems
    if len(rows) > MAX_MANIFEST_ROWS:
        bad(None, f"more than {MAX_MANIFEST_ROWS} rows")
        return manifest, problems
    known_files = set(S.ALL_FILE_NAMES)
    for line, fields in rows[1:]:
        if not fields:
            continue
        if len(fields) != 2:
            bad(line, f"line {line} has {len(fields)} fields, expected 2")
            continue
        name, value = fields
        if name in manifest.properties:
            bad(line, f"property {name!r} appears more than once", "propertyName")
            continue
        manifest.properties[name] = value
        if name.startswith(_FILE_PREFIX):
            entity = name[len(_FILE_PREFIX):]
            if entity not in known_files:
                bad(line, f"{name!r} names no OneRoster file", "propertyName")
                continue
            if value not in S.MODES:
                bad(line, f"{name} must be absent, bulk or delta", "value")
                continue
            manifest.modes[entity] = value
            manifest.lines[entity] = line
        elif name == "manifest.version":
            if value != MANIFEST_VERSION:
                bad(line, f"manifest.version must be {MANIFEST_VERSION!r}", "value")
        elif name == "oneroster.version":
            manifest.version = value
    if "manifest.version" not in manifest.properties:
        bad(None, "the manifest.version property is missing")
    if manifest.version is None:
        bad(None, "the oneroster.version property is missing")
    return manifest, problems
