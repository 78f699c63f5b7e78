"""The largest file of a feed is staged on a second connection while the import's own
stages the others (fastcopy.StagedBeside); what it stages, rejects and reports is exactly
what staging it here would.

Real imports with the size threshold lowered, so that a small district's largest file goes
beside; each compared with the same feed staged on one connection.
"""

from __future__ import annotations

import pytest

from apps.roster.ingest import errors as E
from apps.roster.ingest import fastcopy, staging
from apps.roster.ingest.parse import open_feed
from apps.roster.ingest.zipsafe import ZipBombError, ZipLimits
from apps.roster.models import ImportState
from tests.roster.builders import small_district
from tests.roster.corpus import _patch_sizes, base_files, write_zip
from tests.roster.test_relay import _stored

pytestmark = pytest.mark.django_db(transaction=True)

BESIDE, HERE = 1, 10**12  # BESIDE_FROM_BYTES: the largest file always; never


@pytest.fixture
def staged_beside(monkeypatch):  # type: ignore[no-untyped-def]
    """The entities a second connection staged, in order."""
    entities: list[str] = []
    real = fastcopy.StagedBeside.finish

    def spy(self):  # type: ignore[no-untyped-def]
        staged = real(self)
        entities.extend(staged)
        return staged

    monkeypatch.setattr(fastcopy.StagedBeside, "finish", spy)
    return entities


def _errors(run) -> list[tuple]:  # type: ignore[no-untyped-def]
    return list(run.errors.order_by("file", "line", "column", "code")
                .values_list("file", "line", "column", "code"))


def test_a_file_staged_beside_stores_what_staging_here_stores(monkeypatch, import_feed,
                                                              staged_beside):
    feed = small_district(students=6)
    feed["users"][1].update(givenName="Zoë \\ Back\tslash", familyName='say "hi"')

    monkeypatch.setattr(fastcopy, "BESIDE_FROM_BYTES", BESIDE)
    beside = import_feed(feed, source="beside")
    monkeypatch.setattr(fastcopy, "BESIDE_FROM_BYTES", HERE)
    here = import_feed(feed, source="here")

    assert beside.state == here.state == ImportState.APPLIED
    assert staged_beside == ["users"]  # the feed's largest file
    assert beside.counts["rows"] == here.counts["rows"]
    assert _stored("beside") == _stored("here")
    # and a re-sync of the same feed, staged beside again, changes nothing
    monkeypatch.setattr(fastcopy, "BESIDE_FROM_BYTES", BESIDE)
    assert import_feed(feed, source="beside").state == ImportState.NO_CHANGES


@pytest.mark.parametrize("edit", ["bad_guid", "line_spanning_field"])
def test_a_file_declined_beside_is_staged_and_reported_here(monkeypatch, import_feed,
                                                            staged_beside, edit):
    # given a largest file the fast path cannot take: a sourcedId the binding does not
    # allow, or a quoted field over two lines (the parser reads it; COPY's reading could
    # differ)
    feed = small_district(students=6)
    if edit == "bad_guid":
        feed["users"][2]["sourcedId"] = "user 3"
    else:
        feed["users"][2]["givenName"] = "Ann\nMarie"

    monkeypatch.setattr(fastcopy, "BESIDE_FROM_BYTES", BESIDE)
    beside = import_feed(feed, source="beside")
    monkeypatch.setattr(fastcopy, "BESIDE_FROM_BYTES", HERE)
    here = import_feed(feed, source="here")

    # then it is staged here, by the parser, with the same outcome and report
    assert staged_beside == []
    assert beside.state == here.state
    assert _errors(beside) == _errors(here)
    if edit == "bad_guid":
        assert beside.state == ImportState.REJECTED and _errors(beside)
    else:
        assert _stored("beside") == _stored("here")


def test_an_entry_inflating_past_its_declared_size_beside_is_still_a_zip_bomb(
    monkeypatch, tmp_path
):
    # given a largest file that declares 2 MB and inflates to 3 MB
    monkeypatch.setattr(fastcopy, "BESIDE_FROM_BYTES", 100)
    files = base_files()
    files["enrollments.csv"] += b"\n" * 3_000_000
    path = _patch_sizes(write_zip(tmp_path / "lying.zip", files), "enrollments.csv",
                        2_000_000)
    limits = ZipLimits(max_entry_bytes=2_500_000, ratio_grace_bytes=1 << 30)
    with open_feed(path, limits=limits) as feed:
        entities = feed.supplied_entities()
        staging.staging_create(entities)
        try:
            # when it is staged beside, the second connection gives it up at 2 MB
            beside = fastcopy.StagedBeside(feed, entities)
            assert beside.entities[0] == "enrollments"
            assert "enrollments" not in beside.finish()
            with pytest.raises(ZipBombError, match="past 2000000 bytes"):
                list(feed.plain_scan("enrollments", reserved=True))
            # and staged here, it is reported as any zip bomb
            fastcopy.staging_load("enrollments", feed)
        finally:
            staging.staging_drop(entities)
        assert [(e.code, e.file) for e in feed.errors] == [(E.ZIP_BOMB, "enrollments.csv")]


def test_a_file_staged_beside_counts_at_its_declared_size_in_the_total_limit(tmp_path):
    # while the largest file streams beside, the others may use only what its declared
    # size leaves of the total limit: two files never inflate past it together
    path = write_zip(tmp_path / "feed.zip", base_files())
    with open_feed(path) as feed:
        room = feed.declared_size("enrollments") + feed.declared_size("users")
        feed.limits = ZipLimits(max_total_bytes=room - 1)
        feed.reserve("enrollments")
        with pytest.raises(ZipBombError):
            for _ in feed.plain_scan("users"):
                pass


def test_the_worker_may_take_the_large_files_the_fast_path_takes_largest_first(
    monkeypatch, tmp_path
):
    from tests.roster.builders import write_feed

    monkeypatch.setattr(fastcopy, "BESIDE_FROM_BYTES", 1000)
    monkeypatch.setattr(fastcopy, "UNLOGGED_FROM_BYTES", 300)
    with open_feed(write_feed(tmp_path / "feed.zip", small_district(students=40))) as feed:
        entities = feed.supplied_entities()
        sizes = {e: feed.declared_size(e) for e in entities}
        candidates = fastcopy._beside_candidates(feed, entities)
        monkeypatch.setattr(fastcopy, "BESIDE_FROM_BYTES", max(sizes.values()) + 1)
        assert fastcopy._beside_candidates(feed, entities) == []  # no file large enough

    largest = max(sizes, key=sizes.get)
    assert candidates == [largest] + sorted(
        (e for e in entities if sizes[e] >= 300 and e != largest), key=sizes.get, reverse=True)
    assert len(candidates) >= 3


def test_the_worker_begins_with_the_largest_file_then_takes_the_largest_not_begun_here():
    shares = fastcopy.FileShares(["enrollments", "users", "roles", "demographics"])

    assert shares.take_here("users")  # the import's connection begins on users
    assert shares.take_beside() == "enrollments"  # the worker had the largest from the start
    assert not shares.take_here("enrollments")  # so the import's connection skips it
    assert shares.take_beside() == "roles"  # free again: the largest not begun, not users
    assert not shares.take_here("roles")
    assert shares.take_here("demographics")
    assert shares.take_beside() is None  # nothing left to take
    assert shares.beside == ["enrollments", "roles"]


def test_a_worker_free_early_takes_the_large_files_the_import_has_not_reached(
    monkeypatch, import_feed, staged_beside
):
    # given an import's connection held up before its first file, long enough for the
    # worker to stage every large file it may take
    monkeypatch.setattr(fastcopy, "BESIDE_FROM_BYTES", 1000)
    monkeypatch.setattr(fastcopy, "UNLOGGED_FROM_BYTES", 300)
    real_init = fastcopy.StagedBeside.__init__
    candidates: list[list[str]] = []
    real_candidates = fastcopy._beside_candidates
    monkeypatch.setattr(fastcopy, "_beside_candidates",
                        lambda *a: candidates.append(real_candidates(*a)) or candidates[-1])

    def then_wait(self, feed, entities):  # type: ignore[no-untyped-def]
        real_init(self, feed, entities)
        if self._thread is not None:
            self._thread.join()

    monkeypatch.setattr(fastcopy.StagedBeside, "__init__", then_wait)
    feed = small_district(students=40)
    beside = import_feed(feed, source="beside")
    monkeypatch.setattr(fastcopy, "BESIDE_FROM_BYTES", 10**12)
    here = import_feed(feed, source="here")

    # then the worker staged them all, largest first, and what was stored is the same
    assert len(candidates[0]) >= 3
    assert staged_beside == candidates[0]
    assert beside.state == here.state == ImportState.APPLIED
    assert beside.counts["rows"] == here.counts["rows"]
    assert _stored("beside") == _stored("here")
