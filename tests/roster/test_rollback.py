"""Rollback: a new version in which one source's rows equal an earlier version."""

from __future__ import annotations

import json

import pytest
from django.core.management import call_command

from apps.roster.models import ImportState, RosterOutbox, Source
from apps.roster.services import roster_rollback
from tests.roster.builders import small_district
from tests.roster.conftest import audited, state_as_of, state_now

pytestmark = pytest.mark.django_db


def _changed(students: int, name: str) -> dict:
    feed = small_district(students=students)
    feed["users"][1]["familyName"] = name
    return feed


def test_rolling_back_reproduces_the_earlier_version_as_a_new_version(import_feed):
    v1 = import_feed(small_district(students=3)).version.number
    sis = Source.objects.get(name="sis")
    import_feed(_changed(4, "Later"))

    version = roster_rollback(source=sis, to_version=v1, actor=None)

    assert version.number > v1 and version.kind == "rollback" and version.rolled_back_to == v1
    assert state_now(sis) == state_as_of(v1, sis)
    assert version.added == 0 and version.updated == 1 and version.deleted > 0
    assert RosterOutbox.objects.filter(version=version).exists()
    assert audited("roster.rolled_back")[0]["to_version"] == v1


def test_rolling_back_one_source_leaves_the_others_alone(import_feed):
    v1 = import_feed(small_district(students=2), source="sis").version.number
    import_feed(small_district(students=2, prefix="o-"), source="other")
    import_feed(_changed(3, "Later"), source="sis")
    other = Source.objects.get(name="other")
    before = state_now(other)

    roster_rollback(source="sis", to_version=v1)

    assert state_now(other) == before


def test_rolling_back_to_the_current_state_changes_nothing(import_feed):
    v1 = import_feed(small_district()).version.number
    assert roster_rollback(source="sis", to_version=v1) is None


def test_after_a_rollback_reimporting_the_later_snapshot_applies_again(import_feed):
    v1 = import_feed(small_district(students=2)).version.number
    import_feed(_changed(2, "Later"))
    roster_rollback(source="sis", to_version=v1)
    assert import_feed(_changed(2, "Later")).state == ImportState.APPLIED


def test_the_rollback_command_prints_json(import_feed, capsys):
    v1 = import_feed(small_district(students=2)).version.number
    import_feed(_changed(2, "Later"))

    call_command("roster_rollback", "--to-version", str(v1), "--json")

    report = json.loads(capsys.readouterr().out)
    assert report["status"] == "applied" and report["to_version"] == v1
    assert report["source"] == "sis"
    assert report["changes"]["updated"] == 1
    assert set(report) == {"status", "version", "to_version", "source", "changes"}
