"""Every bad input in the corpus is refused with the right code, file, line and column."""
import pytest

from apps.roster.ingest import open_feed
from tests.roster.corpus import CASES


def test_the_corpus_has_at_least_forty_distinct_cases():
    names = [case.name for case in CASES]
    assert len(names) == len(set(names))
    assert len(names) >= 40


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_bad_input_is_reported_precisely(case, tmp_path):
    # given a feed with one defect
    path = case.make(tmp_path)
    # when it is opened and every row is read
    with open_feed(path, limits=case.limits) as feed:
        errors = feed.validate()
        # then the defect is reported where it is
        found = [(e.code, e.file, e.line, e.column) for e in errors]
        assert (case.code, case.file, case.line, case.column) in found, found
        assert feed.fatal == case.fatal
        for error in errors:
            assert error.message
