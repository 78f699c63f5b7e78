"""The gates' baseline is kept between imports (GateBaseline): each gated import stores the
counts it leaves, exactly as a fresh count would find them, and a baseline stored before
the source's latest version is never used."""

from __future__ import annotations

import pytest
from django.db import OperationalError, connection

from apps.roster.ingest import fastcopy, gates
from apps.roster.ingest.first_import import BesideIndexBuilds
from apps.roster.ingest.gates import RULE_LEARNERS_DOUBLE
from apps.roster.models import GateBaseline, ImportState, QualityGate, RosterVersion, Source
from apps.roster.services import roster_rollback
from tests.roster.builders import small_district

pytestmark = pytest.mark.django_db


def stored(source: str = "sis") -> GateBaseline:
    return GateBaseline.objects.get(source__name=source)


def latest_version(source: str = "sis") -> int:
    return RosterVersion.objects.filter(source__name=source).order_by("-number")[0].number


def test_each_gated_import_stores_the_counts_it_leaves_as_a_fresh_count_finds_them(
    import_feed
):
    import_feed(small_district(students=100))
    source = Source.objects.get(name="sis")
    assert stored().version == latest_version()
    assert gates.stored_baseline(source.pk) == gates.source_counts(source.pk)

    run = import_feed(small_district(students=104))  # a small change, from the store

    assert run.state == ImportState.APPLIED
    assert stored().version == latest_version()
    assert gates.stored_baseline(source.pk) == gates.source_counts(source.pk)


def test_the_stored_baseline_is_what_the_gates_compare_against(import_feed):
    import_feed(small_district(students=100))
    baseline = stored()
    # were the school's learners one, adding one more would double them
    baseline.counts["roles"] = [[org, kind, 1 if kind == "student" else n]
                                for org, kind, n in baseline.counts["roles"]]
    baseline.save()

    run = import_feed(small_district(students=101))

    assert run.state == ImportState.HELD
    assert RULE_LEARNERS_DOUBLE in {t["rule"] for t in run.gate_report}


def test_after_a_rollback_the_stored_baseline_is_stale_and_counted_afresh(import_feed):
    first = import_feed(small_district(students=100))
    import_feed(small_district(students=104))
    roster_rollback(source="sis", to_version=first.version.number)
    source = Source.objects.get(name="sis")
    assert gates.stored_baseline(source.pk) is None  # stored at a version now superseded

    run = import_feed(small_district(students=102))

    assert run.state == ImportState.APPLIED
    assert stored().version == latest_version()
    assert gates.stored_baseline(source.pk) == gates.source_counts(source.pk)


def test_a_source_without_a_gate_keeps_no_baseline(import_feed):
    source = Source.objects.create(name="ungated")
    QualityGate.objects.create(source=source, enabled=False)

    import_feed(small_district(students=10), source=source)

    assert not GateBaseline.objects.filter(source=source).exists()


# --- a first import's baseline, counted beside its index builds ------------------------------

# Every file staged where a second connection can read it; and only the larger ones.
EVERY_FILE, LARGER_FILES = 0, 600


@pytest.fixture
def counted_beside(monkeypatch):  # type: ignore[no-untyped-def]
    """What ``FirstImportCounts.staged`` counted, each time it ran."""
    results: list[dict] = []
    real = gates.FirstImportCounts.staged

    def spy(self):  # type: ignore[no-untyped-def]
        results.append(real(self))
        return results[-1]

    monkeypatch.setattr(gates.FirstImportCounts, "staged", spy)
    return results


def _a_delta_with_a_row_to_drop() -> dict[str, list[dict]]:
    feed = small_district(students=30)
    for rows in feed.values():
        for row in rows:
            row["status"], row["dateLastModified"] = "active", "2024-09-01T00:00:00Z"
    feed["enrollments"][3]["status"] = "tobedeleted"  # a first load does not write it
    return feed


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("unlogged_from", [EVERY_FILE, LARGER_FILES])
def test_a_first_imports_baseline_counted_from_its_staged_files_is_a_fresh_count(
    monkeypatch, import_feed, counted_beside, unlogged_from
):
    monkeypatch.setattr(fastcopy, "UNLOGGED_FROM_BYTES", unlogged_from)

    run = import_feed(_a_delta_with_a_row_to_drop(), mode="delta")

    assert run.state == ImportState.APPLIED
    source = Source.objects.get(name="sis")
    assert gates.stored_baseline(source.pk) == gates.source_counts(source.pk)
    assert gates.source_counts(source.pk)["enrollments"][("sch1", "student")] == 29
    # PostgreSQL builds the users' GIN index on one process before version 18: the
    # counting runs beside it, for the files a second connection can read
    if connection.pg_version < 180000:
        assert len(counted_beside) == 1
        assert ("orgs" in counted_beside[0]) == (unlogged_from == EVERY_FILE)
        assert {"users", "enrollments"} <= set(counted_beside[0])
    else:
        assert counted_beside == []


@pytest.mark.django_db(transaction=True)
def test_a_first_import_whose_counting_beside_fails_counts_afresh(monkeypatch, import_feed):
    monkeypatch.setattr(fastcopy, "UNLOGGED_FROM_BYTES", EVERY_FILE)

    def broken(self):  # type: ignore[no-untyped-def]
        raise OperationalError("no second connection")

    monkeypatch.setattr(BesideIndexBuilds, "__call__", broken)

    run = import_feed(small_district(students=30))

    assert run.state == ImportState.APPLIED
    source = Source.objects.get(name="sis")
    assert gates.stored_baseline(source.pk) == gates.source_counts(source.pk)


@pytest.mark.django_db(transaction=True)
def test_a_later_import_is_never_counted_from_its_staged_files(
    monkeypatch, import_feed, counted_beside
):
    monkeypatch.setattr(fastcopy, "UNLOGGED_FROM_BYTES", EVERY_FILE)
    import_feed(small_district(students=30))
    counted_beside.clear()

    run = import_feed(small_district(students=31))

    assert run.state == ImportState.APPLIED
    assert counted_beside == []
    source = Source.objects.get(name="sis")
    assert gates.stored_baseline(source.pk) == gates.source_counts(source.pk)
