"""What a request disclosed is queued as one row: its people once each, in order."""

from __future__ import annotations

import pytest

from apps.oneroster_api.models import PendingDisclosure
from apps.oneroster_api.services import disclosures_pending_add

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def a_worker_flushes_the_queue(settings):  # type: ignore[no-untyped-def]
    """With a worker (not eagerly, as without Redis) the queue is flushed later: what is
    queued can be read."""
    settings.CELERY_TASK_ALWAYS_EAGER = False


def test_a_page_of_people_is_queued_as_one_row_each_person_once():
    disclosures_pending_add(vendor_id=7, integration_id=9,
                            field_classes={"identifier", "directory"},
                            user_sourced_ids=["stu-2", "stu-1", "stu-2", "t/1@x.y"])

    row = PendingDisclosure.objects.get()
    assert (row.vendor_id, row.integration_id) == (7, 9)
    assert row.field_classes == ["directory", "identifier"]
    assert row.user_sourced_ids == ["stu-1", "stu-2", "t/1@x.y"]


def test_an_id_that_would_break_the_one_text_form_is_queued_intact():
    disclosures_pending_add(vendor_id=7, integration_id=9, field_classes={"identifier"},
                            user_sourced_ids=["a\nb", "c"])

    assert PendingDisclosure.objects.get().user_sourced_ids == ["a\nb", "c"]
