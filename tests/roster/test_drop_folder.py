"""The watched drop folder imports each zip once, by content hash, and leaves no plaintext."""

from __future__ import annotations

import os
import time

import pytest

from apps.roster import tasks
from apps.roster.models import ImportRun, ImportState
from apps.roster.services import drop_folder_scan
from tests.roster.builders import small_district, write_feed

pytestmark = pytest.mark.django_db


def _aged(path):  # type: ignore[no-untyped-def]
    past = time.time() - 3600
    os.utime(path, (past, past))
    return path


def test_each_dropped_zip_is_imported_once(tmp_path, settings):
    settings.INTERCHANGE_ROSTER_DROP_DIR = str(tmp_path)
    feed = write_feed(tmp_path.parent / "monday.zip", small_district())
    (tmp_path / "monday.zip").write_bytes(feed.read_bytes())
    _aged(tmp_path / "monday.zip")

    [run] = drop_folder_scan()
    assert run.state == ImportState.APPLIED and run.origin == "drop_folder"
    assert not (tmp_path / "monday.zip").exists()  # staged encrypted; plaintext removed

    (tmp_path / "monday-again.zip").write_bytes(feed.read_bytes())  # the same file again
    _aged(tmp_path / "monday-again.zip")
    assert drop_folder_scan() == []
    assert ImportRun.objects.count() == 1 and not (tmp_path / "monday-again.zip").exists()


def test_a_zip_still_being_written_waits(tmp_path, settings):
    settings.INTERCHANGE_ROSTER_DROP_DIR = str(tmp_path)
    write_feed(tmp_path / "fresh.zip", small_district())
    assert tasks.drop_folder_scan() == 0
    assert (tmp_path / "fresh.zip").exists()


def test_the_import_task_takes_an_id_and_leaves_a_finished_run_alone(tmp_path):
    from apps.roster.services import import_run_create

    path = write_feed(tmp_path / "a.zip", small_district())
    with open(path, "rb") as src:
        run = import_run_create(src=src, file_name="a.zip", source="sis")

    assert tasks.import_run.delay(run.pk).get() == ImportState.APPLIED
    assert tasks.import_run.delay(run.pk).get() == ImportState.APPLIED
    assert ImportRun.objects.get(pk=run.pk).version is not None
