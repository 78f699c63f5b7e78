"""Properties that must hold for every sequence of snapshots (hypothesis, small examples):
replay is a no-op, rollback to N reproduces N exactly, and one source's bulk or rollback
never touches another source's rows."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from apps.roster.models import ImportState, QualityGate, RosterVersion, Source
from apps.roster.services import roster_rollback, source_get_or_create
from tests.roster.builders import small_district
from tests.roster.conftest import state_as_of, state_now

pytestmark = pytest.mark.django_db

MAX_STUDENTS = 5
_examples = itertools.count()

# A snapshot: which students are on roll, and which of them have a changed surname.
snapshots = st.tuples(
    st.sets(st.integers(1, MAX_STUDENTS), min_size=1),
    st.sets(st.integers(1, MAX_STUDENTS)),
)


def build(snapshot: tuple[set[int], set[int]]) -> dict:
    on_roll, renamed = snapshot
    feed = small_district(students=MAX_STUDENTS)
    keep = {"t1"} | {f"s{i}" for i in on_roll}

    def kept(row: dict, key: str) -> bool:
        return row[key] in keep

    feed["users"] = [u for u in feed["users"] if kept(u, "sourcedId")]
    for user in feed["users"]:
        if user["sourcedId"] in {f"s{i}" for i in renamed}:
            user["familyName"] = "Changed"
    for entity in ("roles", "enrollments"):
        feed[entity] = [r for r in feed[entity] if kept(r, "userSourcedId")]
    feed["demographics"] = [d for d in feed["demographics"] if kept(d, "sourcedId")]
    return feed


def _sources() -> tuple[Source, Source]:
    n = next(_examples)
    pair = []
    for name in (f"prop-a-{n}", f"prop-b-{n}"):
        source = source_get_or_create(name=name)
        QualityGate.objects.create(source=source, enabled=False)  # exercise apply, not gates
        pair.append(source)
    return pair[0], pair[1]


PROPERTY_SETTINGS = settings(
    max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@PROPERTY_SETTINGS
@given(history=st.lists(snapshots, min_size=1, max_size=3))
def test_replaying_any_snapshot_is_a_no_op(import_feed, history):
    a, _ = _sources()
    for snapshot in history:
        import_feed(build(snapshot), source=a)
        state = state_now(a)
        versions = RosterVersion.objects.count()

        replay = import_feed(build(snapshot), source=a)

        assert replay.state == ImportState.NO_CHANGES
        assert RosterVersion.objects.count() == versions and state_now(a) == state


@PROPERTY_SETTINGS
@given(
    history=st.lists(snapshots, min_size=2, max_size=4),
    other=snapshots,
    pick=st.integers(0, 3),
)
def test_rollback_reproduces_version_n_and_leaves_other_sources_alone(
    import_feed, history, other, pick
):
    a, b = _sources()
    import_feed(build(other), source=b)
    b_state = state_now(b)
    seen: list[tuple[int, dict]] = []
    for snapshot in history:
        run = import_feed(build(snapshot), source=a)  # same sourcedIds as source b
        if run.version is not None:
            seen.append((run.version.number, state_now(a)))
        assert state_now(b) == b_state

    number, expected = seen[pick % len(seen)]
    roster_rollback(source=a, to_version=number)

    assert state_now(a) == expected == state_as_of(number, a)
    assert state_now(b) == b_state
    for earlier, earlier_state in seen:
        assert state_as_of(earlier, a) == earlier_state  # history never rewritten
