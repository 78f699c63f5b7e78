"""Fixtures for the apply-side roster tests: import a feed, read the canonical state."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from apps.roster import services
from apps.roster.models import CANONICAL_MODELS, ImportRun, Source
from apps.roster.selectors import roster_as_of, roster_current
from tests.roster.builders import write_feed

_names = itertools.count()


@pytest.fixture
def import_feed(db, tmp_path):  # type: ignore[no-untyped-def]
    """import_feed(files, source="sis", mode="bulk", modes=None, **service kwargs) -> run"""

    def run(files: dict, *, source: str | Source = "sis", mode: str = "bulk",
            modes: dict | None = None, **kwargs) -> ImportRun:  # type: ignore[no-untyped-def]
        path = write_feed(tmp_path / f"feed{next(_names)}.zip", files, mode=mode, modes=modes)
        return services.roster_import_run(path=path, source=source, **kwargs)

    return run


def content(model, rows) -> set[tuple]:  # type: ignore[no-untyped-def]
    """Rows as comparable tuples: identity, owner and every content column."""
    fields = [
        f.attname for f in model._meta.concrete_fields
        if f.attname not in ("id", "valid_from_version", "valid_to_version")
    ]
    out = set()
    for values in rows.values_list(*fields):
        out.add(tuple(bytes(v) if isinstance(v, memoryview) else
                      tuple(v) if isinstance(v, list) else v for v in values))
    return out


def state_now(source: Source | None = None) -> dict[str, set[tuple]]:
    return {e: content(m, roster_current(m, source=source)) for e, m in CANONICAL_MODELS.items()}


def state_as_of(version: int, source: Source | None = None) -> dict[str, set[tuple]]:
    return {
        e: content(m, roster_as_of(m, version=version, source=source))
        for e, m in CANONICAL_MODELS.items()
    }


def current_count(entity: str, source: Source | None = None) -> int:
    return roster_current(CANONICAL_MODELS[entity], source=source).count()


@pytest.fixture
def approver(staff_user_factory):  # type: ignore[no-untyped-def]
    return staff_user_factory(role="governance")


def files_of(path: Path) -> bytes:
    return path.read_bytes()


def audited(action: str) -> list[dict]:
    """Details of the audit events recorded with this action (chained or still pending)."""
    from apps.audit.models import AuditEvent, PendingAuditEvent

    return [
        {"actor_id": e.actor_id, **e.details}
        for model in (AuditEvent, PendingAuditEvent)
        for e in model.objects.filter(action=action).order_by("occurred_at")
    ]


@pytest.fixture
def every_file_readable_beside(monkeypatch):  # type: ignore[no-untyped-def]
    """Every staged file in an unlogged table, as a large one's: a second connection can
    read them all (a small district's files are otherwise temporary tables)."""
    from apps.roster.ingest import fastcopy

    monkeypatch.setattr(fastcopy, "UNLOGGED_FROM_BYTES", 0)
