"""The ingest benchmark reports each scenario's median round, not its luckiest."""

from __future__ import annotations

from benchmarks.ingest import _median


def _run(seconds: float, ratio: float, rss: float) -> dict:
    return {"first": {"seconds": seconds, "ratio_to_raw_copy": ratio, "peak_rss_mib": rss}}


def test_the_round_of_median_ratio_is_reported_with_the_highest_rss():
    runs = [_run(17.0, 6.9, 100), _run(15.0, 5.0, 130), _run(16.0, 6.2, 110)]

    chosen = _median(runs, "first", "ratio_to_raw_copy")

    assert (chosen["seconds"], chosen["ratio_to_raw_copy"]) == (16.0, 6.2)
    assert chosen["peak_rss_mib"] == 130


def test_of_two_rounds_the_less_flattering_is_reported():
    runs = [_run(15.0, 5.0, 100), _run(17.0, 6.9, 100)]

    assert _median(runs, "first", "ratio_to_raw_copy")["ratio_to_raw_copy"] == 6.9
