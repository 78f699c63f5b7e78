"""The gates' baseline is kept between imports (GateBaseline): each gated import stores the
counts it leaves, exactly as a fresh count would find them, and a baseline stored before
the source's latest version is never used."""

from __future__ import annotations

import pytest

from apps.roster.ingest import gates
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
